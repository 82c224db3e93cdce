package main

import (
	"net"
	"testing"
	"time"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

// The kernel URL is read from scripts bootstrapd's own templates render, with the MAC
// variables iPXE would expand; a wait script has none.
func TestKernelFrom(t *testing.T) {
	s, err := ipxe.NewScripts(ipxe.ScriptConfig{ArgsSuffix: "nomodeset", RetrySeconds: 5})
	if err != nil {
		t.Fatal(err)
	}
	boot, err := s.Render(ipxe.Boot{Network: "test", NetworkName: "testing (v3)", Farm: 42,
		KernelURL: "http://10.1.0.2:8080/kernel/net/test.efi"})
	if err != nil {
		t.Fatal(err)
	}
	wait, err := s.Wait("02:b5:01:00:00:07", "http://10.1.0.2:8080/provision/02:b5:01:00:00:07")
	if err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{2, 0xb5, 1, 0, 0, 7}
	for _, tc := range []struct {
		name, script, want string
		wantErr            bool
	}{
		{name: "boot script", script: string(boot), want: "http://10.1.0.2:8080/kernel/net/test.efi?mac=02-b5-01-00-00-07"},
		{name: "kernel line", script: "#!ipxe\nkernel http://h/k?m=${net0/mac} a=b\nboot\n", want: "http://h/k?m=02:b5:01:00:00:07"},
		{name: "wait script", script: string(wait), wantErr: true},
		{name: "unknown variable", script: "#!ipxe\nkernel http://h/${uuid}\n", wantErr: true},
		{name: "empty", script: "", wantErr: true},
		{name: "arm64 branch skipped", script: "#!ipxe\niseq ${buildarch} arm64 && set kernel http://h/arm || set kernel http://h/x86\nimgfetch ${kernel}?mac=${mac}\n",
			want: "http://h/x86?mac=02:b5:01:00:00:07"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kernelFrom([]byte(tc.script), mac)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("kernelFrom = %q, %v; want %q (error: %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestFirstMenuItem(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  []byte
		want uint16
		ok   bool
	}{
		{name: "control then menu", opt: []byte{6, 1, 8, 9, 7, 0x80, 0x01, 4, 'b', 'o', 'o', 't', 255}, want: 0x8001, ok: true},
		{name: "two entries", opt: []byte{9, 8, 0, 5, 1, 'a', 0x80, 0, 1, 'b', 255}, want: 5, ok: true},
		{name: "no menu", opt: []byte{6, 1, 8, 255}},
		{name: "truncated", opt: []byte{9, 7, 0x80}},
		{name: "empty", opt: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := firstMenuItem(tc.opt)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("firstMenuItem = %#x, %v; want %#x, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    int
		want time.Duration
	}{{50, 100 * time.Millisecond}, {99, 198 * time.Millisecond}, {100, 200 * time.Millisecond}, {1, 2 * time.Millisecond}} {
		if got := pct(d, tc.p); got != tc.want {
			t.Errorf("p%d = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := pct(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v, want 0", got)
	}
}
