package store

import (
	"testing"
	"time"
)

// TestRevision: every change a reader can see moves Revision; reads and a flush that only
// moves activity to disk do not.
func TestRevision(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s, _ := openTest(t, Options{Now: func() time.Time { return now }, EventTTL: time.Hour})
	const mac = "52:54:00:12:34:56"
	steps := []struct {
		name  string
		do    func() error
		moves bool
	}{
		{"create", func() error { _, err := s.CreateNode(Node{MAC: mac, Network: "prod", Farm: 1}); return err }, true},
		{"get", func() error { _, err := s.GetNode(mac); return err }, false},
		{"update", func() error { _, err := s.UpdateNode(mac, func(n *Node) error { n.Farm = 2; return nil }); return err }, true},
		{"seen", func() error { return s.MarkSeen(mac, "x86_64", "10.0.0.1") }, true},
		{"event", func() error { return s.AppendEvent(mac, Event{Stage: "script_served"}) }, true},
		{"list", func() error { _, err := s.ListSeen(); return err }, false},
		{"events", func() error { _, err := s.Events(mac); return err }, false},
		{"flush", s.Flush, false},
		{"expire", func() error { now = now.Add(2 * time.Hour); return s.Flush() }, true},
		{"import", func() error {
			_, _, err := s.ImportNodes([]Node{{MAC: "52:54:00:00:00:01", Network: "prod", Farm: 1}})
			return err
		}, true},
		{"seen again", func() error { return s.MarkSeen(mac, "", "") }, true},
		{"forget", func() error { return s.Forget(mac) }, true},
		{"delete", func() error { return s.DeleteNode(mac) }, true},
	}
	for _, st := range steps {
		before := s.Revision()
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if moved := s.Revision() != before; moved != st.moves {
			t.Errorf("%s: revision moved %v, want %v", st.name, moved, st.moves)
		}
	}
}
