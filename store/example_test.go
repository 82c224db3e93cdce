package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/threefoldtech/bootstrapd/store"
)

func Example() {
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, "bootstrapd.db"), store.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	n, _ := db.CreateNode(store.Node{MAC: "52-54-00-AA-BB-CC", Network: "prod", Farm: 42})
	fmt.Println(n.MAC, n.Network, n.Farm)
	// Output: 52:54:00:aa:bb:cc prod 42
}

// The daemon's wiring: Run writes activity behind the requests until the context ends, then
// Close (after Run returned) writes whatever is left.
func ExampleDB_Run() {
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "bootstrapd.db")
	db, err := store.Open(path, store.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.Run(ctx); close(done) }()

	// On the request path: memory only.
	_ = db.MarkSeen("52:54:00:aa:bb:cc", "EFI x86-64", "192.0.2.7")
	_ = db.AppendEvent("52:54:00:aa:bb:cc", store.Event{Stage: "script_served"})

	cancel() // SIGTERM
	<-done
	if err := db.Close(); err != nil {
		fmt.Println(err)
	}

	db, _ = store.Open(path, store.Options{})
	defer db.Close()
	s, _ := db.GetSeen("52:54:00:aa:bb:cc")
	evs, _ := db.Events("52:54:00:aa:bb:cc")
	fmt.Println(s.MAC, s.Arch, s.Count, evs[0].Stage)
	// Output: 52:54:00:aa:bb:cc EFI x86-64 1 script_served
}
