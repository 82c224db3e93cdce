package timeline

import (
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threefoldtech/bootstrapd/store"
)

func TestRecord(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "bootstrapd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	r, err := NewRecorder(db, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.7")
	const mac = "52:54:00:12:34:56"
	for _, e := range []Event{
		{MAC: "52-54-00-12-34-56", IP: ip, Arch: "EFI x86-64", Stage: OfferBinary, Detail: "EFI x86-64 ipxe-amd64.efi"},
		{MAC: mac, IP: ip, Stage: TFTPSent, Detail: "ipxe-amd64.efi"},
		{MAC: mac, IP: ip, Stage: ScriptServed, Detail: "node"},
		{MAC: mac, IP: ip, Stage: KernelSent, Detail: "net/prod.efi 42 bytes"},
		{MAC: "not-a-mac", Stage: ScriptServed},       // dropped: no MAC
		{MAC: mac, Stage: Stage("offer-binary")},      // dropped: not a stage
		{MAC: "52:54:00:00:00:09", Stage: KernelSent}, // a transfer, not a request: no seen entry
	} {
		r.Record(e)
	}

	evs, err := db.Events(mac)
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, e := range evs {
		stages = append(stages, e.Stage)
	}
	if got, want := len(stages), 4; got != want || stages[0] != "offer_binary" || stages[3] != "kernel_sent" {
		t.Errorf("events %v, want offer_binary … kernel_sent (4)", stages)
	}
	sn, err := db.GetSeen(mac)
	if err != nil {
		t.Fatal(err)
	}
	// Marked by the offer and the script (the node asking), not by the transfers.
	if sn.Count != 2 || sn.Arch != "EFI x86-64" || sn.IP != "192.0.2.7" {
		t.Errorf("seen %+v, want count 2, the offer's arch and the IP", sn)
	}
	if _, err := db.GetSeen("52:54:00:00:00:09"); err == nil {
		t.Error("a kernel transfer alone marked its MAC seen")
	}
	for stage, want := range map[Stage]float64{OfferBinary: 1, TFTPSent: 1, ScriptServed: 1, KernelSent: 2, OfferScript: 0} {
		if got := testutil.ToFloat64(r.stages.WithLabelValues(string(stage))); got != want {
			t.Errorf("bootstrapd_boot_stages_total{stage=%q} = %v, want %v", stage, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "bootstrapd_boot_stages_total"); err != nil || n != len(Stages()) {
		t.Errorf("%d stage series (%v), want one per stage from the start: %d", n, err, len(Stages()))
	}
}

// A flood of stages logs logBurst lines at Info, the rest at Debug, counted; once the budget
// has refilled, the next Info line says how many were held back. Every stage is still stored.
func TestRecordLogBudget(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "bootstrapd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out strings.Builder
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r, err := NewRecorder(db, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r.now = func() time.Time { return clock }
	const flood = logBurst + 500
	for i := range flood {
		r.Record(Event{MAC: fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff), Stage: ScriptServed, Detail: "wait"})
	}
	if n := strings.Count(out.String(), "boot stage"); n != logBurst {
		t.Errorf("%d Info lines for %d stages, want the burst, %d", n, flood, logBurst)
	}
	if got := testutil.ToFloat64(r.heldBack); got != 500 {
		t.Errorf("held back %v, want 500", got)
	}
	clock = clock.Add(time.Second) // logRate lines of budget again
	out.Reset()
	r.Record(Event{MAC: "52:54:00:ff:ff:ff", Stage: ScriptServed, Detail: "node"})
	if line := out.String(); !strings.Contains(line, "held_back=500") || !strings.Contains(line, "mac=52:54:00:ff:ff:ff") {
		t.Errorf("the first line after the flood: %q, want held_back=500", line)
	}
	if _, err := db.GetSeen(fmt.Sprintf("52:54:00:00:%02x:%02x", (flood-1)>>8, (flood-1)&0xff)); err != nil {
		t.Errorf("the last stage of the flood was not recorded: %v", err)
	}
}
