// Package storetest is the one test suite every store.Store backend passes: the bbolt file
// (package store) and etcd (package etcdstore) run it with a real database each, so the
// rest of bootstrapd can count on the same behaviour from both.
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/bootstrapd/store"
)

// Clock ticks a second at every reading, so successive timestamps differ.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the time and advances it by a second.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Opener opens an empty store with opts (Now set by the suite); the suite closes it.
type Opener func(t *testing.T, opts store.Options) store.Store

// Run runs every case against the backend open makes.
func Run(t *testing.T, open Opener) {
	cases := []struct {
		name string
		run  func(*testing.T, Opener)
	}{
		{"NodeLifecycle", testNodeLifecycle},
		{"CreateDoesNotOverwrite", testCreateDoesNotOverwrite},
		{"ImportAllOrNothing", testImportAllOrNothing},
		{"ImportKeepsCreated", testImportKeepsCreated},
		{"SeenAndEvents", testSeenAndEvents},
		{"EventBounds", testEventBounds},
		{"DiscoveredCap", testDiscoveredCap},
		{"TTL", testTTL},
		{"Forget", testForget},
		{"DeleteRemovesActivity", testDeleteRemovesActivity},
		{"FieldBounds", testFieldBounds},
		{"BadMAC", testBadMAC},
		{"RestoreIsIdempotent", testRestore},
		{"RevisionMoves", testRevision},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, open) })
	}
}

func openWith(t *testing.T, open Opener, clk *Clock, opts store.Options) store.Store {
	t.Helper()
	opts.Now = clk.Now
	s := open(t, opts)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	mac1 = "52:54:00:00:00:01"
	mac2 = "52:54:00:00:00:02"
	mac3 = "52:54:00:00:00:03"
)

