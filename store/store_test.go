package store

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseMAC(t *testing.T) {
	tests := map[string]struct {
		in, want string
		err      bool
	}{
		"colon":        {in: "52:54:00:aa:bb:cc", want: "52:54:00:aa:bb:cc"},
		"upper":        {in: "52:54:00:AA:BB:CC", want: "52:54:00:aa:bb:cc"},
		"hexhyp":       {in: "52-54-00-aa-bb-cc", want: "52:54:00:aa:bb:cc"},
		"dotted":       {in: "5254.00aa.bbcc", want: "52:54:00:aa:bb:cc"},
		"bare":         {in: "525400AABBCC", want: "52:54:00:aa:bb:cc"},
		"empty":        {in: "", err: true},
		"short":        {in: "52:54:00:aa:bb", err: true},
		"eui64":        {in: "52:54:00:aa:bb:cc:dd:ee", err: true},
		"bare not hex": {in: "52540zaabbcc", err: true},
		"script":       {in: "${net0/mac}", err: true},
		"newline":      {in: "52:54:00:aa:bb:cc\n", err: true},
		"traversal":    {in: "../../etc/passwd", err: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseMAC(tc.in)
			if tc.err {
				if !errors.Is(err, ErrBadMAC) {
					t.Fatalf("ParseMAC(%q) = %q, %v; want ErrBadMAC", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseMAC(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzParseMAC: whatever is accepted is normalised (parsing the result again gives the same
// string) and holds only hex digits and colons, so it is safe in a script, a URL and a key.
func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"52:54:00:aa:bb:cc", "52-54-00-AA-BB-CC", "5254.00aa.bbcc", "525400aabbcc", "", "::::::", "${mac}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		if len(m) != 17 {
			t.Fatalf("ParseMAC(%q) = %q: not aa:bb:cc:dd:ee:ff", s, m)
		}
		for i, r := range m {
			if i%3 == 2 && r != ':' || i%3 != 2 && !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				t.Fatalf("ParseMAC(%q) = %q: bad character %q at %d", s, m, r, i)
			}
		}
		if again, err := ParseMAC(m); err != nil || again != m {
			t.Fatalf("ParseMAC(%q) = %q, %v; not a fixed point", m, again, err)
		}
	})
}

// clock ticks a second at every reading, so successive timestamps differ.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func openTest(t *testing.T, opts Options) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "bootstrapd.db")
	if opts.Now == nil {
		c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		opts.Now = c.now
	}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestNodeLifecycle(t *testing.T) {
	db, path := openTest(t, Options{})
	n, err := db.CreateNode(Node{MAC: "52-54-00-AA-BB-CC", Network: "test", Farm: 42, Args: "console=ttyS0"})
	if err != nil {
		t.Fatal(err)
	}
	if n.MAC != "52:54:00:aa:bb:cc" || n.Created.IsZero() || !n.Created.Equal(n.Updated) {
		t.Fatalf("created %+v", n)
	}
	if _, err := db.CreateNode(Node{MAC: "52:54:00:aa:bb:cc", Network: "prod", Farm: 1}); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	u, err := db.UpdateNode("525400aabbcc", func(n *Node) error { n.Farm = 7; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if u.Farm != 7 || u.Network != "test" || !u.Created.Equal(n.Created) || !u.Updated.After(n.Updated) {
		t.Fatalf("updated %+v (created %+v)", u, n)
	}
	// A failing change leaves the record as it was.
	boom := errors.New("boom")
	if _, err := db.UpdateNode(n.MAC, func(n *Node) error { n.Farm = 99; return boom }); !errors.Is(err, boom) {
		t.Fatalf("update error = %v", err)
	}
	got, err := db.GetNode(n.MAC)
	if err != nil || got.Farm != 7 {
		t.Fatalf("after failed update: %+v, %v", got, err)
	}
	if _, err := db.UpdateNode("52:54:00:00:00:01", func(*Node) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}

	// Records survive a reopen.
	db.Close()
	db2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	list, err := db2.ListNodes()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Node{got}, list); diff != "" {
		t.Fatalf("after reopen (-want +got):\n%s", diff)
	}
	if err := db2.DeleteNode(n.MAC); err != nil {
		t.Fatal(err)
	}
	if err := db2.DeleteNode(n.MAC); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestImportIsAllOrNothing(t *testing.T) {
	db, _ := openTest(t, Options{})
	if _, err := db.CreateNode(Node{MAC: "52:54:00:00:00:01", Network: "prod", Farm: 1}); err != nil {
		t.Fatal(err)
	}
	bad := []Node{{MAC: "52:54:00:00:00:02", Network: "test", Farm: 2}, {MAC: "nonsense", Network: "test", Farm: 3}}
	if _, _, err := db.ImportNodes(bad); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("import with a bad MAC: %v", err)
	}
	if list, _ := db.ListNodes(); len(list) != 1 {
		t.Fatalf("a failed import changed the store: %+v", list)
	}
	good := []Node{{MAC: "52:54:00:00:00:01", Network: "test", Farm: 9}, {MAC: "52:54:00:00:00:02", Network: "test", Farm: 2}}
	created, updated, err := db.ImportNodes(good)
	if err != nil || created != 1 || updated != 1 {
		t.Fatalf("import = %d, %d, %v; want 1, 1, nil", created, updated, err)
	}
	n, _ := db.GetNode("52:54:00:00:00:01")
	if n.Farm != 9 || n.Network != "test" {
		t.Fatalf("import did not replace: %+v", n)
	}
}

func TestSeenAndEvents(t *testing.T) {
	db, _ := openTest(t, Options{MaxEvents: 3})
	if err := db.MarkSeen("52:54:00:00:00:01", "EFI x86-64", "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkSeen("52:54:00:00:00:01", "", ""); err != nil {
		t.Fatal(err)
	}
	s, err := db.GetSeen("52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	if s.Count != 2 || s.Arch != "EFI x86-64" || s.IP != "10.0.0.5" || !s.LastSeen.After(s.FirstSeen) {
		t.Fatalf("seen %+v", s)
	}
	for i, stage := range []string{"offer", "tftp", "script", "kernel", "kernel-sent"} {
		if err := db.AppendEvent("52:54:00:00:00:01", Event{Stage: stage, Detail: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := db.Events("52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, e := range evs {
		stages = append(stages, e.Stage)
	}
	if diff := cmp.Diff([]string{"script", "kernel", "kernel-sent"}, stages); diff != "" {
		t.Fatalf("events kept (-want +got):\n%s", diff)
	}
	if evs, _ := db.Events("52:54:00:00:00:02"); len(evs) != 0 {
		t.Fatalf("events of an unknown MAC: %+v", evs)
	}
}

func TestSecondProcessIsRefused(t *testing.T) {
	_, path := openTest(t, Options{})
	// bbolt's flock is per open file description, so a second Open in this process stands
	// in for a second process.
	_, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}
