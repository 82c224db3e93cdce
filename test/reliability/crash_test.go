package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestKillDuringNodeAdds adds nodes over the admin socket from several goroutines, kills the
// daemon with SIGKILL at a random point after about half of them, restarts it on the same
// data directory and checks that every node the daemon acknowledged (201) is there.
func TestKillDuringNodeAdds(t *testing.T) {
	n := pick(1000, 5000)
	cases := []struct {
		name    string
		workers int
		crashes int // rounds of add-then-kill on the same data directory
	}{
		{"8 writers, one crash", 8, 1},
		{"8 writers, three crashes in a row", 8, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDaemon(t, nil)
			d.start()
			acked := map[string]bool{}
			perRound := n / tc.crashes
			for round := range tc.crashes {
				r := addUntilKilled(t, d, round, perRound, tc.workers)
				for _, m := range r.acked {
					acked[m] = true
				}
				restart := time.Now()
				d.start()
				restartTook := time.Since(restart)

				var nodes []struct {
					MAC string `json:"mac"`
				}
				if code := d.apiJSON(http.MethodGet, "/api/v1/nodes", nil, &nodes); code != 200 {
					t.Fatalf("GET /api/v1/nodes after restart: %d", code)
				}
				present := map[string]bool{}
				for _, nd := range nodes {
					present[nd.MAC] = true
				}
				var missing []string
				for m := range acked {
					if !present[m] {
						missing = append(missing, m)
					}
				}
				t.Logf("SOAK: test=kill9-node-adds case=%q round=%d adds=%d workers=%d acked=%d killed_at_ack=%d add_rate=%.0f/s nodes_after_restart=%d acked_total=%d missing=%d restart=%s %s",
					tc.name, round+1, perRound, tc.workers, len(r.acked), r.killAt, r.rate, len(nodes), len(acked), len(missing), restartTook.Round(time.Millisecond), r.mem)
				if len(missing) > 0 {
					t.Fatalf("round %d: %d of %d acknowledged nodes are missing after SIGKILL and restart, e.g. %v",
						round+1, len(missing), len(acked), missing[:min(len(missing), 10)])
				}
				if len(r.acked) < perRound/2 {
					t.Fatalf("round %d: only %d of %d adds acknowledged before the kill (want at least half)", round+1, len(r.acked), perRound)
				}
			}
		})
	}
}

type addResult struct {
	acked  []string
	killAt int // acknowledged adds when SIGKILL was sent
	rate   float64
	mem    mem
}

// addUntilKilled posts n new nodes with workers goroutines and sends SIGKILL once a random
// number of them, between one half and three quarters, were acknowledged.
func addUntilKilled(t *testing.T, d *daemon, round, n, workers int) addResult {
	t.Helper()
	killAt := n/2 + rand.IntN(n/4+1)
	jobs := make(chan int)
	var (
		acked     lockedList[string]
		count     atomic.Int64
		killed    atomic.Bool
		killOnce  sync.Once
		wg        sync.WaitGroup
		res       addResult
		unexpectM sync.Mutex
		unexpect  []string
	)
	start := time.Now()
	kill := func() {
		killOnce.Do(func() {
			res.mem = d.mem()
			res.rate = float64(count.Load()) / time.Since(start).Seconds()
			res.killAt = int(count.Load())
			killed.Store(true)
			_ = syscall.Kill(-d.p.cmd.Process.Pid, syscall.SIGKILL)
		})
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				mac := fmt.Sprintf("02:5a:%02x:%02x:%02x:%02x", round, byte(i>>16), byte(i>>8), byte(i))
				body, _ := json.Marshal(map[string]any{"mac": mac, "network": "prod", "farm": 1})
				resp, err := d.admin.Post("http://bootstrapd/api/v1/nodes", "application/json", bytes.NewReader(body))
				if err != nil {
					if !killed.Load() {
						unexpectM.Lock()
						unexpect = append(unexpect, fmt.Sprintf("%s: %v", mac, err))
						unexpectM.Unlock()
					}
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					acked.add(mac)
					if count.Add(1) >= int64(killAt) {
						kill()
					}
				} else if !killed.Load() {
					unexpectM.Lock()
					unexpect = append(unexpect, fmt.Sprintf("%s: %d %.200s", mac, resp.StatusCode, b))
					unexpectM.Unlock()
				}
			}
		}()
	}
	for i := range n {
		if killed.Load() {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if !killed.Load() {
		kill()
	}
	if !d.waitExit(10 * time.Second) {
		t.Fatal("the daemon is still running 10 s after SIGKILL")
	}
	d.admin.CloseIdleConnections()
	if len(unexpect) > 0 {
		t.Fatalf("%d adds failed before the kill, e.g. %v", len(unexpect), unexpect[:min(len(unexpect), 5)])
	}
	res.acked = acked.items()
	return res
}