// ok returns a checker of a (value, error) result: the value, or the test fails.
func ok[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func node(t *testing.T) func(store.Node, error) store.Node         { return ok[store.Node](t) }
func nodes(t *testing.T) func([]store.Node, error) []store.Node    { return ok[[]store.Node](t) }
func events(t *testing.T) func([]store.Event, error) []store.Event { return ok[[]store.Event](t) }
func seen(t *testing.T) func(store.Seen, error) store.Seen         { return ok[store.Seen](t) }
func seens(t *testing.T) func([]store.Seen, error) []store.Seen    { return ok[[]store.Seen](t) }

func testNodeLifecycle(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	n := node(t)(s.CreateNode(store.Node{MAC: "52-54-00-00-00-01", Network: "prod", Farm: 7, Args: "a=b"}))
	if n.MAC != mac1 || n.Created.IsZero() || !n.Created.Equal(n.Updated) {
		t.Fatalf("created %+v: want normalised MAC and Created = Updated", n)
	}
	got := node(t)(s.GetNode("525400000001"))
	if got.Network != "prod" || got.Farm != 7 || got.Args != "a=b" || !got.Created.Equal(n.Created) {
		t.Fatalf("GetNode = %+v, want %+v", got, n)
	}
	up := node(t)(s.UpdateNode(mac1, func(n *store.Node) error { n.Farm = 8; return nil }))
	if up.Farm != 8 || !up.Updated.After(up.Created) {
		t.Fatalf("updated %+v: want farm 8 and a later Updated", up)
	}
	boom := errors.New("refused")
	if _, err := s.UpdateNode(mac1, func(n *store.Node) error { n.Farm = 9; return boom }); !errors.Is(err, boom) {
		t.Fatalf("UpdateNode with a failing change: %v, want %v", err, boom)
	}
	if got := node(t)(s.GetNode(mac1)); got.Farm != 8 {
		t.Fatalf("a failed update changed the record: farm %d", got.Farm)
	}
	if _, err := s.UpdateNode(mac2, func(*store.Node) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateNode of no record: %v, want ErrNotFound", err)
	}
	node(t)(s.CreateNode(store.Node{MAC: mac2, Network: "test"}))
	list := nodes(t)(s.ListNodes())
	if len(list) != 2 || list[0].MAC != mac1 || list[1].MAC != mac2 {
		t.Fatalf("ListNodes = %+v, want %s then %s", list, mac1, mac2)
	}
	if err := s.DeleteNode(mac1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetNode(mac1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetNode after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteNode(mac1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	known, _ := must2(t)(s.CountNodes(epoch))
	if known != 1 {
		t.Fatalf("CountNodes known = %d, want 1", known)
	}
}

func must2(t *testing.T) func(a, b int, err error) (int, int) {
	return func(a, b int, err error) (int, int) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

func testCreateDoesNotOverwrite(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	node(t)(s.CreateNode(store.Node{MAC: mac1, Network: "prod", Farm: 1}))
	// Concurrent creates of one MAC: exactly one wins.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := s.CreateNode(store.Node{MAC: mac2, Network: "test", Farm: uint64(i + 1)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrExists):
			t.Fatalf("concurrent create: %v, want nil or ErrExists", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent creates succeeded, want 1", ok)
	}
	if _, err := s.CreateNode(store.Node{MAC: mac1, Network: "dev", Farm: 2}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create over a record: %v, want ErrExists", err)
	}
	if got := node(t)(s.GetNode(mac1)); got.Network != "prod" || got.Farm != 1 {
		t.Fatalf("a refused create changed the record: %+v", got)
	}
}

func testImportAllOrNothing(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	node(t)(s.CreateNode(store.Node{MAC: mac1, Network: "prod", Farm: 1}))
	_, _, err := s.ImportNodes([]store.Node{
		{MAC: mac2, Network: "test"}, {MAC: "not-a-mac", Network: "test"}, {MAC: mac1, Network: "dev"},
	})
	if !errors.Is(err, store.ErrBadMAC) {
		t.Fatalf("import with a bad MAC: %v, want ErrBadMAC", err)
	}
	if _, err := s.GetNode(mac2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed import left a record behind: %v", err)
	}
	if got := node(t)(s.GetNode(mac1)); got.Network != "prod" {
		t.Fatalf("a failed import changed a record: %+v", got)
	}
	var batch []store.Node
	for i := range 100 {
		batch = append(batch, store.Node{MAC: fmt.Sprintf("52:54:00:00:10:%02x", i), Network: "test", Farm: uint64(i)})
	}
	batch = append(batch, store.Node{MAC: mac1, Network: "dev", Farm: 5})
	c, u, err := s.ImportNodes(batch)
	if err != nil || c != 100 || u != 1 {
		t.Fatalf("ImportNodes = %d created, %d updated, %v; want 100, 1, nil", c, u, err)
	}
	if got := nodes(t)(s.ListNodes()); len(got) != 101 {
		t.Fatalf("%d records after the import, want 101", len(got))
	}
	if got := node(t)(s.GetNode("52:54:00:00:10:63")); got.Farm != 99 {
		t.Fatalf("imported record %+v, want farm 99", got)
	}
}

func testImportKeepsCreated(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	n := node(t)(s.CreateNode(store.Node{MAC: mac1, Network: "prod", Farm: 1}))
	must2(t)(s.ImportNodes([]store.Node{{MAC: mac1, Network: "dev", Farm: 2}}))
	got := node(t)(s.GetNode(mac1))
	if !got.Created.Equal(n.Created) || !got.Updated.After(n.Created) || got.Network != "dev" {
		t.Fatalf("replaced record %+v: want Created %v kept, a later Updated, network dev", got, n.Created)
	}
}

func testSeenAndEvents(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	for _, ip := range []string{"10.0.0.5", "", "10.0.0.6"} {
		if err := s.MarkSeen(mac1, "x86_64-efi", ip); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []string{"offer_script", "script_served"} {
		if err := s.AppendEvent(mac1, store.Event{Stage: st, Detail: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		sn := seen(t)(s.GetSeen(mac1))
		if sn.Count != 3 || sn.IP != "10.0.0.6" || sn.Arch != "x86_64-efi" || !sn.LastSeen.After(sn.FirstSeen) {
			t.Fatalf("%s: GetSeen = %+v, want 3 marks, last IP 10.0.0.6", when, sn)
		}
		evs := events(t)(s.Events(mac1))
		if len(evs) != 2 || evs[0].Stage != "offer_script" || evs[1].Stage != "script_served" || !evs[1].Time.After(evs[0].Time) {
			t.Fatalf("%s: Events = %+v, want offer_script then script_served", when, evs)
		}
		list := seens(t)(s.ListSeen())
		if len(list) != 1 || list[0].MAC != mac1 {
			t.Fatalf("%s: ListSeen = %+v", when, list)
		}
		if _, seen := must2(t)(s.CountNodes(epoch)); seen != 1 {
			t.Fatalf("%s: CountNodes seen = %d, want 1", when, seen)
		}
		if _, seen := must2(t)(s.CountNodes(epoch.Add(time.Hour))); seen != 0 {
			t.Fatalf("%s: CountNodes seen since later = %d, want 0", when, seen)
		}
	}
	check("pending")
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	check("flushed")
	// Marks after a flush add to the stored entry.
	if err := s.MarkSeen(mac1, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if sn := seen(t)(s.GetSeen(mac1)); sn.Count != 4 || sn.IP != "10.0.0.6" {
		t.Fatalf("after a fourth mark: %+v, want count 4, IP kept", sn)
	}
	if _, err := s.GetSeen(mac2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSeen of a MAC never seen: %v, want ErrNotFound", err)
	}
}

func testEventBounds(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{MaxEvents: 5, MaxDiscoveredEvents: 2})
	node(t)(s.CreateNode(store.Node{MAC: mac1, Network: "prod"}))
	for i := range 8 {
		for _, m := range []string{mac1, mac2} {
			if err := s.AppendEvent(m, store.Event{Stage: fmt.Sprintf("s%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		// Half of them written, half pending: the bound holds across both.
		if i == 3 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mac   string
		want  int
		first string
	}{{mac1, 5, "s3"}, {mac2, 2, "s6"}} {
		evs := events(t)(s.Events(tc.mac))
		if len(evs) != tc.want || evs[0].Stage != tc.first || evs[len(evs)-1].Stage != "s7" {
			t.Fatalf("Events(%s) = %+v, want the newest %d, %s to s7", tc.mac, evs, tc.want, tc.first)
		}
	}
}

func testDiscoveredCap(t *testing.T, open Opener) {
	clk := NewClock(epoch)
	s := openWith(t, open, clk, store.Options{MaxDiscovered: 3})
	node(t)(s.CreateNode(store.Node{MAC: mac1, Network: "prod"}))
	if err := s.MarkSeen(mac1, "", ""); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := s.MarkSeen(fmt.Sprintf("52:54:00:00:20:%02x", i), "", ""); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	list := seens(t)(s.ListSeen())
	var macs []string
	for _, sn := range list {
		macs = append(macs, sn.MAC)
	}
	want := []string{mac1, "52:54:00:00:20:03", "52:54:00:00:20:04", "52:54:00:00:20:05"}
	if fmt.Sprint(macs) != fmt.Sprint(want) {
		t.Fatalf("seen after 6 unknown MACs with max_discovered 3: %v, want %v (the record's MAC and the 3 newest)", macs, want)
	}
}

func testTTL(t *testing.T, open Opener) {
	clk := NewClock(epoch)
	s := openWith(t, open, clk, store.Options{EventTTL: time.Hour})
	node(t)(s.CreateNode(store.Node{MAC: mac1, Network: "prod"}))
	for _, m := range []string{mac1, mac2} {
		if err := s.MarkSeen(m, "", ""); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendEvent(m, store.Event{Stage: "old"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	if err := s.AppendEvent(mac1, store.Event{Stage: "new"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if evs := events(t)(s.Events(mac1)); len(evs) != 1 || evs[0].Stage != "new" {
		t.Fatalf("events of the record after the TTL: %+v, want only the new one", evs)
	}
	if evs := events(t)(s.Events(mac2)); len(evs) != 0 {
		t.Fatalf("events of an unknown MAC after the TTL: %+v, want none", evs)
	}
	if _, err := s.GetSeen(mac2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("seen entry of an unknown MAC after the TTL: %v, want ErrNotFound", err)
	}
	if _, err := s.GetSeen(mac1); err != nil {
		t.Fatalf("seen entry of a record's MAC expired: %v", err)
	}
}

func testForget(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	node(t)(s.CreateNode(store.Node{MAC: mac1, Network: "prod"}))
	for _, m := range []string{mac1, mac2} {
		if err := s.MarkSeen(m, "", ""); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendEvent(m, store.Event{Stage: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvent(mac2, store.Event{Stage: "pending"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{mac1, mac2} {
		if err := s.Forget(m); err != nil {
			t.Fatalf("Forget(%s): %v", m, err)
		}
		if evs := events(t)(s.Events(m)); len(evs) != 0 {
			t.Fatalf("events of %s after Forget: %+v", m, evs)
		}
		if _, err := s.GetSeen(m); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("seen of %s after Forget: %v", m, err)
		}
	}
	if _, err := s.GetNode(mac1); err != nil {
		t.Fatalf("Forget removed the record: %v", err)
	}
	if err := s.Forget(mac3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Forget of nothing: %v, want ErrNotFound", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if evs := events(t)(s.Events(mac2)); len(evs) != 0 {
		t.Fatalf("a flush wrote back forgotten events: %+v", evs)
	}
}

func testDeleteRemovesActivity(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	node(t)(s.CreateNode(store.Node{MAC: mac1, Network: "prod"}))
	if err := s.MarkSeen(mac1, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvent(mac1, store.Event{Stage: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNode(mac1); err != nil {
		t.Fatal(err)
	}
	if evs := events(t)(s.Events(mac1)); len(evs) != 0 {
		t.Fatalf("events after DeleteNode: %+v", evs)
	}
	if _, err := s.GetSeen(mac1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("seen after DeleteNode: %v", err)
	}
}

func testFieldBounds(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	long := string(make([]byte, 1000))
	if err := s.AppendEvent(mac1, store.Event{Stage: "a\x1b[2Jb" + long, Detail: long + long, Appliance: long}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSeen(mac1, long, "10.0.0.1\n"); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	ev := events(t)(s.Events(mac1))[0]
	if len(ev.Stage) > store.MaxStageLen || len(ev.Detail) > store.MaxDetailLen || len(ev.Appliance) > store.MaxStageLen || ev.Stage[1] == 0x1b {
		t.Fatalf("stored event stage %q (%d B), detail %d B: want cut and no control character", ev.Stage, len(ev.Stage), len(ev.Detail))
	}
	if sn := seen(t)(s.GetSeen(mac1)); sn.Arch != "" || sn.IP != "" {
		t.Fatalf("stored seen %+v: an oversized arch and an IP with a newline must be dropped", sn)
	}
}

func testBadMAC(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	for _, bad := range []string{"", "../x", "${mac}", "52:54:00:00:00:01:02:03"} {
		_, err := s.CreateNode(store.Node{MAC: bad})
		for name, err := range map[string]error{
			"CreateNode":  err,
			"GetNode":     second(s.GetNode(bad)),
			"DeleteNode":  s.DeleteNode(bad),
			"MarkSeen":    s.MarkSeen(bad, "", ""),
			"AppendEvent": s.AppendEvent(bad, store.Event{Stage: "x"}),
			"Forget":      s.Forget(bad),
		} {
			if !errors.Is(err, store.ErrBadMAC) {
				t.Errorf("%s(%q): %v, want ErrBadMAC", name, bad, err)
			}
		}
	}
}

func second[T any](_ T, err error) error { return err }

func testRestore(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	r, isRestorer := s.(store.Restorer)
	if !isRestorer {
		t.Fatalf("%T is no store.Restorer: `bootstrapd store copy` cannot write to it", s)
	}
	at := func(min int) time.Time { return epoch.Add(time.Duration(min) * time.Minute) }
	d := store.Dump{
		Nodes: []store.Node{{MAC: mac1, Network: "prod", Farm: 4, Args: "x=y", Created: at(1), Updated: at(2)}},
		Seen: []store.Seen{
			{MAC: mac1, FirstSeen: at(3), LastSeen: at(4), Arch: "x86_64-efi", IP: "10.0.0.1", Count: 7},
			{MAC: mac2, FirstSeen: at(5), LastSeen: at(6), Count: 1},
		},
		Events: map[string][]store.Event{
			mac1: {{Time: at(3), Stage: "offer_script"}, {Time: at(3), Stage: "script_served", Appliance: "a"}, {Time: at(4), Stage: "kernel_sent", Detail: "k"}},
			mac2: {{Time: at(5), Stage: "offer_binary"}},
		},
	}
	// Activity already there for mac2 is replaced, not added to.
	if err := s.AppendEvent(mac2, store.Event{Stage: "before"}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := r.Restore(d); err != nil {
			t.Fatalf("Restore #%d: %v", i+1, err)
		}
		got, err := store.ReadDump(s)
		if err != nil {
			t.Fatal(err)
		}
		norm := func(d store.Dump) string {
			for _, n := range d.Nodes {
				n.Created, n.Updated = n.Created.UTC(), n.Updated.UTC()
			}
			return fmt.Sprintf("%+v", d)
		}
		if !reflect.DeepEqual(norm(got), norm(d)) {
			t.Fatalf("after Restore #%d, the store holds\n%s\nwant\n%s", i+1, norm(got), norm(d))
		}
	}
}

// testRevision: every change a reader can see moves Revision.
func testRevision(t *testing.T, open Opener) {
	s := openWith(t, open, NewClock(epoch), store.Options{})
	for _, st := range []struct {
		name string
		do   func() error
	}{
		{"create", func() error { _, err := s.CreateNode(store.Node{MAC: mac1, Network: "prod"}); return err }},
		{"update", func() error {
			_, err := s.UpdateNode(mac1, func(n *store.Node) error { n.Farm = 2; return nil })
			return err
		}},
		{"import", func() error { _, _, err := s.ImportNodes([]store.Node{{MAC: mac2, Network: "prod"}}); return err }},
		{"seen", func() error { return s.MarkSeen(mac3, "", "") }},
		{"event", func() error { return s.AppendEvent(mac3, store.Event{Stage: "x"}) }},
		{"forget", func() error { return s.Forget(mac3) }},
		{"delete", func() error { return s.DeleteNode(mac2) }},
	} {
		before := s.Revision()
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if s.Revision() == before {
			t.Errorf("%s: Revision stayed %d", st.name, before)
		}
	}
}
