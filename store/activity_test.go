package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"
)

// fakeClock stands still until advanced, so a test decides what is old; it is safe for Run's
// goroutine.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testMAC is the i-th MAC of a test, locally administered so it is nobody's.
func testMAC(i int) string {
	return fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
}

// testMACs is testMAC(0) to testMAC(n-1).
func testMACs(n int) []string {
	macs := make([]string, n)
	for i := range macs {
		macs[i] = testMAC(i)
	}
	return macs
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// seenMACs lists the MACs ListSeen returns.
func seenMACs(t *testing.T, db *DB) []string {
	t.Helper()
	list, err := db.ListSeen()
	must(t, err)
	macs := []string{}
	for _, s := range list {
		macs = append(macs, s.MAC)
	}
	return macs
}

// txID is the id of the last committed write transaction.
func txID(t *testing.T, db *DB) int {
	t.Helper()
	var id int
	must(t, db.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }))
	return id
}

// TestActivityWaitsForFlush reads the file itself: if MarkSeen or AppendEvent wrote through
// bbolt, the MAC and the strings would be in it, since bbolt writes with pwrite and the
// page cache serves this read.
func TestActivityWaitsForFlush(t *testing.T) {
	db, path := openTest(t, Options{})
	const n = 100
	for i := range n {
		must(t, db.MarkSeen(testMAC(i), "ARCH-MARKER", "192.0.2.1"))
		must(t, db.AppendEvent(testMAC(i), Event{Stage: "offer", Detail: "DETAIL-MARKER"}))
	}
	before := txID(t, db)
	for _, marker := range []string{testMAC(0), "ARCH-MARKER", "DETAIL-MARKER"} {
		raw, err := os.ReadFile(path)
		must(t, err)
		if bytes.Contains(raw, []byte(marker)) {
			t.Fatalf("%q is on disk before any flush", marker)
		}
	}
	// Reads show the pending activity all the same.
	if got := seenMACs(t, db); len(got) != n {
		t.Fatalf("ListSeen before flush: %d MACs, want %d", len(got), n)
	}

	must(t, db.Flush())
	if after := txID(t, db); after != before+1 {
		t.Fatalf("flush of %d MACs took %d transactions, want 1", n, after-before)
	}
	raw, err := os.ReadFile(path)
	must(t, err)
	for _, marker := range []string{testMAC(0), testMAC(n - 1), "ARCH-MARKER", "DETAIL-MARKER"} {
		if !bytes.Contains(raw, []byte(marker)) {
			t.Fatalf("%q is not on disk after the flush", marker)
		}
	}
	// Nothing pending: no transaction, no fsync.
	must(t, db.Flush())
	if again := txID(t, db); again != before+1 {
		t.Fatalf("an idle flush wrote %d transactions", again-before-1)
	}
}

// step is one piece of activity in a table test: a record, a mark, or an event.
type step struct {
	mac    int
	record bool
	event  bool
	flush  bool // flush after this step
}

func runSteps(t *testing.T, db *DB, clk *fakeClock, steps []step) {
	t.Helper()
	for _, st := range steps {
		clk.advance(time.Second)
		switch {
		case st.record:
			_, err := db.CreateNode(Node{MAC: testMAC(st.mac), Network: "test", Farm: 1})
			must(t, err)
		case st.event:
			must(t, db.AppendEvent(testMAC(st.mac), Event{Stage: "offer"}))
		default:
			must(t, db.MarkSeen(testMAC(st.mac), "EFI x86-64", "192.0.2.1"))
		}
		if st.flush {
			must(t, db.Flush())
		}
	}
}

// activeMACs are the MACs (by test index) that have a seen entry or events.
func activeMACs(t *testing.T, db *DB, upTo int) []int {
	t.Helper()
	var out []int
	for i := range upTo {
		_, err := db.GetSeen(testMAC(i))
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		evs, err2 := db.Events(testMAC(i))
		must(t, err2)
		if err == nil || len(evs) > 0 {
			out = append(out, i)
		}
	}
	return out
}

