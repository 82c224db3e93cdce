package reliability

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMWithTransfersInFlight sends SIGTERM while a TFTP client has stopped
// acknowledging mid-file and an HTTP client has stopped reading mid-kernel: the daemon must
// exit within http.shutdown_grace (2 s) plus 1 s.
func TestSIGTERMWithTransfersInFlight(t *testing.T) {
	const grace = 2 * time.Second
	cases := []struct {
		name       string
		tftp, http bool
	}{
		{"TFTP and HTTP stalled", true, true},
		{"TFTP stalled", true, false},
		{"HTTP stalled", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDaemon(t, map[string]string{"http.shutdown_grace": grace.String()})
			// Larger than any socket buffer: the server cannot finish writing it.
			f, err := os.Create(filepath.Join(d.kernels, "zos-big.efi"))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(256 << 20); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := os.Symlink("../zos-big.efi", filepath.Join(d.kernels, "net", "prod.efi")); err != nil {
				t.Fatal(err)
			}
			d.start()

			if tc.tftp {
				c := tftpOneBlock(t, d.tftpAddr, "undionly.kpxe")
				defer c.Close()
			}
			if tc.http {
				c, got := httpStalled(t, d.httpAddr, "/kernel/net/prod.efi")
				defer c.Close()
				t.Logf("HTTP client read %d bytes, then stopped reading", got)
			}
			time.Sleep(100 * time.Millisecond) // the transfers are under way
			sigAt := time.Now()
			d.signal(syscall.SIGTERM)
			exited := d.waitExit(grace + 10*time.Second)
			took := time.Since(sigAt)
			if exited {
				took = d.p.exitAt.Sub(sigAt)
			}
			t.Logf("SOAK: test=sigterm-in-flight case=%q shutdown_grace=%s exit_after_sigterm=%s exited=%t exit=%v",
				tc.name, grace, took.Round(time.Millisecond), exited, d.p.exitErr())
			if !exited || took > grace+time.Second {
				t.Errorf("the daemon took %s to exit after SIGTERM (exited: %t), want at most %s", took.Round(time.Millisecond), exited, grace+time.Second)
			}
		})
	}
}

// tftpOneBlock asks for file with blksize 512, acknowledges an OACK if one comes, reads DATA
// block 1 and never acknowledges it.
func tftpOneBlock(t *testing.T, addr, file string) *net.UDPConn {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	rrq := []byte{0, 1}
	for _, s := range []string{file, "octet", "blksize", "512"} {
		rrq = append(append(rrq, s...), 0)
	}
	if _, err := c.WriteToUDP(rrq, ra); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for range 2 {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("TFTP RRQ %s: %v", file, err)
		}
		if n < 4 {
			t.Fatalf("TFTP: short packet % x", buf[:n])
		}
		switch binary.BigEndian.Uint16(buf) {
		case 6: // OACK: acknowledge block 0 to get DATA 1
			if _, err := c.WriteToUDP([]byte{0, 4, 0, 0}, from); err != nil {
				t.Fatal(err)
			}
		case 3:
			if blk := binary.BigEndian.Uint16(buf[2:]); blk != 1 || n != 4+512 {
				t.Fatalf("TFTP: DATA block %d with %d bytes, want block 1 with 512", blk, n-4)
			}
			return c
		default:
			t.Fatalf("TFTP: unexpected packet % x", buf[:min(n, 64)])
		}
	}
	t.Fatal("TFTP: no DATA block after the OACK")
	return nil
}

// httpStalled starts a GET of path, reads the header and some of the body, then stops.
func httpStalled(t *testing.T, addr, path string) (net.Conn, int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	got, err := io.CopyN(io.Discard, resp.Body, 64<<10)
	if err != nil {
		t.Fatalf("GET %s: read %d bytes: %v", path, got, err)
	}
	return c, int(got)
}

// TestSIGHUPAtStart sends SIGHUP (what `systemctl reload` and logrotate send) to a daemon
// that is still starting: it must not die of it and must serve /healthz 2 s after its start.
//
// The clock starts when the new process's Go runtime has taken SIGHUP over (SigCgt in
// /proc/<pid>/status; 8-60 ms after cmd.Start on a busy 2-CPU machine). Before that the
// kernel's default action ends any process, and until the first package init that calls
// signal.Notify or signal.Ignore the runtime's own handler does: no daemon can survive a
// SIGHUP there. bootstrapd catches it from its earliest package init (earlyhup), but how
// long package init takes depends on the machine's load, so a case timed from the start
// would test the machine, not the daemon. The cases start at the daemon's first log line
// (main is running, the listeners are not up yet): one SIGHUP there, and SIGHUPs every 2 ms
// from there until the HTTP listener is up (every step of the start).
func TestSIGHUPAtStart(t *testing.T) {
	cases := []struct {
		name         string
		delay        time.Duration // after the runtime took SIGHUP over
		firstLogLine bool          // and after the daemon's first log line
		storm        bool          // then every 2 ms until the HTTP listener is up
	}{
		{"at the first log line (before the listeners)", 0, true, false},
		{"every 2ms from the first log line until listening", 0, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDaemon(t, nil)
			p := d.spawn()
			pid := p.cmd.Process.Pid
			for !catches(pid, syscall.SIGHUP) {
				if p.exited() || time.Since(p.started) > 5*time.Second {
					t.Fatalf("the new process never caught SIGHUP (exited: %t)", p.exited())
				}
				time.Sleep(50 * time.Microsecond)
			}
			runtimeUp := time.Since(p.started)
			time.Sleep(tc.delay)
			if tc.firstLogLine {
				for !strings.Contains(readFile(p.logPath), "level=") {
					if p.exited() || time.Since(p.started) > 5*time.Second {
						t.Fatalf("no log line within 5 s (exited: %t)", p.exited())
					}
					time.Sleep(50 * time.Microsecond)
				}
			}
			hupAt := time.Since(p.started)
			listening := reHTTP.MatchString(readFile(p.logPath))
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			for tc.storm && !p.exited() && !reHTTP.MatchString(readFile(p.logPath)) && time.Since(p.started) < 5*time.Second {
				time.Sleep(2 * time.Millisecond)
				_ = syscall.Kill(pid, syscall.SIGHUP)
			}
			time.Sleep(2*time.Second - time.Since(p.started))
			alive := !p.exited()
			code := 0
			if alive {
				d.waitReady(5 * time.Second)
				code, _, _ = httpGet(http.DefaultClient, d.base()+"/healthz")
			}
			t.Logf("SOAK: test=sighup-at-start case=%q runtime_up_after=%s sighup_after_start=%s http_listening_at_sighup=%t alive_after_2s=%t healthz=%d exit=%v",
				tc.name, runtimeUp.Round(time.Microsecond), hupAt.Round(time.Microsecond), listening, alive, code, p.exitErr())
			if !alive {
				t.Fatalf("SIGHUP %s after the start (%s after its runtime started) killed the daemon: %v; its log:\n%s",
					hupAt.Round(time.Microsecond), (hupAt - runtimeUp).Round(time.Microsecond), p.exitErr(), tail(p.logPath, 10))
			}
			if code != 200 {
				t.Errorf("/healthz 2 s after the start: %d", code)
			}
		})
	}
}

// catches reports whether process pid has a handler for sig (SigCgt in /proc/<pid>/status).
func catches(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}
