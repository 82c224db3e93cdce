package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/bootstrapd/store/etcdstore/etcdtest"
)

// TestServeOnEtcd: two daemons on one etcd (store.backend: etcd). A record added through
// one's CLI is served by the other's /provision, and the events of that boot, shown through
// the first, name the appliance that saw them.
func TestServeOnEtcd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	yaml := func(name string) string {
		return fmt.Sprintf("store: {backend: etcd, etcd: {endpoints: [%q], prefix: /serve/, name: %s, dial_timeout: 2s}}\n", c.Endpoints()[0], name)
	}
	one := startDaemon(t, daemonOpts{extraYAML: yaml("one")})
	two := startDaemon(t, daemonOpts{extraYAML: yaml("two")})
	const mac = "52:54:00:ee:00:01"
	if out, err := one.cli(t, "node", "add", "--mac", mac, "--network", "test", "--farm", "7"); err != nil {
		t.Fatalf("node add on one: %v: %s", err, out)
	}
	var script string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(two.base + "/provision/" + mac)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		script = string(b)
		if resp.StatusCode == http.StatusOK && strings.Contains(script, "farmer_id=7") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("two's /provision/%s never served the record added on one: %d\n%s", mac, resp.StatusCode, script)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := one.cli(t, "node", "show", "--mac", mac, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var n struct {
			Events []struct {
				Stage     string `json:"stage"`
				Appliance string `json:"appliance"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(out), &n); err != nil {
			t.Fatal(err)
		}
		if len(n.Events) > 0 && n.Events[len(n.Events)-1].Stage == "script_served" && n.Events[len(n.Events)-1].Appliance == "two" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("one never showed two's script_served event: %s", out)
		}
	}
	out, err := one.cli(t, "node", "show", "--mac", mac)
	if err != nil || !strings.Contains(out, "script_served") || !strings.Contains(out, "[two]") {
		t.Fatalf("node show on one: %v\n%s\nwant the event marked [two]", err, out)
	}
}