func TestDiscoveredCap(t *testing.T) {
	// Flushed MAC by MAC, as Run would under a slow flood: unflushed, the pending bound
	// would drop the newest MACs before the disk cap sees them (TestPendingBound).
	mark := func(macs ...int) []step {
		var s []step
		for _, m := range macs {
			s = append(s, step{mac: m}, step{mac: m, event: true, flush: true})
		}
		return s
	}
	tests := map[string]struct {
		max     int
		steps   []step
		want    []int
		evicted float64
	}{
		"under the cap": {max: 3, steps: mark(0, 1, 2), want: []int{0, 1, 2}},
		"oldest evicted with their events": {
			max: 3, steps: mark(0, 1, 2, 3, 4), want: []int{2, 3, 4}, evicted: 2,
		},
		"a MAC heard again is young again": {
			max: 2, steps: append(mark(0, 1), step{mac: 0, flush: true}, step{mac: 2}), want: []int{0, 2}, evicted: 1,
		},
		"records do not count and are never evicted": {
			max: 2,
			steps: append([]step{{mac: 0, record: true}, {mac: 1, record: true}, {mac: 2, record: true}},
				mark(0, 1, 2, 3, 4)...),
			want: []int{0, 1, 2, 3, 4},
		},
		"events alone count": {
			max:   2,
			steps: []step{{mac: 0, flush: true}, {mac: 1, event: true, flush: true}, {mac: 2, event: true}},
			want:  []int{1, 2}, evicted: 1,
		},
		"flushed one by one": {
			max: 2,
			steps: []step{{mac: 0, flush: true}, {mac: 1, flush: true}, {mac: 2, flush: true},
				{mac: 3, event: true, flush: true}},
			want: []int{2, 3}, evicted: 2,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clk := newFakeClock()
			db, _ := openTest(t, Options{Now: clk.now, MaxDiscovered: tc.max})
			runSteps(t, db, clk, tc.steps)
			must(t, db.Flush())
			if diff := cmp.Diff(tc.want, activeMACs(t, db, 10)); diff != "" {
				t.Errorf("MACs kept (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(db.metrics.evicted); got != tc.evicted {
				t.Errorf("evicted = %v, want %v", got, tc.evicted)
			}
		})
	}
}

func TestPendingBound(t *testing.T) {
	tests := map[string]struct {
		max       int
		maxEvents int
		steps     []step
		want      []int // MACs with pending activity
		dropped   float64
		events    int // pending events of MAC 0
	}{
		"under the bound": {max: 3, steps: []step{{mac: 0}, {mac: 1}, {mac: 2}}, want: []int{0, 1, 2}},
		"new MACs beyond it dropped": {
			max: 2, steps: []step{{mac: 0}, {mac: 1}, {mac: 2}, {mac: 3, event: true}}, want: []int{0, 1}, dropped: 2,
		},
		"MACs already pending still update": {
			max: 1, steps: []step{{mac: 0}, {mac: 1}, {mac: 0}, {mac: 0, event: true}}, want: []int{0}, dropped: 1, events: 1,
		},
		"known MACs are not crowded out": {
			max:   1,
			steps: []step{{mac: 5, record: true}, {mac: 0}, {mac: 1}, {mac: 5}},
			want:  []int{0, 5}, dropped: 1,
		},
		"events per MAC keep the newest": {
			max: 1, maxEvents: 2,
			steps: []step{{mac: 0, event: true}, {mac: 0, event: true}, {mac: 0, event: true}},
			want:  []int{0}, events: 2,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clk := newFakeClock()
			db, _ := openTest(t, Options{Now: clk.now, MaxDiscovered: tc.max, MaxEvents: tc.maxEvents})
			runSteps(t, db, clk, tc.steps)
			var got []int
			for i := range 10 {
				if len(db.pending.Seen(testMAC(i))) > 0 || len(db.pending.Events(testMAC(i))) > 0 {
					got = append(got, i)
				}
			}
			events := len(db.pending.Events(testMAC(0)))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("pending MACs (-want +got):\n%s", diff)
			}
			if d := testutil.ToFloat64(db.metrics.dropped); d != tc.dropped {
				t.Errorf("dropped = %v, want %v", d, tc.dropped)
			}
			if events != tc.events {
				t.Errorf("pending events of MAC 0 = %d, want %d", events, tc.events)
			}
		})
	}
}

