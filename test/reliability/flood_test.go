package reliability

import (
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const discoveredEvictedMetric = "bootstrapd_store_discovered_evicted_total"

// TestSpoofedMACFlood asks for /provision/<MAC> with a new random MAC every time and a 4 KiB
// arch, as a hostile host on the farm LAN can: every answer must be 200, the discovered list
// must stay within events.max_discovered with the arch dropped (it is no architecture name),
// evictions must be counted,
// and bootstrapd.db must stay small.
func TestSpoofedMACFlood(t *testing.T) {
	type floodCase struct {
		name          string
		requests      int
		maxDiscovered int    // what the daemon must keep at most
		setting       string // events.max_discovered in the config; "": the default
		// bootstrapd.db after the flood, at most. store/doc.go's own bound (2 × N × 45794 B +
		// 32 MiB: 905.5 MiB for N = 10000, 119 MiB for 1000) covers full timelines of
		// worst-case strings; one request per MAC must stay far below it.
		dbBound  int64
		longOnly bool
	}
	cases := []floodCase{
		{"max_discovered 1000", pick(5000, 50000), 1000, "1000", 16 << 20, false},
		{"default max_discovered (10000)", 50000, 10000, "", 64 << 20, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.longOnly && !soak {
				t.Skip("long form only (BOOTSTRAPD_SOAK=1)")
			}
			var over map[string]string
			if tc.setting != "" {
				over = map[string]string{"events.max_discovered": tc.setting}
			}
			d := newDaemon(t, over)
			d.start()

			arch := strings.Repeat("x", 4096)
			const workers = 16
			client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
			defer client.CloseIdleConnections()
			took := make([]time.Duration, tc.requests)
			var (
				next    atomic.Int64
				non200  atomic.Int64
				badMu   sync.Mutex
				badSeen []string
				wg      sync.WaitGroup
			)
			t0 := time.Now()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= tc.requests {
							return
						}
						mac := randomMAC()
						s := time.Now()
						code, _, err := getDiscard(client, d.base()+"/provision/"+mac+"?arch="+arch)
						took[i] = time.Since(s)
						if err != nil || code != 200 {
							non200.Add(1)
							badMu.Lock()
							if len(badSeen) < 5 {
								badSeen = append(badSeen, fmt.Sprintf("%s: %d %v", mac, code, err))
							}
							badMu.Unlock()
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(t0)
			slices.Sort(took)
			m := d.mem()

			// Activity is written behind (events.flush_interval, 1 s): the bound holds once a
			// flush ran. Give it up to five intervals.
			immediate := len(discovered(t, d))
			var (
				evicted float64
				found   bool
				before  []discoveredEntry
			)
			settleStart := time.Now()
			for {
				evicted, found = d.metric(discoveredEvictedMetric)
				before = discovered(t, d)
				if len(before) <= tc.maxDiscovered && evicted > 0 || time.Since(settleStart) > 5*time.Second {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			settled := time.Since(settleStart)
			d.stop() // SIGTERM: the write-behind is flushed before exit
			st, err := os.Stat(filepath.Join(d.data, "bootstrapd.db"))
			if err != nil {
				t.Fatal(err)
			}
			d.start()
			after := discovered(t, d)

			longest := 0
			for _, e := range after {
				longest = max(longest, len(e.Arch))
			}
			t.Logf("SOAK: test=mac-flood case=%q requests=%d arch_bytes=%d workers=%d non200=%d elapsed=%s rate=%.0f/s p50=%s p99=%s max=%s discovered_at_end=%d discovered_live=%d settled_after=%s discovered_after_restart=%d longest_arch=%d evicted=%.0f db_bytes=%d db_bound=%d %s",
				tc.name, tc.requests, len(arch), workers, non200.Load(), elapsed.Round(time.Millisecond), float64(tc.requests)/elapsed.Seconds(),
				percentile(took, 0.5).Round(time.Microsecond), percentile(took, 0.99).Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond),
				immediate, len(before), settled.Round(time.Millisecond), len(after), longest, evicted, st.Size(), tc.dbBound, m)

			if n := non200.Load(); n > 0 {
				t.Errorf("%d of %d /provision answers were not 200, e.g. %v", n, tc.requests, badSeen)
			}
			if st.Size() >= tc.dbBound {
				t.Errorf("bootstrapd.db is %d bytes (%s) after %d spoofed MACs, want below %s", st.Size(), mib(st.Size()), tc.requests, mib(tc.dbBound))
			}
			for label, list := range map[string][]discoveredEntry{"while running (after a flush)": before, "after the restart": after} {
				if len(list) > tc.maxDiscovered {
					t.Errorf("GET /api/v1/discovered %s lists %d MACs, want at most %d", label, len(list), tc.maxDiscovered)
				}
				for _, e := range list {
					if e.Arch != "" {
						t.Errorf("GET /api/v1/discovered %s: %s kept an arch of %d bytes from the request, want it dropped", label, e.MAC, len(e.Arch))
						break
					}
				}
			}
			if !found {
				t.Errorf("/metrics has no %s", discoveredEvictedMetric)
			} else if evicted <= 0 {
				t.Errorf("%s is %v after %d MACs over a bound of %d", discoveredEvictedMetric, evicted, tc.requests, tc.maxDiscovered)
			}

			// An operator can forget a discovered MAC.
			if len(after) > 0 {
				mac := after[0].MAC
				if code := d.apiJSON(http.MethodDelete, "/api/v1/discovered/"+mac, nil, nil); code/100 != 2 {
					t.Errorf("DELETE /api/v1/discovered/%s: %d", mac, code)
				} else if slices.ContainsFunc(discovered(t, d), func(e discoveredEntry) bool { return e.MAC == mac }) {
					t.Errorf("DELETE /api/v1/discovered/%s answered %d, but the MAC is still listed", mac, code)
				}
			}
		})
	}
}

type discoveredEntry struct {
	MAC  string `json:"mac"`
	Arch string `json:"arch"`
}

func discovered(t *testing.T, d *daemon) []discoveredEntry {
	t.Helper()
	var out []discoveredEntry
	if code := d.apiJSON(http.MethodGet, "/api/v1/discovered", nil, &out); code != 200 {
		t.Fatalf("GET /api/v1/discovered: %d", code)
	}
	return out
}

// randomMAC is a random locally administered unicast MAC.
func randomMAC() string {
	var b [6]byte
	for i := range b {
		b[i] = byte(mrand.IntN(256))
	}
	b[0] = b[0]&0xfc | 0x02
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

func getDiscard(c *http.Client, url string) (int, int64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, n, err
}
