package httpd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/bootstrapd/store"
)

// listFarm seeds a small farm through the admin API and the store's boot path:
//
//	:01 prod farm 7, booted 5 min ago        :02 prod farm 7, stuck after TFTP 20 min ago
//	:03 test farm 42, booted 2 h ago         :04 test farm 1234, never asked
//	:05 no record, asked, stuck (old offer)  :06 no record, asked just now
func listFarm(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, nil)
	c := unixClient(f.socket)
	for _, n := range []struct {
		mac, network string
		farm         int
	}{{"52:54:00:00:00:01", "prod", 7}, {"52:54:00:00:00:02", "prod", 7}, {"52:54:00:00:00:03", "test", 42}, {"52:54:00:00:00:04", "test", 1234}} {
		code, body := do(t, c, http.MethodPost, "http://admin/api/v1/nodes", fmt.Sprintf(`{"mac":%q,"network":%q,"farm":%d}`, n.mac, n.network, n.farm))
		if code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", n.mac, code, body)
		}
	}
	now := time.Now()
	ev := func(mac, stage string, ago time.Duration) {
		must(t, f.db.AppendEvent(mac, store.Event{Stage: stage, Time: now.Add(-ago)}))
	}
	// In this order, a little apart: the newest first is 06 05 03 02 01.
	for _, s := range [][2]string{{"52:54:00:00:00:01", "10.1.0.11"}, {"52:54:00:00:00:02", "10.1.0.12"},
		{"52:54:00:00:00:03", "10.2.0.13"}, {"52:54:00:00:00:05", "10.1.0.15"}, {"52:54:00:00:00:06", "192.168.9.16"}} {
		must(t, f.db.MarkSeen(s[0], "x86_64", s[1]))
		time.Sleep(2 * time.Millisecond)
	}
	ev("52:54:00:00:00:01", "offer_binary", 6*time.Minute)
	ev("52:54:00:00:00:01", "tftp_sent", 6*time.Minute-2*time.Second)
	ev("52:54:00:00:00:01", "script_served", 6*time.Minute-3*time.Second)
	ev("52:54:00:00:00:01", "kernel_requested", 6*time.Minute-4*time.Second)
	ev("52:54:00:00:00:01", "kernel_sent", 5*time.Minute)
	ev("52:54:00:00:00:02", "offer_binary", 20*time.Minute+4*time.Second)
	ev("52:54:00:00:00:02", "tftp_sent", 20*time.Minute)
	ev("52:54:00:00:00:03", "script_served", 2*time.Hour+10*time.Second)
	ev("52:54:00:00:00:03", "kernel_sent", 2*time.Hour)
	ev("52:54:00:00:00:05", "offer_binary", 30*time.Minute)
	ev("52:54:00:00:00:06", "script_served", time.Second)
	return f
}

type page struct {
	Total int `json:"total"`
	Items []struct {
		MAC   string `json:"mac"`
		Stuck bool   `json:"stuck"`
	} `json:"items"`
	Next   string `json:"next"`
	Counts Counts `json:"counts"`
}

func getPage(t *testing.T, f *fixture, path string) (int, page, string) {
	t.Helper()
	code, _, body := get(t, f.base+path, "Authorization", "Bearer 0123456789abcdef0123")
	var p page
	if code == http.StatusOK {
		must(t, json.Unmarshal([]byte(body), &p))
	}
	return code, p, body
}

func (p page) macs() string {
	var out []string
	for _, it := range p.Items {
		out = append(out, strings.TrimPrefix(it.MAC, "52:54:00:00:00:"))
	}
	return strings.Join(out, " ")
}