func TestTTL(t *testing.T) {
	const ttl = time.Hour
	type want struct {
		seen   bool
		events []string
	}
	tests := map[string]struct {
		record       bool
		mark         bool
		events       []time.Duration // age of each event at the sweep
		markAge      time.Duration
		want         want
		seen, evExpd float64
	}{
		"unknown, old: seen and events go": {
			mark: true, markAge: 2 * ttl, events: []time.Duration{2 * ttl, 2 * ttl},
			want: want{}, seen: 1, evExpd: 2,
		},
		"unknown, young: kept": {
			mark: true, markAge: ttl / 2, events: []time.Duration{ttl / 2},
			want: want{seen: true, events: []string{"0"}},
		},
		"unknown, young mark, old events: events go": {
			mark: true, markAge: ttl / 2, events: []time.Duration{3 * ttl, 2 * ttl, ttl / 2},
			want: want{seen: true, events: []string{"2"}}, evExpd: 2,
		},
		"known, old: seen stays, events go": {
			record: true, mark: true, markAge: 3 * ttl, events: []time.Duration{3 * ttl, ttl / 3},
			want: want{seen: true, events: []string{"1"}}, evExpd: 1,
		},
		"events alone, old: gone": {
			events: []time.Duration{2 * ttl}, want: want{}, evExpd: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clk := newFakeClock()
			db, _ := openTest(t, Options{Now: clk.now, EventTTL: ttl})
			mac := testMAC(1)
			if tc.record {
				_, err := db.CreateNode(Node{MAC: mac, Network: "test", Farm: 1})
				must(t, err)
			}
			sweepAt := clk.now().Add(10 * ttl)
			if tc.mark {
				clk.set(sweepAt.Add(-tc.markAge))
				must(t, db.MarkSeen(mac, "", ""))
			}
			for i, age := range tc.events {
				must(t, db.AppendEvent(mac, Event{Time: sweepAt.Add(-age), Stage: fmt.Sprint(i)}))
			}
			// Written at one flush, expired at a later one, as in a running daemon.
			must(t, db.Flush())
			clk.set(sweepAt)
			must(t, db.Flush())

			_, err := db.GetSeen(mac)
			if (err == nil) != tc.want.seen {
				t.Errorf("GetSeen: %v, want seen=%v", err, tc.want.seen)
			}
			evs, err := db.Events(mac)
			must(t, err)
			var stages []string
			for _, e := range evs {
				stages = append(stages, e.Stage)
			}
			if diff := cmp.Diff(tc.want.events, stages); diff != "" {
				t.Errorf("events kept (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(db.metrics.expired.WithLabelValues(kindSeen)); got != tc.seen {
				t.Errorf("expired seen = %v, want %v", got, tc.seen)
			}
			if got := testutil.ToFloat64(db.metrics.expired.WithLabelValues(kindEvent)); got != tc.evExpd {
				t.Errorf("expired events = %v, want %v", got, tc.evExpd)
			}
			if tc.record {
				if _, err := db.GetNode(mac); err != nil {
					t.Errorf("record gone: %v", err)
				}
			}
		})
	}
}

