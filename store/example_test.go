package store_test

import (
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
