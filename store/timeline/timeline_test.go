package timeline

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"

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
