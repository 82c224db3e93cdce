package httpd

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/threefoldtech/bootstrapd/store"
)

// farmScale seeds the issue-13 farm into f's store: 10,000 records and 10,000 MACs without
// one, every one of them with a seen entry and a four-event timeline, flushed to disk.
func farmScale(b *testing.B, f *fixture) {
	b.Helper()
	nodes := make([]store.Node, 10000)
	for i := range nodes {
		nodes[i] = store.Node{MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff), Network: "test", Farm: uint64(1 + i%300)}
	}
	if _, _, err := f.db.ImportNodes(nodes); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range 20000 {
		mac := fmt.Sprintf("02:00:00:%02x:%02x:%02x", i/10000, (i%10000)>>8, i&0xff)
		must(b, f.db.MarkSeen(mac, "x86_64", fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&0xff, i&0xff)))
		for j, st := range []string{"offer_binary", "tftp_sent", "script_served", "kernel_sent"} {
			must(b, f.db.AppendEvent(mac, store.Event{Stage: st, Time: now.Add(time.Duration(j-i) * time.Second)}))
		}
		if i%2000 == 1999 {
			must(b, f.db.Flush())
		}
	}
	must(b, f.db.Flush())
}

// BenchmarkListBuild is the joined view of the whole farm, built after a change in the store.
func BenchmarkListBuild(b *testing.B) {
	f := newFixture(b, nil)
	farmScale(b, f)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildSnapshot(f.db, 0, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListSearch is one page of a search over the farm when nothing changed: what the
// page's search box costs on the server.
func BenchmarkListSearch(b *testing.B) {
	for name, query := range map[string]string{
		"first page":   "limit=50",
		"MAC fragment": "q=00:01:2&limit=50",
		"stuck, by IP": "state=stuck&sort=ip&limit=50",
	} {
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, nil)
			farmScale(b, f)
			h := f.srv.Handler()
			search := func() {
				w := httptest.NewRecorder()
				r := httptest.NewRequest(http.MethodGet, "/api/v1/discovered?"+query, nil)
				r.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatal(w.Code, w.Body.String())
				}
			}
			search() // builds the joined view (BenchmarkListBuild) and this sort's order
			b.ReportAllocs()
			for b.Loop() {
				search()
			}
		})
	}
}
