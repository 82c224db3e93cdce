package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/etcdstore/etcdtest"
)

// TestStoreCopyRoundTrip: bbolt → etcd → bbolt moves records, seen MACs and events intact,
// and a second run of each copy changes nothing.
func TestStoreCopyRoundTrip(t *testing.T) {
	c := etcdtest.Start(t, 1)
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.db"), filepath.Join(dir, "dst.db")
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	db, err := store.Open(src, store.Options{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		mac := fmt.Sprintf("52:54:00:00:30:%02x", i)
		if i%2 == 0 {
			if _, err := db.CreateNode(store.Node{MAC: mac, Network: "prod", Farm: uint64(i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.MarkSeen(mac, "x86_64-efi", fmt.Sprintf("10.0.0.%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := db.AppendEvent(mac, store.Event{Stage: "offer_script", Time: at.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := store.ReadDump(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "appliance.yaml")
	if err := os.WriteFile(cfgFile, []byte("store: {etcd: {prefix: /copytest/, name: site-a}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	etcdSpec := "etcd:" + strings.Join(c.Endpoints(), ",")
	for _, hop := range [][2]string{{"bbolt:" + src, etcdSpec}, {"bbolt:" + src, etcdSpec}, {etcdSpec, "bbolt:" + dst}, {etcdSpec, "bbolt:" + dst}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{"store", "copy", "--config", cfgFile, "--from", hop[0], "--to", hop[1]}, &out, &errOut); err != nil {
			t.Fatalf("store copy %s → %s: %v\n%s", hop[0], hop[1], err, errOut.String())
		}
		if !strings.Contains(out.String(), "copied 10 records, 20 seen MACs, 20 events") {
			t.Fatalf("store copy %s → %s said %q", hop[0], hop[1], out.String())
		}
	}
	back, err := store.Open(dst, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	got, err := store.ReadDump(back)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("bbolt → etcd → bbolt changed the content (-want +got):\n%s", diff)
	}
}

// TestStoreCopyRefuses: bad specs are usage errors, and a missing source file is not
// created empty.
func TestStoreCopyRefuses(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	for name, tc := range map[string]struct {
		args  []string
		usage bool
		want  string
	}{
		"no to":          {[]string{"copy", "--from", "bbolt:x.db"}, true, "needs --from and --to"},
		"not copy":       {[]string{"move"}, true, "store takes copy"},
		"bad kind":       {[]string{"copy", "--from", "sqlite:x", "--to", "bbolt:y"}, true, "want bbolt:PATH"},
		"bad endpoint 2": {[]string{"copy", "--from", "etcd:10.0.0.1", "--to", "bbolt:y"}, true, "http://host:port"},
		"missing source": {[]string{"copy", "--from", "bbolt:" + missing, "--to", "bbolt:" + filepath.Join(dir, "y.db")}, false, "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"store"}, tc.args...), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, errUsage) != tc.usage {
				t.Fatalf("store %v = %v; want an error saying %q (usage: %v)", tc.args, err, tc.want, tc.usage)
			}
		})
	}
}