// TestRunSweepsAndFlushes: Run alone writes the activity and expires it.
func TestRunSweepsAndFlushes(t *testing.T) {
	clk := newFakeClock()
	db, path := openTest(t, Options{Now: clk.now, EventTTL: time.Hour, FlushInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("Run did not %s", what)
			}
		}
	}
	must(t, db.MarkSeen(testMAC(1), "", ""))
	waitFor("flush", func() bool { return fileHas(t, path, testMAC(1)) })
	clk.advance(2 * time.Hour)
	waitFor("expire", func() bool { _, err := db.GetSeen(testMAC(1)); return errors.Is(err, ErrNotFound) })
}

// TestRunFinalFlush: with a period that never comes, only the flush Run makes when its
// context ends can write the mark.
func TestRunFinalFlush(t *testing.T) {
	db, path := openTest(t, Options{FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.Run(ctx); close(done) }()
	must(t, db.MarkSeen(testMAC(2), "", ""))
	if fileHas(t, path, testMAC(2)) {
		t.Fatal("written before Run's flush")
	}
	cancel()
	<-done
	if !fileHas(t, path, testMAC(2)) {
		t.Fatal("Run returned without its final flush")
	}
}

func fileHas(t *testing.T, path, s string) bool {
	t.Helper()
	raw, err := os.ReadFile(path)
	must(t, err)
	return bytes.Contains(raw, []byte(s))
}

func TestCloseFlushes(t *testing.T) {
	clk := newFakeClock()
	db, path := openTest(t, Options{Now: clk.now})
	must(t, db.MarkSeen("52:54:00:00:00:01", "EFI x86-64", "10.0.0.5"))
	must(t, db.AppendEvent("52:54:00:00:00:01", Event{Stage: "offer", Detail: "ipxe.efi"}))
	must(t, db.Close())
	must(t, db.Close())

	db2, err := Open(path, Options{Now: clk.now})
	must(t, err)
	defer db2.Close()
	s, err := db2.GetSeen("52:54:00:00:00:01")
	must(t, err)
	want := Seen{MAC: "52:54:00:00:00:01", FirstSeen: clk.now(), LastSeen: clk.now(), Arch: "EFI x86-64", IP: "10.0.0.5", Count: 1}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("seen after reopen (-want +got):\n%s", diff)
	}
	evs, err := db2.Events("52:54:00:00:00:01")
	must(t, err)
	if diff := cmp.Diff([]Event{{Time: clk.now(), Stage: "offer", Detail: "ipxe.efi"}}, evs); diff != "" {
		t.Errorf("events after reopen (-want +got):\n%s", diff)
	}
	if err := db.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close: %v, want ErrClosed", err)
	}
}

// where puts activity for a MAC in memory, on disk, or both.
type where int

const (
	nowhere where = iota
	pendingOnly
	diskOnly
	both
)

func (w where) put(t *testing.T, db *DB, mac string) {
	t.Helper()
	if w == diskOnly || w == both {
		must(t, db.MarkSeen(mac, "", ""))
		must(t, db.AppendEvent(mac, Event{Stage: "offer"}))
		must(t, db.Flush())
	}
	if w == pendingOnly || w == both {
		must(t, db.MarkSeen(mac, "", ""))
		must(t, db.AppendEvent(mac, Event{Stage: "tftp-sent"}))
	}
}

// gone checks mac has no activity left, now and after a flush (nothing pending comes back).
func gone(t *testing.T, db *DB, mac string) {
	t.Helper()
	for range 2 {
		if _, err := db.GetSeen(mac); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSeen after removal: %v", err)
		}
		if evs, err := db.Events(mac); err != nil || len(evs) != 0 {
			t.Fatalf("Events after removal: %v, %v", evs, err)
		}
		must(t, db.Flush())
	}
}