func TestListFilters(t *testing.T) {
	f := listFarm(t)
	tests := map[string]struct {
		path string
		want string // last byte of each MAC, in order
	}{
		"nodes by MAC":              {"/api/v1/nodes?sort=mac", "01 02 03 04"},
		"discovered, newest first":  {"/api/v1/discovered?limit=50", "06 05 03 02 01"},
		"MAC with colons":           {"/api/v1/discovered?q=52:54:00:00:00:05", "05"},
		"MAC with hyphens":          {"/api/v1/discovered?q=52-54-00-00-00-05", "05"},
		"MAC bare, upper case":      {"/api/v1/discovered?q=525400000005", "05"},
		"MAC dotted":                {"/api/v1/nodes?q=5254.0000.0003", "03"},
		"MAC fragment":              {"/api/v1/nodes?q=00:04", "04"},
		"farm id is whole":          {"/api/v1/nodes?q=1234", "04"},
		"farm id 7":                 {"/api/v1/nodes?q=7&sort=mac", "01 02"},
		"network":                   {"/api/v1/nodes?q=test&sort=mac", "03 04"},
		"IP prefix":                 {"/api/v1/discovered?q=10.1.&sort=mac", "01 02 05"},
		"two terms: network and IP": {"/api/v1/discovered?q=prod+10.1.0.12", "02"},
		"no match":                  {"/api/v1/nodes?q=zzz", ""},
		"stuck":                     {"/api/v1/discovered?state=stuck&sort=mac", "02 05"},
		"stuck records":             {"/api/v1/nodes?state=stuck", "02"},
		"booted in the last hour":   {"/api/v1/nodes?state=booted", "01"},
		"unknown":                   {"/api/v1/discovered?state=unknown&sort=mac", "05 06"},
		"known":                     {"/api/v1/discovered?state=known&sort=mac", "01 02 03"},
		"unknown records: none":     {"/api/v1/nodes?state=unknown", ""},
		"farm descending":           {"/api/v1/nodes?sort=farm&order=desc", "04 03 02 01"},
		"IP sorted as addresses":    {"/api/v1/discovered?sort=ip", "01 02 05 03 06"},
		"stage":                     {"/api/v1/discovered?sort=stage&q=10.", "01 03 05 02"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, p, body := getPage(t, f, tc.path)
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			if got := p.macs(); got != tc.want || p.Total != len(p.Items) {
				t.Fatalf("got %q (total %d), want %q", got, p.Total, tc.want)
			}
			// The summary is the farm's, whatever the filter.
			if want := (Counts{Known: 4, Unknown: 2, Stuck: 2, Booted: 1}); p.Counts != want {
				t.Fatalf("counts %+v, want %+v", p.Counts, want)
			}
		})
	}
}

func TestListPaging(t *testing.T) {
	f := listFarm(t)
	for _, sort := range []string{"mac", "farm&order=desc", "last_seen&order=desc", "ip"} {
		t.Run(sort, func(t *testing.T) {
			_, all, _ := getPage(t, f, "/api/v1/discovered?limit=1000&sort="+sort)
			var walked []string
			path := "/api/v1/discovered?limit=2&sort=" + sort
			for pages := 0; ; pages++ {
				code, p, body := getPage(t, f, path)
				if code != 200 || p.Total != 5 || len(p.Items) > 2 || pages > 3 {
					t.Fatalf("page %d: %d total %d %s", pages, code, p.Total, body)
				}
				walked = append(walked, p.macs())
				if p.Next == "" {
					break
				}
				path = "/api/v1/discovered?limit=2&sort=" + sort + "&cursor=" + url.QueryEscape(p.Next)
			}
			if got := strings.Join(walked, " "); got != all.macs() || len(walked) != 3 {
				t.Fatalf("pages %q, want %q in 3 pages", walked, all.macs())
			}
		})
	}
}

func TestListBadParameters(t *testing.T) {
	f := listFarm(t)
	_, p, _ := getPage(t, f, "/api/v1/nodes?limit=1&sort=mac")
	tests := map[string]struct{ query, reason string }{
		"limit 0":           {"limit=0", "limit"},
		"limit too large":   {"limit=1001", "from 1 to 1000"},
		"limit not number":  {"limit=ten", "limit"},
		"unknown state":     {"state=lost", "accepted: known, unknown, stuck, booted"},
		"unknown sort":      {"sort=color", "sort"},
		"bad order":         {"order=up", "order"},
		"unknown parameter": {"filter=stuck", `unknown parameter \"filter\"`},
		"repeated":          {"q=a&q=b", "given 2 times"},
		"cursor garbage":    {"cursor=%25%25", "cursor"},
		"cursor not json":   {"cursor=aGVsbG8", "cursor"},
		"cursor other sort": {"sort=farm&cursor=" + url.QueryEscape(p.Next), "another sort"},
		"cursor bad MAC":    {"cursor=" + (listCursor{Sort: "mac", MAC: "x"}).encode(), "no MAC"},
		"control char":      {"q=a%0Ab", "control"},
		"q too long":        {"q=" + strings.Repeat("a", 101), "at most 100"},
		"fleet parameter":   {"", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := "/api/v1/nodes?" + tc.query
			if tc.query == "" {
				path = "/api/v1/fleet?x=1"
			}
			code, _, body := getPage(t, f, path)
			if code != http.StatusBadRequest || !strings.Contains(body, tc.reason) || !strings.Contains(body, `"error"`) {
				t.Fatalf("%s: %d %s, want 400 with %q", path, code, body, tc.reason)
			}
		})
	}
}

