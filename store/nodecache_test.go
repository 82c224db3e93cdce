package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// Every way a record changes is seen by the next GetNode, though the one before it was
// answered from memory.
func TestGetNodeSeesEveryWrite(t *testing.T) {
	const mac = "52:54:00:00:00:01"
	for _, tc := range []struct {
		name  string
		write func(db *DB) error
		want  string // the record's network afterwards; "" for no record
	}{
		{"update", func(db *DB) error {
			_, err := db.UpdateNode(mac, func(n *Node) error { n.Network = "dev"; return nil })
			return err
		}, "dev"},
		{"failed update changes nothing", func(db *DB) error {
			_, err := db.UpdateNode(mac, func(n *Node) error { n.Network = "dev"; return errors.New("refused") })
			if err == nil {
				return errors.New("the update did not fail")
			}
			return nil
		}, "test"},
		{"delete", func(db *DB) error { return db.DeleteNode(mac) }, ""},
		{"import", func(db *DB) error {
			_, _, err := db.ImportNodes([]Node{{MAC: mac, Network: "qa", Farm: 2}})
			return err
		}, "qa"},
		{"restore", func(db *DB) error {
			return db.Restore(Dump{Nodes: []Node{{MAC: mac, Network: "prod", Farm: 3}}})
		}, "prod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTest(t, Options{})
			if _, err := db.CreateNode(Node{MAC: mac, Network: "test", Farm: 1}); err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second read is the cached one
				if n, err := db.GetNode(mac); err != nil || n.Network != "test" {
					t.Fatalf("before: %+v, %v", n, err)
				}
			}
			if err := tc.write(db); err != nil {
				t.Fatal(err)
			}
			n, err := db.GetNode(mac)
			switch {
			case tc.want == "" && !errors.Is(err, ErrNotFound):
				t.Fatalf("after: %+v, %v; want ErrNotFound", n, err)
			case tc.want != "" && (err != nil || n.Network != tc.want):
				t.Fatalf("after: %+v, %v; want network %s", n, err, tc.want)
			}
		})
	}
}

// Readers racing a writer never see a record older than the last update that returned
// before their read began (run with -race).
func TestGetNodeRacingWrites(t *testing.T) {
	db, _ := openTest(t, Options{})
	const mac = "52:54:00:00:00:02"
	if _, err := db.CreateNode(Node{MAC: mac, Network: "test", Farm: 0}); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		committed uint64 // the farm of the last update that returned
		wg        sync.WaitGroup
		done      = make(chan struct{})
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				mu.Lock()
				floor := committed
				mu.Unlock()
				n, err := db.GetNode(mac)
				if err != nil || n.Farm < floor {
					t.Errorf("read farm %d (%v) after farm %d was committed", n.Farm, err, floor)
					return
				}
			}
		}()
	}
	for i := uint64(1); i <= 200; i++ {
		if _, err := db.UpdateNode(mac, func(n *Node) error { n.Farm = i; return nil }); err != nil {
			t.Fatal(fmt.Errorf("update %d: %w", i, err))
		}
		mu.Lock()
		committed = i
		mu.Unlock()
	}
	close(done)
	wg.Wait()
}