func TestForget(t *testing.T) {
	tests := map[string]struct {
		mac    string
		where  where
		record bool
		err    error
	}{
		"pending only":     {where: pendingOnly},
		"on disk only":     {where: diskOnly},
		"both":             {where: both},
		"record stays":     {where: both, record: true},
		"never seen":       {where: nowhere, err: ErrNotFound},
		"not a MAC":        {mac: "../x", err: ErrBadMAC},
		"other spelling":   {mac: "52-54-00-00-00-01", where: both},
		"record, no trace": {where: nowhere, record: true, err: ErrNotFound},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			db, _ := openTest(t, Options{})
			const mac = "52:54:00:00:00:01"
			if tc.record {
				_, err := db.CreateNode(Node{MAC: mac, Network: "test", Farm: 1})
				must(t, err)
			}
			tc.where.put(t, db, mac)
			must(t, db.MarkSeen("52:54:00:00:00:02", "", ""))
			arg := tc.mac
			if arg == "" {
				arg = mac
			}
			if err := db.Forget(arg); !errors.Is(err, tc.err) {
				t.Fatalf("Forget = %v, want %v", err, tc.err)
			}
			if tc.err != nil {
				return
			}
			gone(t, db, mac)
			if _, err := db.GetNode(mac); (err == nil) != tc.record {
				t.Errorf("record after Forget: %v, want present=%v", err, tc.record)
			}
			if _, err := db.GetSeen("52:54:00:00:00:02"); err != nil {
				t.Errorf("Forget removed another MAC: %v", err)
			}
		})
	}
}

func TestDeleteNodeRemovesActivity(t *testing.T) {
	for name, w := range map[string]where{"no activity": nowhere, "pending": pendingOnly, "on disk": diskOnly, "both": both} {
		t.Run(name, func(t *testing.T) {
			db, _ := openTest(t, Options{})
			const mac = "52:54:00:00:00:01"
			_, err := db.CreateNode(Node{MAC: mac, Network: "test", Farm: 1})
			must(t, err)
			w.put(t, db, mac)
			must(t, db.DeleteNode(mac))
			if _, err := db.GetNode(mac); !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetNode after delete: %v", err)
			}
			gone(t, db, mac)
			// And no key of it is left on disk.
			must(t, db.db.View(func(tx *bolt.Tx) error {
				for _, b := range [][]byte{bucketNodes, bucketSeen, bucketEvents} {
					if tx.Bucket(b).Get([]byte(mac)) != nil || tx.Bucket(b).Bucket([]byte(mac)) != nil {
						t.Errorf("%s still holds %s", b, mac)
					}
				}
				return nil
			}))
		})
	}
}