func TestListOldShapeAndETag(t *testing.T) {
	f := listFarm(t)
	auth := []string{"Authorization", "Bearer 0123456789abcdef0123"}
	// No parameters: the array of before, by MAC.
	code, _, body := get(t, f.base+"/api/v1/nodes", auth...)
	var nodes []store.Node
	must(t, json.Unmarshal([]byte(body), &nodes))
	if code != 200 || len(nodes) != 4 || nodes[0].MAC != "52:54:00:00:00:01" || nodes[3].Farm != 1234 {
		t.Fatalf("old shape: %d %s", code, body)
	}
	var disc []Discovered
	_, _, body = get(t, f.base+"/api/v1/discovered", auth...)
	must(t, json.Unmarshal([]byte(body), &disc))
	if len(disc) != 5 || disc[1].MAC != "52:54:00:00:00:02" || !disc[1].Stuck || !disc[1].Known || disc[1].Farm != 7 || disc[4].Known {
		t.Fatalf("old discovered shape: %s", body)
	}

	// Boot activity shows in paged lists at most views.lag late; this test wants it at once.
	f.srv.views.lag = 0
	const path = "/api/v1/discovered?limit=2&state=unknown"
	code, hdr, _ := get(t, f.base+path, auth...)
	etag := hdr.Get("ETag")
	if code != 200 || etag == "" {
		t.Fatalf("%d, ETag %q", code, etag)
	}
	for name, inm := range map[string]string{"exact": etag, "weak": "W/" + etag, "in a list": `"x", ` + etag} {
		code, _, again := get(t, f.base+path, append(auth, "If-None-Match", inm)...)
		if code != http.StatusNotModified || again != "" {
			t.Fatalf("%s: no change: %d %q, want 304 and no body", name, code, again)
		}
	}
	// A change the page would show: a new unknown MAC. The same tag now gets the new list.
	must(t, f.db.MarkSeen("52:54:00:00:00:07", "", "10.9.9.9"))
	code, hdr, body = get(t, f.base+path, append(auth, "If-None-Match", etag)...)
	if code != 200 || hdr.Get("ETag") == etag || !strings.Contains(body, `"total":3`) {
		t.Fatalf("after a change: %d %s %s", code, hdr.Get("ETag"), body)
	}
	// A change it would not show (another page's row) keeps the 304 of this page.
	etag = hdr.Get("ETag")
	must(t, f.db.MarkSeen("52:54:00:00:00:01", "", ""))
	if code, _, _ := get(t, f.base+"/api/v1/nodes?q=zzz", append(auth, "If-None-Match", etag)...); code != 200 {
		t.Fatalf("another URL's tag: %d", code)
	}
	if code, _, _ := get(t, f.base+path, append(auth, "If-None-Match", etag)...); code != http.StatusNotModified {
		t.Fatalf("unrelated change: %d, want 304", code)
	}
}

