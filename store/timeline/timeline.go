package timeline

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/threefoldtech/bootstrapd/store"
)

// Stage is one step of a network boot.
type Stage string

// The stages, in the order a boot goes through them.
const (
	OfferBinary     Stage = "offer_binary"     // ProxyDHCP: PXE firmware (or an old iPXE) sent to an iPXE binary over TFTP
	OfferHTTPBoot   Stage = "offer_httpboot"   // ProxyDHCP: UEFI HTTP Boot sent to an iPXE binary over HTTP
	OfferScript     Stage = "offer_script"     // ProxyDHCP: iPXE sent to /provision/<mac>
	TFTPSent        Stage = "tftp_sent"        // TFTP: the binary was sent whole
	TFTPFailed      Stage = "tftp_failed"      // TFTP: a transfer of it failed
	ScriptServed    Stage = "script_served"    // HTTP: the node's boot script
	KernelRequested Stage = "kernel_requested" // HTTP: the script asked for its kernel
	KernelSent      Stage = "kernel_sent"      // HTTP: the kernel was sent whole: the boot is done
	// IPXELog is a line of iPXE's own console, received over syslog (ipxe/ipxelog); the
	// detail is the line. It can come at any point of a boot, so it is not a step of it.
	IPXELog Stage = "ipxe_log"
)

// asks tells whether the stage is the node asking for something (a DHCP request, a script):
// those count in its seen entry; the transfers that follow do not.
func (s Stage) asks() bool {
	return s == OfferBinary || s == OfferHTTPBoot || s == OfferScript || s == ScriptServed
}

var stages = []Stage{OfferBinary, OfferHTTPBoot, OfferScript, TFTPSent, TFTPFailed, ScriptServed, KernelRequested, KernelSent, IPXELog}

// Stages lists every stage, in boot order.
func Stages() []Stage { return slices.Clone(stages) }

// Event is a stage seen for one MAC.
type Event struct {
	MAC    string     // normalised (store.ParseMAC)
	Stage  Stage      //
	Detail string     // what was handed out: a file, a script kind, a kernel
	Arch   string     // the architecture the client announced, when it did (DHCP)
	IP     netip.Addr // the client's address, when known
	Time   time.Time  // zero: now
}

// Sink receives events from the servers. It is called on their serve paths: it must be
// safe for concurrent use and must not block.
type Sink func(Event)

// Activity is the part of the store a Recorder writes to: memory only, written behind.
type Activity interface {
	MarkSeen(mac, arch, ip string) error
	AppendEvent(mac string, ev store.Event) error
}

// The Info lines of boot stages are budgeted: anyone on the LAN (and, for scripts, anyone who
// reaches the HTTP port) can make stages happen as fast as the link goes, and a line per
// request would be a disk flood and, at 20,000 requests a second, most of a request's
// cost. A rack of 1,000 nodes booting at once makes about 8,000 lines in a minute, inside
// the budget. Past it, a stage is logged at Debug, counted in
// bootstrapd_boot_stage_lines_held_back_total, and the next Info line says how many were
// held back. The timeline (store and page) keeps every stage either way.
const (
	logBurst = 2000 // lines at once
	logRate  = 200  // lines a second after the burst
)

// Recorder counts, logs and stores events.
type Recorder struct {
	store    Activity
	log      *slog.Logger
	stages   *prometheus.CounterVec
	heldBack prometheus.Counter
	budget   *rate.Limiter
	held     atomic.Int64     // lines held back since the last Info line
	now      func() time.Time // the budget's clock
}

// NewRecorder records into db, logging each stage at Info (one line per stage of a boot,
// within a budget) and counting it in bootstrapd_boot_stages_total.
func NewRecorder(db Activity, log *slog.Logger, reg prometheus.Registerer) (*Recorder, error) {
	r := &Recorder{store: db, log: log, stages: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bootstrapd_boot_stages_total",
		Help: "Boot stages seen, by stage (proxy offer, TFTP, script, kernel).",
	}, []string{"stage"}),
		heldBack: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_boot_stage_lines_held_back_total",
			Help: "Boot stage log lines written at Debug instead of Info because more stages came than the log budget allows (the timeline keeps them all).",
		}),
		budget: rate.NewLimiter(logRate, logBurst),
		now:    time.Now,
	}
	for _, s := range Stages() {
		r.stages.WithLabelValues(string(s))
	}
	if reg != nil {
		if err := store.Register(reg, []prometheus.Collector{r.stages, r.heldBack}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Record is a Sink. An event without a valid MAC or of an unknown stage is dropped: both
// come from this program, so that is a bug, logged at Debug to keep a flood out of the log.
func (r *Recorder) Record(e Event) {
	mac, err := store.ParseMAC(e.MAC)
	if !slices.Contains(stages, e.Stage) || err != nil {
		r.log.Debug("timeline: event dropped", "mac", e.MAC, "stage", e.Stage, "err", err)
		return
	}
	r.stages.WithLabelValues(string(e.Stage)).Inc()
	ip := ""
	if e.IP.IsValid() {
		ip = e.IP.Unmap().WithZone("").String()
	}
	r.logStage(mac, e, ip)
	if e.Stage.asks() {
		if err := r.store.MarkSeen(mac, e.Arch, ip); err != nil {
			r.log.Warn("timeline: record seen", "mac", mac, "err", err)
		}
	}
	if err := r.store.AppendEvent(mac, store.Event{Time: e.Time, Stage: string(e.Stage), Detail: e.Detail}); err != nil {
		r.log.Warn("timeline: append event", "mac", mac, "err", err)
	}
}

// logStage writes the stage's line: at Info within the budget, else at Debug.
func (r *Recorder) logStage(mac string, e Event, ip string) {
	ctx := context.Background()
	lvl := slog.LevelInfo
	if !r.budget.AllowN(r.now(), 1) {
		lvl = slog.LevelDebug
		r.heldBack.Inc()
		r.held.Add(1)
	}
	if !r.log.Enabled(ctx, lvl) {
		return
	}
	args := []any{"mac", mac, "stage", e.Stage, "detail", e.Detail, "remote", ip}
	if lvl == slog.LevelInfo {
		if held := r.held.Swap(0); held > 0 {
			args = append(args, "held_back", held)
		}
	}
	r.log.Log(ctx, lvl, "boot stage", args...)
}
