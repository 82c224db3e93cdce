package main

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threefoldtech/bootstrapd/dhcpd"
	"github.com/threefoldtech/bootstrapd/httpd"
	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/tftpd"
)

// timeline turns what the three servers see into per-node boot events in the store. TFTP and
// kernel requests carry only an IP: it is matched to the MAC last seen with that IP (from a
// DHCP request or a script fetch), else to the kernel's ARP table. The store keeps this
// activity in memory and writes it behind, so a serve loop never waits on the disk.
type timeline struct {
	db  *store.DB
	log *slog.Logger

	stages *prometheus.CounterVec

	mu    sync.Mutex
	byIP  map[string]ipEntry
	limit int
}

type event struct {
	mac, arch, ip string
	ev            store.Event
	seen          bool
}

type ipEntry struct {
	mac  string
	when time.Time
}

// stageNames bounds the stage label of bootstrapd_boot_stages_total.
var stageNames = []string{
	dhcpd.StageOfferBinary, dhcpd.StageOfferIPXEScript, dhcpd.StageOfferHTTPBoot,
	"tftp-sent", "tftp-failed", "script-served", "kernel-requested", httpd.StageDone,
}

func newTimeline(db *store.DB, log *slog.Logger, reg prometheus.Registerer) *timeline {
	t := &timeline{db: db, log: log, byIP: map[string]ipEntry{}, limit: 4096,
		stages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_boot_stages_total",
			Help: "Boot stage transitions seen, by stage (proxy offer, TFTP, script, kernel).",
		}, []string{"stage"})}
	for _, s := range stageNames {
		t.stages.WithLabelValues(s)
	}
	reg.MustRegister(t.stages)
	return t
}

func (t *timeline) push(e event) {
	if slices.Contains(stageNames, e.ev.Stage) {
		t.stages.WithLabelValues(e.ev.Stage).Inc()
	}
	t.log.Info("boot stage", "mac", e.mac, "stage", e.ev.Stage, "detail", e.ev.Detail, "remote", e.ip)
	if e.seen {
		if err := t.db.MarkSeen(e.mac, e.arch, e.ip); err != nil {
			t.log.Warn("timeline: record seen", "mac", e.mac, "err", err)
		}
	}
	if err := t.db.AppendEvent(e.mac, e.ev); err != nil {
		t.log.Warn("timeline: append event", "mac", e.mac, "err", err)
	}
}

func (t *timeline) remember(ip, mac string) {
	if ip == "" || mac == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.byIP) >= t.limit {
		// Forget entries older than an hour, or all of them if that is not enough: the map
		// only names events, and nodes re-announce themselves at every boot.
		cut := time.Now().Add(-time.Hour)
		for k, v := range t.byIP {
			if v.when.Before(cut) {
				delete(t.byIP, k)
			}
		}
		if len(t.byIP) >= t.limit {
			clear(t.byIP)
		}
	}
	t.byIP[ip] = ipEntry{mac: mac, when: time.Now()}
}

func (t *timeline) macFor(ip string) string {
	t.mu.Lock()
	e, ok := t.byIP[ip]
	t.mu.Unlock()
	if ok {
		return e.mac
	}
	// /proc/self/net/arp, not /proc/net/arp: the unit's ProcSubset=pid hides the latter.
	return arpLookup("/proc/self/net/arp", ip)
}

func (t *timeline) dhcp(s dhcpd.Stage) {
	mac := s.MAC.String()
	ip := ""
	if s.IP.IsValid() {
		ip = s.IP.String()
		t.remember(ip, mac)
	}
	t.push(event{mac: mac, arch: s.Arch.String(), ip: ip, seen: true,
		ev: store.Event{Time: s.Time, Stage: s.Kind, Detail: s.Arch.String() + " " + s.File}})
}

func (t *timeline) tftp(tr tftpd.Transfer) {
	stage, detail := "tftp-sent", tr.File
	switch {
	case tr.Err == nil:
	case errors.Is(tr.Err, tftpd.ErrRefused),
		errors.Is(tr.Err, tftpd.ErrClientAbort) && tr.Bytes == 0,
		errors.Is(tr.Err, tftpd.ErrNotFound):
		// Not a stage of a boot. Refusals (caps, write requests) are a flood's noise, counted
		// by tftpd; OVMF asks for the size and aborts before the real read, and iPXE looks
		// for an optional autoexec.ipxe, on every boot. Decided before the MAC lookup, so a
		// flood of them costs no ARP table read.
		return
	default:
		stage, detail = "tftp-failed", tr.File+": "+strings.ToValidUTF8(strings.Trim(tr.Err.Error(), "\x00"), "")
	}
	ip := tr.Remote.Addr().Unmap().String()
	mac := t.macFor(ip)
	if mac == "" {
		t.log.Debug("timeline: TFTP client with unknown MAC", "remote", ip)
		return
	}
	t.push(event{mac: mac, ip: ip, ev: store.Event{Stage: stage, Detail: detail}})
}

func (t *timeline) http(s httpd.Stage) {
	mac := s.MAC
	if mac != "" {
		t.remember(s.IP, mac)
	} else if mac = t.macFor(s.IP); mac == "" {
		return
	}
	t.push(event{mac: mac, ip: s.IP, ev: store.Event{Stage: s.Name, Detail: s.Detail}})
}

// arpLookup finds ip's MAC in the kernel's ARP table (Linux /proc/net/arp).
func arpLookup(path, ip string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// IP address  HW type  Flags  HW address  Mask  Device
		fields := strings.Fields(sc.Text())
		if len(fields) >= 4 && fields[0] == ip {
			if hw, err := net.ParseMAC(fields[3]); err == nil && fields[3] != "00:00:00:00:00:00" {
				return hw.String()
			}
		}
	}
	return ""
}