func TestFleet(t *testing.T) {
	f := listFarm(t)
	code, _, body := get(t, f.base+"/api/v1/fleet", "Authorization", "Bearer 0123456789abcdef0123")
	var fl Fleet
	must(t, json.Unmarshal([]byte(body), &fl))
	if code != 200 || len(fl.Hours) != fleetHours {
		t.Fatalf("%d %s", code, body)
	}
	boots := 0
	for _, h := range fl.Hours {
		boots += h.Boots
	}
	// :01 five minutes ago and :03 two hours ago.
	if boots != 2 || fl.Hours[fleetHours-1].Boots+fl.Hours[fleetHours-2].Boots < 1 {
		t.Fatalf("boots per hour: %+v", fl.Hours)
	}
	want := map[string]struct {
		count    int
		medianMS int64
	}{
		"tftp":             {2, 4000}, // :01 2 s, :02 4 s
		"script":           {1, 1000},
		"kernel_requested": {1, 1000},
		"kernel_sent":      {2, 56000}, // :01 56 s, :03 10 s (from its script)
	}
	for _, st := range fl.Steps {
		w := want[st.Step]
		if st.Count != w.count || st.MedianMS != w.medianMS {
			t.Errorf("step %s: %+v, want count %d median %d ms", st.Step, st, w.count, w.medianMS)
		}
	}
	if fl.Slowest != "kernel_sent" {
		t.Errorf("slowest %q", fl.Slowest)
	}
	if !slices.ContainsFunc(fl.Steps, func(s FleetStep) bool { return s.Step == "kernel_sent" && s.MaxMS == 56000 }) {
		t.Errorf("kernel_sent max: %+v", fl.Steps)
	}
}

// FuzzListQuery: any query string is refused with errBadInput or gives a query whose
// cursor, encoded again, is accepted for the same sort.
func FuzzListQuery(f *testing.F) {
	f.Add("q=52:54&state=stuck&sort=farm&order=desc&limit=10")
	f.Add("cursor=" + (listCursor{Sort: "mac", Key: "52:54:00:00:00:01", MAC: "52:54:00:00:00:01"}).encode())
	f.Add("sort=last_seen&order=desc&cursor=" + (listCursor{Sort: "last_seen", Desc: true, Key: "x", MAC: "52:54:00:00:00:01"}).encode())
	f.Add("limit=-1&q=%00")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseListQuery(v, "mac", false)
		if err != nil {
			if !strings.Contains(err.Error(), errBadInput.Error()) {
				t.Fatalf("error without the reason: %v", err)
			}
			return
		}
		if q.limit < 1 || q.limit > MaxListLimit || !slices.Contains(listSorts, q.sort) {
			t.Fatalf("accepted %+v", q)
		}
		if q.after != nil {
			back, err := parseListQuery(url.Values{"sort": {q.sort}, "order": {map[bool]string{true: "desc", false: "asc"}[q.desc]},
				"cursor": {q.after.encode()}}, "mac", false)
			if err != nil || *back.after != *q.after {
				t.Fatalf("cursor round trip: %v %+v %+v", err, back.after, q.after)
			}
		}
	})
}

// TestListLag: paged lists may show boot activity up to views.lag late (one build serves
// every operator), never an admin write; the old shape is always current.
func TestListLag(t *testing.T) {
	f := listFarm(t)
	f.srv.views.lag = time.Hour
	const path = "/api/v1/discovered?state=unknown&sort=mac"
	if _, p, _ := getPage(t, f, path); p.macs() != "05 06" {
		t.Fatalf("before: %q", p.macs())
	}
	must(t, f.db.MarkSeen("52:54:00:00:00:07", "", ""))
	if _, p, _ := getPage(t, f, path); p.macs() != "05 06" {
		t.Fatalf("boot activity within the lag: %q, want the view of before", p.macs())
	}
	var old []Discovered
	_, _, body := get(t, f.base+"/api/v1/discovered", "Authorization", "Bearer 0123456789abcdef0123")
	must(t, json.Unmarshal([]byte(body), &old))
	if len(old) != 6 {
		t.Fatalf("the old shape is current: %d entries, want 6", len(old))
	}
	// An admin write: the MAC :06 gets a record; the next page shows it, and :07 with it.
	code, body := do(t, unixClient(f.socket), http.MethodPost, "http://admin/api/v1/nodes", `{"mac":"52:54:00:00:00:06","network":"test","farm":9}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	if _, p, _ := getPage(t, f, path); p.macs() != "05 07" {
		t.Fatalf("after an admin write: %q, want 05 07", p.macs())
	}
}
