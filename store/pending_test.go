package store

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPendingBounds: the buffer both backends share keeps each bound on its own, whatever
// backend flushes it.
func TestPendingBounds(t *testing.T) {
	const known, other1, other2 = "52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"
	lim := PendingLimits{MaxDiscovered: 1, MaxEvents: 3, MaxDiscoveredEvents: 2}
	type step func(p *Pending[string]) bool
	appendN := func(mac string, n int) step {
		return func(p *Pending[string]) bool {
			ok := true
			for i := range n {
				ok = p.Append(mac, mac[len(mac)-2:]+"-"+string(rune('a'+i))) && ok
			}
			return ok
		}
	}
	tests := map[string]struct {
		steps   []step
		want    map[string][]string // pending events by MAC
		accept  []bool              // what each step reported
		dropped int
	}{
		"a MAC with a record keeps MaxEvents": {
			steps:  []step{appendN(known, 5)},
			want:   map[string][]string{known: {"01-c", "01-d", "01-e"}},
			accept: []bool{true},
		},
		"a MAC without one keeps MaxDiscoveredEvents": {
			steps:  []step{appendN(other1, 5)},
			want:   map[string][]string{other1: {"02-d", "02-e"}},
			accept: []bool{true},
		},
		"MaxDiscovered MACs without a record, then drops; a known MAC still gets in": {
			steps:   []step{appendN(other1, 1), appendN(other2, 2), appendN(known, 1)},
			want:    map[string][]string{other1: {"02-a"}, known: {"01-a"}},
			accept:  []bool{true, false, true},
			dropped: 2,
		},
		"Forget frees the slot": {
			steps: []step{appendN(other1, 1), func(p *Pending[string]) bool { return p.Forget(other1) }, appendN(other2, 1)},
			want:  map[string][]string{other2: {"03-a"}}, accept: []bool{true, true, true},
		},
		"Forget of nothing pending reports false": {
			steps: []step{func(p *Pending[string]) bool { return p.Forget(other1) }},
			want:  map[string][]string{}, accept: []bool{false},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			drops := 0
			p := NewPending[string](lim, func(mac string) bool { return mac == known }, func() { drops++ },
				slog.New(slog.NewTextHandler(&logs, nil)))
			var accept []bool
			for _, s := range tc.steps {
				accept = append(accept, s(p))
			}
			if diff := cmp.Diff(tc.accept, accept); diff != "" {
				t.Errorf("steps reported (-want +got):\n%s", diff)
			}
			batch := p.Take()
			got := map[string][]string{}
			for mac, e := range batch {
				got[mac] = e.Events
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("taken (-want +got):\n%s", diff)
			}
			if drops != tc.dropped {
				t.Errorf("dropped %d, want %d", drops, tc.dropped)
			}
			if warned := strings.Contains(logs.String(), "dropped="); warned != (tc.dropped > 0) {
				t.Errorf("warning logged: %v, want %v (%q)", warned, tc.dropped > 0, logs.String())
			}
			// Take starts afresh: the bound counts again from zero, and nothing is left.
			if n := len(p.Take()); n != 0 {
				t.Errorf("second Take: %d entries", n)
			}
			if !p.Append(other1, "x") || !p.Append(known, "y") {
				t.Error("an append after Take was dropped")
			}
		})
	}
}

// TestPendingRestoreUnderNewer: a failed flush's activity goes back before what arrived
// since, the seen marks merged, the events within the entry's limit.
func TestPendingRestoreUnderNewer(t *testing.T) {
	const mac = "52:54:00:00:00:02"
	p := NewPending[string](PendingLimits{MaxDiscovered: 5, MaxEvents: 4, MaxDiscoveredEvents: 3},
		func(string) bool { return false }, func() {}, slog.New(slog.DiscardHandler))
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	p.Mark(mac, t0, "EFI x86-64", "192.0.2.1")
	p.Append(mac, "1")
	p.Append(mac, "2")
	old := p.Take()
	p.Mark(mac, t0.Add(time.Minute), "", "192.0.2.9")
	p.Append(mac, "3")
	p.Append(mac, "4")
	p.Restore(old)
	want := Seen{MAC: mac, FirstSeen: t0, LastSeen: t0.Add(time.Minute), Arch: "EFI x86-64", IP: "192.0.2.9", Count: 2}
	if diff := cmp.Diff(map[string]Seen{mac: want}, p.Seen("")); diff != "" {
		t.Errorf("seen (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"2", "3", "4"}, p.Events(mac)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
