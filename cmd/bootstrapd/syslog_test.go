package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// iPXE's syslog lines reach the node's timeline through the real daemon: the node's script
// names the receiver, the script request teaches it the node's address, and `node show`
// prints the line. A line from an address no node used is dropped.
func TestServeSyslogLinesOnTimeline(t *testing.T) {
	port := freePort(t, "udp")
	d := startDaemon(t, daemonOpts{extraYAML: fmt.Sprintf("syslog: {listen: '127.0.0.1:%d'}\n", port)})
	const mac = "52:54:00:12:34:56"
	if out, err := d.cli(t, "node", "add", "--mac", mac, "--network", "test", "--farm", "42"); err != nil {
		t.Fatalf("node add: %v\n%s", err, out)
	}
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Before the script: nobody is known at 127.0.0.1 yet.
	c.Write([]byte("<6>ipxe: before the script"))
	for i := 0; ; i++ {
		if _, _, m := get(t, d.base+"/metrics"); strings.Contains(m, `bootstrapd_ipxe_log_lines_total{result="unknown_source"} 1`) {
			break
		}
		if i == 200 {
			t.Fatal("the line from an unknown address was not counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, _, script := get(t, d.base+"/provision/52-54-00-12-34-56")
	if code != 200 || !strings.HasPrefix(script, "#!ipxe\n# iPXE copies its console") || !strings.Contains(script, "\nset syslog 127.0.0.1\n") {
		t.Fatalf("script (%d) does not set syslog:\n%.300s", code, script)
	}
	c.Write([]byte("<6>ipxe: Connection timed out (https://ipxe.org/4c0a6092)"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := d.cli(t, "node", "show", "--mac", mac)
		if err == nil && strings.Contains(out, "ipxe_log") && strings.Contains(out, "Connection timed out (https://ipxe.org/4c0a6092)") {
			if strings.Contains(out, "before the script") {
				t.Errorf("a line from an unknown address reached the timeline:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node show has no iPXE line: %v\n%s\n%s", err, out, d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, _, metrics := get(t, d.base+"/metrics")
	for _, want := range []string{
		`bootstrapd_ipxe_log_lines_total{result="recorded"} 1`,
		`bootstrapd_ipxe_log_lines_total{result="unknown_source"} 1`,
		`bootstrapd_boot_stages_total{stage="ipxe_log"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
