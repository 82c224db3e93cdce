package store_test

import (
	"path/filepath"
	"testing"

	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/storetest"
)

// TestSuite runs the backend-independent suite against the bbolt file; etcdstore runs it
// against etcd.
func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		s, err := store.Open(filepath.Join(t.TempDir(), "suite.db"), opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