func TestFieldBounds(t *testing.T) {
	tests := map[string]struct {
		arch, ip, stage, detail string
		want                    Seen
		wantEv                  Event
	}{
		"at the bounds": {
			arch: strings.Repeat("a", MaxArchLen), ip: strings.Repeat("1", MaxIPLen),
			stage: strings.Repeat("s", MaxStageLen), detail: strings.Repeat("d", MaxDetailLen),
			want:   Seen{Arch: strings.Repeat("a", MaxArchLen), IP: strings.Repeat("1", MaxIPLen)},
			wantEv: Event{Stage: strings.Repeat("s", MaxStageLen), Detail: strings.Repeat("d", MaxDetailLen)},
		},
		"one byte over: arch and ip dropped, stage and detail cut": {
			arch: strings.Repeat("a", MaxArchLen+1), ip: strings.Repeat("1", MaxIPLen+1),
			stage: strings.Repeat("s", MaxStageLen+1), detail: strings.Repeat("d", MaxDetailLen+1),
			want:   Seen{},
			wantEv: Event{Stage: strings.Repeat("s", MaxStageLen), Detail: strings.Repeat("d", MaxDetailLen)},
		},
		"4 KiB arch": {arch: strings.Repeat("x", 4096), want: Seen{}},
		"cut on a character boundary": {
			detail: strings.Repeat("d", MaxDetailLen-1) + "é",
			wantEv: Event{Detail: strings.Repeat("d", MaxDetailLen-1)},
		},
		"multi-byte all the way": {
			detail: strings.Repeat("€", 200),
			wantEv: Event{Detail: strings.Repeat("€", MaxDetailLen/3)},
		},
		"control characters": {
			arch: "EFI\x1b[31m", ip: "10.0.0.1\n", stage: "tftp\x00", detail: "a\x1b[2Jb\u0085",
			want: Seen{}, wantEv: Event{Stage: "tftp\uFFFD", Detail: "a\uFFFD[2Jb\uFFFD"},
		},
		"a replaced control character does not push past the bound": {
			detail: strings.Repeat("d", MaxDetailLen-1) + "\x07",
			wantEv: Event{Detail: strings.Repeat("d", MaxDetailLen-1)},
		},
		"invalid UTF-8": {
			arch: "EFI\xff", stage: "off\xffer", detail: "a\xc3",
			want: Seen{}, wantEv: Event{Stage: "off\uFFFDer", Detail: "a\uFFFD"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clk := newFakeClock()
			db, _ := openTest(t, Options{Now: clk.now})
			const mac = "52:54:00:00:00:01"
			must(t, db.MarkSeen(mac, tc.arch, tc.ip))
			must(t, db.AppendEvent(mac, Event{Stage: tc.stage, Detail: tc.detail}))
			// Check what reaches the disk, not only memory.
			must(t, db.Flush())
			s, err := db.GetSeen(mac)
			must(t, err)
			if s.Arch != tc.want.Arch || s.IP != tc.want.IP {
				t.Errorf("seen arch, ip = %q, %q; want %q, %q", s.Arch, s.IP, tc.want.Arch, tc.want.IP)
			}
			evs, err := db.Events(mac)
			must(t, err)
			tc.wantEv.Time = clk.now()
			if diff := cmp.Diff([]Event{tc.wantEv}, evs); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOversizedArchKeepsPrevious: a dropped arch is like an empty one, it does not erase.
func TestOversizedArchKeepsPrevious(t *testing.T) {
	db, _ := openTest(t, Options{})
	must(t, db.MarkSeen("52:54:00:00:00:01", "EFI x86-64", "192.0.2.1"))
	must(t, db.Flush())
	must(t, db.MarkSeen("52:54:00:00:00:01", strings.Repeat("x", 4096), strings.Repeat("1", 4096)))
	s, err := db.GetSeen("52:54:00:00:00:01")
	must(t, err)
	if s.Arch != "EFI x86-64" || s.IP != "192.0.2.1" || s.Count != 2 {
		t.Fatalf("seen %+v", s)
	}
}

// TestReadsMergePending: every read shows disk and memory as one, counting nothing twice.
func TestReadsMergePending(t *testing.T) {
	clk := newFakeClock()
	db, _ := openTest(t, Options{Now: clk.now, MaxEvents: 3})
	const a, b = "52:54:00:00:00:0a", "52:54:00:00:00:0b"
	first := clk.now()
	must(t, db.MarkSeen(a, "EFI x86-64", "192.0.2.1"))
	must(t, db.AppendEvent(a, Event{Stage: "1"}))
	must(t, db.AppendEvent(a, Event{Stage: "2"}))
	must(t, db.Flush())
	clk.advance(time.Hour)
	must(t, db.MarkSeen(a, "", "192.0.2.2"))
	must(t, db.AppendEvent(a, Event{Stage: "3"}))
	must(t, db.AppendEvent(a, Event{Stage: "4"}))
	must(t, db.MarkSeen(b, "BIOS", ""))

	wantA := Seen{MAC: a, FirstSeen: first, LastSeen: clk.now(), Arch: "EFI x86-64", IP: "192.0.2.2", Count: 2}
	wantB := Seen{MAC: b, FirstSeen: clk.now(), LastSeen: clk.now(), Arch: "BIOS", Count: 1}
	check := func(when string) {
		t.Helper()
		list, err := db.ListSeen()
		must(t, err)
		if diff := cmp.Diff([]Seen{wantA, wantB}, list); diff != "" {
			t.Errorf("%s: ListSeen (-want +got):\n%s", when, diff)
		}
		got, err := db.GetSeen(a)
		must(t, err)
		if diff := cmp.Diff(wantA, got); diff != "" {
			t.Errorf("%s: GetSeen (-want +got):\n%s", when, diff)
		}
		evs, err := db.Events(a)
		must(t, err)
		var stages []string
		for _, e := range evs {
			stages = append(stages, e.Stage)
		}
		if diff := cmp.Diff([]string{"2", "3", "4"}, stages); diff != "" {
			t.Errorf("%s: Events (-want +got):\n%s", when, diff)
		}
		for _, c := range []struct {
			since time.Time
			want  int
		}{{first, 2}, {clk.now(), 2}, {clk.now().Add(time.Second), 0}} {
			if _, seen, err := db.CountNodes(c.since); err != nil || seen != c.want {
				t.Errorf("%s: CountNodes(%v) seen = %d, %v; want %d", when, c.since, seen, err, c.want)
			}
		}
	}
	check("pending")
	must(t, db.Flush())
	check("flushed")
}

// TestRestoreKeepsOrder: activity of a failed flush goes back under the newer activity.
func TestRestoreKeepsOrder(t *testing.T) {
	clk := newFakeClock()
	db, _ := openTest(t, Options{Now: clk.now, MaxEvents: 3})
	const mac = "52:54:00:00:00:01"
	t0 := clk.now()
	must(t, db.MarkSeen(mac, "EFI x86-64", "192.0.2.1"))
	must(t, db.AppendEvent(mac, Event{Stage: "1"}))
	must(t, db.AppendEvent(mac, Event{Stage: "2"}))
	batch := db.pending.Take()
	clk.advance(time.Minute)
	must(t, db.MarkSeen(mac, "", "192.0.2.9"))
	must(t, db.AppendEvent(mac, Event{Stage: "3"}))
	must(t, db.AppendEvent(mac, Event{Stage: "4"}))
	db.pending.Restore(batch)

	want := Seen{MAC: mac, FirstSeen: t0, LastSeen: clk.now(), Arch: "EFI x86-64", IP: "192.0.2.9", Count: 2}
	if diff := cmp.Diff(map[string]Seen{mac: want}, db.pending.Seen(mac)); diff != "" {
		t.Errorf("seen (-want +got):\n%s", diff)
	}
	var stages []string
	for _, e := range db.pending.Events(mac) {
		stages = append(stages, e.Stage)
	}
	if diff := cmp.Diff([]string{"2", "3", "4"}, stages); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	db.pending.mu.Lock()
	discovered := db.pending.discovered
	db.pending.mu.Unlock()
	if discovered != 1 {
		t.Errorf("pending discovered = %d, want 1", discovered)
	}
}

// TestConcurrentActivityCountsOnce: marks made while Run flushes and operators read are
// each counted once, whichever side of a flush they land on.
func TestConcurrentActivityCountsOnce(t *testing.T) {
	db, path := openTest(t, Options{FlushInterval: time.Millisecond, MaxEvents: 1000, MaxDiscoveredEvents: 1000})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.Run(ctx); close(done) }()
	const writers, marks = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range marks {
				if err := db.MarkSeen(testMAC(i%10), "", ""); err != nil {
					t.Error(err)
				}
				if err := db.AppendEvent(testMAC(w), Event{Stage: "x"}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			list, err := db.ListSeen()
			if err != nil {
				t.Error(err)
				return
			}
			var total uint64
			for _, s := range list {
				total += s.Count
			}
			if total > writers*marks {
				t.Errorf("ListSeen counts %d marks, more than the %d made", total, writers*marks)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	cancel()
	<-done
	must(t, db.Close())

	db2, err := Open(path, Options{MaxEvents: 1000})
	must(t, err)
	defer db2.Close()
	list, err := db2.ListSeen()
	must(t, err)
	var total uint64
	for _, s := range list {
		total += s.Count
	}
	if total != writers*marks {
		t.Errorf("marks on disk = %d, want %d", total, writers*marks)
	}
	for w := range writers {
		if evs, _ := db2.Events(testMAC(w)); len(evs) != marks {
			t.Errorf("events of writer %d = %d, want %d", w, len(evs), marks)
		}
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	openTest(t, Options{Registerer: reg})
	problems, err := testutil.GatherAndLint(reg)
	must(t, err)
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	must(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	want := []string{
		"bootstrapd_store_activity_dropped_total",
		"bootstrapd_store_discovered_evicted_total",
		"bootstrapd_store_expired_total",
		"bootstrapd_store_flush_duration_seconds",
		"bootstrapd_store_flush_errors_total",
	}
	slices.Sort(names)
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	// A second store on the same registry is a configuration error, not a panic.
	if _, err := Open(t.TempDir()+"/other.db", Options{Registerer: reg}); err == nil {
		t.Error("second registration succeeded")
	}
}

// TestActivityDoesNotPinCallerBuffers: a kept field is a copy, not a slice of the caller's
// (possibly huge) string, which would stay in memory until the flush.
func TestActivityDoesNotPinCallerBuffers(t *testing.T) {
	db, _ := openTest(t, Options{})
	const mac = "52:54:00:00:00:01"
	query := "EFI x86-64" + strings.Repeat("&pad=x", 1000)
	arch := query[:len("EFI x86-64")]
	detail := strings.Repeat("d", 1<<20)
	must(t, db.MarkSeen(mac, arch, "192.0.2.1"))
	must(t, db.AppendEvent(mac, Event{Stage: detail[:10], Detail: detail}))
	db.pending.mu.Lock()
	a := db.pending.entries[mac]
	db.pending.mu.Unlock()
	for name, c := range map[string]struct{ kept, caller string }{
		"arch": {a.Seen.Arch, query}, "stage": {a.Events[0].Stage, detail}, "detail": {a.Events[0].Detail, detail},
	} {
		if unsafe.StringData(c.kept) == unsafe.StringData(c.caller) {
			t.Errorf("%s shares the caller's buffer", name)
		}
	}
}

func TestTimeField(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	tests := map[string]struct {
		v     string
		field string
		want  time.Time
		ok    bool
	}{
		"event as stored":   {v: `{"time":"2026-01-02T03:04:05.123456789Z","stage":"x"}`, field: "time", want: at, ok: true},
		"seen as stored":    {v: `{"mac":"m","first_seen":"2020-01-01T00:00:00Z","last_seen":"2026-01-02T03:04:05.123456789Z","arch":"\"last_seen\":\"1999"}`, field: "last_seen", want: at, ok: true},
		"other order":       {v: `{"arch":"x","last_seen":"2026-01-02T03:04:05.123456789Z"}`, field: "last_seen", want: at, ok: true},
		"spaced (decoded)":  {v: `{"time" : "2026-01-02T03:04:05.123456789Z"}`, field: "time", want: at, ok: true},
		"missing":           {v: `{"stage":"x"}`, field: "time"},
		"not a time":        {v: `{"time":"yesterday"}`, field: "time"},
		"not JSON":          {v: `garbage`, field: "time"},
		"pattern in string": {v: `{"stage":"\"time\":\"2026-01-02T03:04:05Z"}`, field: "time"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := timeField([]byte(tc.v), tc.field)
			if ok != tc.ok || !got.Equal(tc.want) {
				t.Fatalf("timeField = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestRunStopsAfterClose: a Close under a running Run writes the activity and ends Run
// rather than leaving it to log a failed flush every period.
func TestRunStopsAfterClose(t *testing.T) {
	db, path := openTest(t, Options{FlushInterval: time.Millisecond})
	done := make(chan struct{})
	go func() { db.Run(context.Background()); close(done) }()
	must(t, db.MarkSeen(testMAC(3), "", ""))
	must(t, db.Close())
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running after Close")
	}
	if !fileHas(t, path, testMAC(3)) {
		t.Fatal("activity lost")
	}
}
