package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/etcdstore"
	"github.com/threefoldtech/bootstrapd/store/etcdstore/etcdtest"
	"github.com/threefoldtech/bootstrapd/store/storetest"
)

var prefixes atomic.Int64

// open opens a store on endpoints under a prefix of its own, so tests share one etcd.
func open(t *testing.T, endpoints []string, name, prefix string, opts store.Options) *etcdstore.DB {
	t.Helper()
	s, err := etcdstore.Open(etcdstore.Config{
		Endpoints: endpoints, Prefix: prefix, Name: name, DialTimeout: 2 * time.Second, Options: opts,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newPrefix() string { return fmt.Sprintf("/test%d/", prefixes.Add(1)) }

// TestSuite runs the backend-independent suite against a real etcd.
func TestSuite(t *testing.T) {
	c := etcdtest.Start(t, 1)
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		return open(t, c.Endpoints(), "a", newPrefix(), opts)
	})
}

// eventually retries check until it passes or 10 s have passed.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTwoAppliancesShare: a record written through A is in B's copy, activity from both is
// merged, and each event names its appliance.
func TestTwoAppliancesShare(t *testing.T) {
	c := etcdtest.Start(t, 1)
	p := newPrefix()
	a := open(t, c.Endpoints(), "a", p, store.Options{})
	defer a.Close()
	b := open(t, c.Endpoints(), "b", p, store.Options{})
	defer b.Close()
	const mac = "52:54:00:00:00:0a"
	if _, err := a.CreateNode(store.Node{MAC: mac, Network: "prod", Farm: 3}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "record created on A in B's copy", func() error {
		n, err := b.GetNode(mac)
		if err == nil && n.Farm != 3 {
			return fmt.Errorf("farm %d", n.Farm)
		}
		return err
	})
	if _, err := b.CreateNode(store.Node{MAC: mac, Network: "dev"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create on B over A's record: %v, want ErrExists", err)
	}
	if _, err := b.UpdateNode(mac, func(n *store.Node) error { n.Farm = 4; return nil }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "update on B in A's copy", func() error {
		if n, _ := a.GetNode(mac); n.Farm != 4 {
			return fmt.Errorf("farm %d", n.Farm)
		}
		return nil
	})
	for _, s := range []*etcdstore.DB{a, b} {
		if err := s.MarkSeen(mac, "x86_64-efi", "10.0.0.9"); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendEvent(mac, store.Event{Stage: "script_served"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	sn, err := a.GetSeen(mac)
	if err != nil || sn.Count != 2 {
		t.Fatalf("seen through A: %+v, %v; want the marks of both appliances (2)", sn, err)
	}
	evs, err := a.Events(mac)
	if err != nil || len(evs) != 2 || evs[0].Appliance != "a" || evs[1].Appliance != "b" {
		t.Fatalf("events through A: %+v, %v; want one from a, then one from b", evs, err)
	}
	if err := b.DeleteNode(mac); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delete on B in A's copy", func() error {
		if _, err := a.GetNode(mac); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("GetNode: %v", err)
		}
		return nil
	})
}

// TestImportThousand: 1,000 records land in one transaction, and a conflicting import
// from another appliance does not mix with it.
func TestImportThousand(t *testing.T) {
	c := etcdtest.Start(t, 1)
	p := newPrefix()
	a := open(t, c.Endpoints(), "a", p, store.Options{})
	defer a.Close()
	b := open(t, c.Endpoints(), "b", p, store.Options{})
	defer b.Close()
	var nodes []store.Node
	for i := range 1000 {
		nodes = append(nodes, store.Node{MAC: fmt.Sprintf("52:54:00:01:%02x:%02x", i/256, i%256), Network: "prod", Farm: 1})
	}
	cr, up, err := a.ImportNodes(nodes)
	if err != nil || cr != 1000 || up != 0 {
		t.Fatalf("import 1000: %d created, %d updated, %v", cr, up, err)
	}
	eventually(t, "1000 records in B's copy", func() error {
		if l, _ := b.ListNodes(); len(l) != 1000 {
			return fmt.Errorf("%d records", len(l))
		}
		return nil
	})
}

// TestEtcdDown: with etcd gone, boots go on from the copy, writes fail and change
// nothing, the metric says so; when etcd returns, the copy catches up without a restart.
func TestEtcdDown(t *testing.T) {
	c := etcdtest.Start(t, 3)
	p := newPrefix()
	reg := prometheus.NewRegistry()
	// A talks only to member 0; B to the other two.
	a, err := etcdstore.Open(etcdstore.Config{
		Endpoints: c.Endpoints()[:1], Prefix: p, Name: "a", DialTimeout: time.Second,
		CacheFile: filepath.Join(t.TempDir(), "copy.json"), Options: store.Options{Registerer: reg},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := open(t, c.Endpoints()[1:], "b", p, store.Options{})
	defer b.Close()
	// Member 0 first: the client talks to it until it dies.
	all := open(t, c.Endpoints(), "c", p, store.Options{})
	defer all.Close()
	const known, later = "52:54:00:00:00:0b", "52:54:00:00:00:0c"
	if _, err := a.CreateNode(store.Node{MAC: known, Network: "prod"}); err != nil {
		t.Fatal(err)
	}
	up := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "bootstrapd_store_etcd_up" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	if up() != 1 {
		t.Fatalf("bootstrapd_store_etcd_up = %v with etcd up, want 1", up())
	}

	if err := a.MarkSeen(known, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	if k, s, err := a.CountNodes(time.Time{}); err != nil || k != 1 || s != 1 {
		t.Fatalf("CountNodes with etcd up = %d, %d, %v; want 1, 1", k, s, err)
	}
	c.Members[0].Kill()
	eventually(t, "A notices etcd is gone", func() error {
		if v := up(); v != 0 {
			return fmt.Errorf("bootstrapd_store_etcd_up = %v", v)
		}
		return nil
	})
	if _, err := a.GetNode(known); err != nil {
		t.Fatalf("GetNode from the copy with etcd gone: %v", err)
	}
	// /metrics still answers: counts from the copy and the last read.
	if k, s, err := a.CountNodes(time.Time{}); err != nil || k != 1 || s != 1 {
		t.Fatalf("CountNodes with etcd gone = %d, %d, %v; want 1, 1 from the last read", k, s, err)
	}
	if _, err := a.CreateNode(store.Node{MAC: later, Network: "prod"}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("create with etcd gone: %v, want ErrUnavailable", err)
	}
	if _, _, err := a.ImportNodes([]store.Node{{MAC: later, Network: "prod"}}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("import with etcd gone: %v, want ErrUnavailable", err)
	}
	// A 3-member cluster with one member killed still takes writes: through B (the two
	// members left), and through a client of all three, which fails over from the dead one.
	// If the killed member led, the other two elect a leader first (a timed-out attempt may
	// have landed: ErrExists then counts as written).
	for _, w := range []struct {
		what string
		s    *etcdstore.DB
		mac  string
	}{{"write to the 2 members left", b, later}, {"write through a client of all 3 members, one killed", all, "52:54:00:00:00:0e"}} {
		eventually(t, w.what, func() error {
			_, err := w.s.CreateNode(store.Node{MAC: w.mac, Network: "test"})
			if errors.Is(err, store.ErrExists) {
				return nil
			}
			return err
		})
	}
	if _, err := a.GetNode(later); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("A saw a record while cut off: %v", err)
	}
	// Activity while cut off waits in memory.
	if err := a.AppendEvent(known, store.Event{Stage: "script_served"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("flush with etcd gone: %v, want ErrUnavailable", err)
	}

	c.Members[0].Restart(t)
	eventually(t, "A catches up with the record written meanwhile", func() error {
		n, err := a.GetNode(later)
		if err == nil && n.Network != "test" {
			return fmt.Errorf("network %q", n.Network)
		}
		return err
	})
	eventually(t, "bootstrapd_store_etcd_up back to 1", func() error {
		if v := up(); v != 1 {
			return fmt.Errorf("bootstrapd_store_etcd_up = %v after etcd returned", v)
		}
		return nil
	})
	eventually(t, "the held event is written", func() error {
		if err := a.Flush(); err != nil {
			return err
		}
		evs, err := b.Events(known)
		if err == nil && len(evs) != 1 {
			return fmt.Errorf("%d events", len(evs))
		}
		return err
	})
	if got := testutil.ToFloat64(prometheusCounter(t, reg, "bootstrapd_store_etcd_loads_total")); got < 2 {
		t.Fatalf("bootstrapd_store_etcd_loads_total = %v, want a reload after the outage", got)
	}
}

// prometheusCounter finds a counter by name in reg, as a collector testutil can read.
func prometheusCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name})
			g.Set(mf.GetMetric()[0].GetCounter().GetValue())
			return g
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// TestStartFromCacheFile: an appliance started while etcd is down boots the nodes it knew,
// and one with no copy on disk refuses to start.
func TestStartFromCacheFile(t *testing.T) {
	c := etcdtest.Start(t, 1)
	p := newPrefix()
	cache := filepath.Join(t.TempDir(), "copy.json")
	const mac = "52:54:00:00:00:0d"
	a, err := etcdstore.Open(etcdstore.Config{Endpoints: c.Endpoints(), Prefix: p, Name: "a", DialTimeout: time.Second, CacheFile: cache})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateNode(store.Node{MAC: mac, Network: "prod", Farm: 9}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	c.Members[0].Kill()
	for name, tc := range map[string]struct {
		cache   string
		wantErr string
	}{
		"with copy":    {cache: cache},
		"without copy": {cache: filepath.Join(t.TempDir(), "none.json"), wantErr: "no copy of the records"},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := etcdstore.Open(etcdstore.Config{Endpoints: c.Endpoints(), Prefix: p, Name: "a", DialTimeout: time.Second, CacheFile: tc.cache})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open = %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if n, err := s.GetNode(mac); err != nil || n.Farm != 9 {
				t.Fatalf("GetNode from the copy on disk: %+v, %v", n, err)
			}
		})
	}
}

// TestOpenRefusesBadConfig: a bad name or prefix is an error naming it.
func TestOpenRefusesBadConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  etcdstore.Config
		want string
	}{
		"no endpoints": {etcdstore.Config{Name: "a"}, "no endpoints"},
		"bad name":     {etcdstore.Config{Endpoints: []string{"http://127.0.0.1:1"}, Name: "a/b"}, "appliance name"},
		"prefix":       {etcdstore.Config{Endpoints: []string{"http://127.0.0.1:1"}, Name: "a", Prefix: "/x"}, "does not end with /"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := etcdstore.Open(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestSpoofedMACFlood: MACs without a record beyond MaxDiscovered, from two appliances, are
// dropped in memory or evicted from etcd: what etcd holds stays bounded, the real node's
// activity is kept, and the drops are counted.
func TestSpoofedMACFlood(t *testing.T) {
	c := etcdtest.Start(t, 1)
	p := newPrefix()
	reg := prometheus.NewRegistry()
	opts := store.Options{MaxDiscovered: 50, MaxDiscoveredEvents: 2, Registerer: reg}
	a := open(t, c.Endpoints(), "a", p, opts)
	defer a.Close()
	opts.Registerer = nil
	b := open(t, c.Endpoints(), "b", p, opts)
	defer b.Close()
	const real = "52:54:00:00:00:0f"
	if _, err := a.CreateNode(store.Node{MAC: real, Network: "prod"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the record in b's copy", func() error { _, err := b.GetNode(real); return err })
	for round := range 4 {
		for i := range 200 {
			for _, s := range []*etcdstore.DB{a, b} {
				mac := fmt.Sprintf("02:%02x:00:00:%02x:%02x", round, i/256, i%256)
				if err := s.MarkSeen(mac, "x86_64", "10.0.0.1"); err != nil {
					t.Fatal(err)
				}
				for range 5 {
					if err := s.AppendEvent(mac, store.Event{Stage: "offer_binary"}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		for _, s := range []*etcdstore.DB{a, b} {
			if err := s.MarkSeen(real, "", ""); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen, err := a.ListSeen()
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) > 51 {
		t.Fatalf("%d MACs seen after the flood, want at most 50 discovered + the record's", len(seen))
	}
	sn, err := a.GetSeen(real)
	if err != nil || sn.Count != 8 {
		t.Fatalf("the record's MAC after the flood: %+v, %v; want all 8 marks kept", sn, err)
	}
	cli := c.Client(t)
	resp, err := cli.Get(context.Background(), p+"events/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count > 50*2 {
		t.Fatalf("%d events in etcd after the flood, want at most 50 MACs × 2", resp.Count)
	}
	if got := testutil.ToFloat64(prometheusCounter(t, reg, "bootstrapd_store_activity_dropped_total")); got == 0 {
		t.Fatalf("bootstrapd_store_activity_dropped_total = 0 after 800 new MACs with max_discovered 50")
	}
	t.Logf("after 1,600 spoofed MACs through two appliances: %d seen MACs, %d events in etcd", len(seen), resp.Count)
}
