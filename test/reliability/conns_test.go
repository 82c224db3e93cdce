package reliability

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

const evictedMetric = "bootstrapd_http_connections_evicted_total"

// TestConcurrentClientsAndIdleConnections holds many silent TCP connections open, then has
// many clients download a 4 MiB kernel at once, each on its own connection: every download
// must be whole. With http.max_connections below the number of connections, the silent ones
// are closed to make room (and counted), and the downloads still succeed.
func TestConcurrentClientsAndIdleConnections(t *testing.T) {
	const kernelSize = 4 << 20
	cases := []struct {
		name     string
		idle     int
		clients  int
		maxConns int // http.max_connections; 0: the default
	}{
		{"default cap", pick(200, 1000), pick(200, 1000), 0},
		// Fewer clients than the cap: every download fits once silent connections make room.
		{"max_connections 64", pick(200, 1000), 48, 64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raiseNoFile(t, uint64(tc.idle+tc.clients+256))
			// Silent connections stay open for the whole test unless the cap closes them.
			over := map[string]string{"http.read_header_timeout": "2m"}
			if tc.maxConns > 0 {
				over["http.max_connections"] = fmt.Sprint(tc.maxConns)
			}
			d := newDaemon(t, over)
			kernel := make([]byte, kernelSize)
			rand.Read(kernel)
			writeFile(t, filepath.Join(d.kernels, "zos-4m.efi"), kernel)
			if err := os.Symlink("../zos-4m.efi", filepath.Join(d.kernels, "net", "prod.efi")); err != nil {
				t.Fatal(err)
			}
			d.start()
			evictedBefore, _ := d.metric(evictedMetric)

			// The silent connections come first and stay open.
			idle := make([]net.Conn, 0, tc.idle)
			defer func() {
				for _, c := range idle {
					c.Close()
				}
			}()
			for i := range tc.idle {
				c, err := net.DialTimeout("tcp", d.httpAddr, 5*time.Second)
				if err != nil {
					t.Fatalf("idle connection %d: %v", i, err)
				}
				idle = append(idle, c)
			}

			type result struct {
				code int
				n    int64
				err  error
				took time.Duration
			}
			results := make([]result, tc.clients)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range tc.clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Its own connection: no keep-alive, no sharing.
					c := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
					<-start
					t0 := time.Now()
					resp, err := c.Get(d.base() + "/kernel/net/prod.efi")
					if err != nil {
						results[i] = result{err: err, took: time.Since(t0)}
						return
					}
					defer resp.Body.Close()
					head := make([]byte, 4096)
					n, err := io.ReadFull(resp.Body, head)
					if err == nil && !bytes.Equal(head, kernel[:len(head)]) {
						err = errors.New("first 4 KiB differ from the kernel")
					}
					if err == nil {
						var rest int64
						rest, err = io.Copy(io.Discard, resp.Body)
						n += int(rest)
					}
					results[i] = result{code: resp.StatusCode, n: int64(n), err: err, took: time.Since(t0)}
				}()
			}
			t0 := time.Now()
			close(start)
			wg.Wait()
			elapsed := time.Since(t0)
			m := d.mem()

			var ok int
			var took []time.Duration
			var bad []string
			for i, r := range results {
				took = append(took, r.took)
				if r.err == nil && r.code == 200 && r.n == kernelSize {
					ok++
				} else if len(bad) < 10 {
					bad = append(bad, fmt.Sprintf("client %d: %d, %d bytes, %v", i, r.code, r.n, r.err))
				}
			}
			slices.Sort(took)

			// Which silent connections did the daemon close?
			closed := 0
			one := make([]byte, 1)
			probeEnd := time.Now().Add(100 * time.Millisecond)
			for _, c := range idle {
				c.SetReadDeadline(probeEnd)
			}
			for _, c := range idle {
				if _, err := c.Read(one); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					closed++
				}
			}
			evictedAfter, found := d.metric(evictedMetric)
			t.Logf("SOAK: test=http-conns case=%q idle=%d clients=%d kernel=%s ok=%d elapsed=%s total=%s p50=%s p99=%s max=%s idle_closed_by_daemon=%d evicted=%.0f %s",
				tc.name, tc.idle, tc.clients, mib(kernelSize), ok, elapsed.Round(time.Millisecond), mib(int64(ok)*kernelSize),
				percentile(took, 0.5).Round(time.Millisecond), percentile(took, 0.99).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond),
				closed, evictedAfter-evictedBefore, m)
			if ok != tc.clients {
				t.Errorf("%d of %d downloads were not a whole 200, e.g.:\n%v", tc.clients-ok, tc.clients, bad)
			}
			if tc.maxConns == 0 && closed > 0 {
				t.Errorf("%d of %d silent connections were closed below the connection cap", closed, tc.idle)
			}
			if tc.maxConns > 0 {
				if !found {
					t.Errorf("/metrics has no %s", evictedMetric)
				} else if evictedAfter <= evictedBefore {
					t.Errorf("%s did not grow (%v → %v) with %d silent connections over a cap of %d", evictedMetric, evictedBefore, evictedAfter, tc.idle, tc.maxConns)
				}
				if closed == 0 {
					t.Errorf("none of %d silent connections was closed with http.max_connections %d", tc.idle, tc.maxConns)
				}
			}
		})
	}
}

// raiseNoFile lifts this process's open-file limit to at least n (the daemon raises its own).
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	lim.Cur = max(n, lim.Cur)
	if lim.Max < n {
		lim.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("RLIMIT_NOFILE to %d: %v", n, err)
	}
}
