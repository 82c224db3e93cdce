package kernels

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeBzImage is a file with a bzImage header ("HdrS" at 0x202) and tag after it.
func fakeBzImage(tag string) []byte {
	b := make([]byte, 8192)
	copy(b[0x202:], "HdrS")
	copy(b[0x1000:], tag)
	return b
}

func fakePE() []byte {
	b := make([]byte, 1024)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	return b
}

func TestCheckHeader(t *testing.T) {
	arm := make([]byte, 512)
	copy(arm, "MZ")
	copy(arm[0x38:], "ARM\x64")
	badPE := fakePE()
	binary.LittleEndian.PutUint32(badPE[0x3c:], 0xffffff00)
	tests := map[string]struct {
		b    []byte
		want string
	}{
		"bzImage":        {fakeBzImage("x"), "bzimage"},
		"arm64 Image":    {arm, "arm64_image"},
		"EFI PE":         {fakePE(), "efi"},
		"MZ, PE too far": {badPE, ""},
		"MZ only":        {[]byte("MZ" + strings.Repeat("\x00", 100)), ""},
		"HTML page":      {[]byte("<!DOCTYPE html><html><body>404 not found</body></html>"), ""},
		"empty":          {nil, ""},
		"short HdrS":     {fakeBzImage("x")[:0x204], ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := CheckHeader(tc.b)
			if got != tc.want || (tc.want == "") != errors.Is(err, ErrNotKernel) {
				t.Errorf("CheckHeader = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func FuzzCheckHeader(f *testing.F) {
	f.Add(fakeBzImage("x"))
	f.Add(fakePE())
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, err := CheckHeader(b)
		if (err == nil) == (kind == "") {
			t.Fatalf("kind %q with err %v", kind, err)
		}
		// Whatever it accepts carries its magic where the kind says.
		switch kind {
		case "bzimage":
			if string(b[0x202:0x206]) != "HdrS" {
				t.Fatal("bzimage without HdrS")
			}
		case "efi":
			off := binary.LittleEndian.Uint32(b[0x3c:])
			if string(b[:2]) != "MZ" || string(b[off:off+4]) != "PE\x00\x00" {
				t.Fatal("efi without MZ/PE")
			}
		}
	})
}

// upstream is a real HTTP server on loopback that serves one changeable file with an ETag
// and Last-Modified, and records the conditional headers it is sent.
type upstream struct {
	mu       sync.Mutex
	body     []byte
	modified time.Time
	status   int
	condHdrs []string
	url      string
}

func newUpstream(t *testing.T, body []byte) *upstream {
	u := &upstream{body: body, modified: time.Now().Add(-time.Hour).Truncate(time.Second)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		body, mod, status := u.body, u.modified, u.status
		u.condHdrs = append(u.condHdrs, r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
		u.mu.Unlock()
		if status != 0 {
			http.Error(w, "upstream says no", status)
			return
		}
		sum := sha256.Sum256(body)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
		http.ServeContent(w, r, "kernel", mod, bytes.NewReader(body))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	u.url = "http://" + ln.Addr().String() + "/kernel/zos.efi"
	return u
}

func (u *upstream) set(body []byte, status int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.body, u.status, u.modified = body, status, u.modified.Add(time.Minute)
}

func (u *upstream) lastCond() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.condHdrs[len(u.condHdrs)-1]
}

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPull(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	reg := prometheus.NewRegistry()
	p, err := NewPuller(PullerConfig{Dir: d, MaxBytes: 64 << 10, Networks: []string{"test"}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := fakeBzImage("v1"), fakeBzImage("v2")
	up := newUpstream(t, v1)
	ctx := context.Background()
	name1 := "test-" + shaOf(v1)[:12] + ".efi"
	name2 := "test-" + shaOf(v2)[:12] + ".efi"

	steps := []struct {
		name     string
		setup    func()
		sha      string
		result   string
		kernel   string // the default afterwards
		errHas   string
		condSent bool
	}{
		{"first pull", nil, "", PullUpdated, name1, "", false},
		{"repeat is conditional", nil, "", PullUnchanged, name1, "", true},
		{"upstream changed", func() { up.set(v2, 0) }, "", PullUpdated, name2, "", true},
		{"upstream 404", func() { up.set(v2, 404) }, "", PullError, name2, "404", true},
		{"HTML with 200", func() { up.set([]byte("<html>maintenance</html>"), 0) }, "", PullError, name2, "not a kernel", true},
		{"too large", func() { up.set(append(fakeBzImage("big"), make([]byte, 64<<10)...), 0) }, "", PullError, name2, "allowed", true},
		{"wrong sha256", func() { up.set(v1, 0) }, shaOf(v2), PullError, name2, "sha256 mismatch", false},
		{"right sha256", nil, shaOf(v1), PullUpdated, name1, "", false},
	}
	for _, s := range steps {
		if s.setup != nil {
			s.setup()
		}
		ev, err := p.Pull(ctx, "test", "", up.url, s.sha)
		if ev.Result != s.result || (s.errHas == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), s.errHas)) {
			t.Fatalf("%s: result %q, err %v; want %q with %q", s.name, ev.Result, err, s.result, s.errHas)
		}
		if got := d.Default("test"); got != s.kernel {
			t.Fatalf("%s: net/test.efi -> %q, want %q", s.name, got, s.kernel)
		}
		if cond := up.lastCond(); (cond != "|") != s.condSent {
			t.Errorf("%s: conditional headers %q, sent = %v wanted", s.name, cond, s.condSent)
		}
	}
	// Both versions stay on disk: the previous kernel is never removed by a pull.
	for _, n := range []string{name1, name2} {
		if !d.Exists(n) {
			t.Errorf("%s is gone", n)
		}
	}
	// No temporary file is left, and the state file is not listed as a kernel.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), uploadPrefix) {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	list, err := d.List([]string{"test"})
	if err != nil || len(list.Kernels) != 2 {
		t.Errorf("List: %+v, %v; want the two kernels only", list.Kernels, err)
	}
	hist := p.History([]string{"test", "prod"})
	if len(hist) != len(steps) || hist[0].Result != PullUpdated || hist[0].Previous != name2 || hist[0].Kernel != name1 {
		t.Errorf("history (newest first): %+v", hist)
	}
	for result, want := range map[string]float64{PullUpdated: 3, PullUnchanged: 1, PullError: 4} {
		if got := testutil.ToFloat64(p.pulls.WithLabelValues("test", result)); got != want {
			t.Errorf("pulls{result=%s} = %v, want %v", result, got, want)
		}
	}
	// The state survives a restart: a new Puller's first pull is conditional.
	p2, _ := NewPuller(PullerConfig{Dir: d})
	if ev, err := p2.Pull(ctx, "test", "", up.url, ""); err != nil || ev.Result != PullUnchanged || up.lastCond() == "|" {
		t.Errorf("after restart: %+v, %v, conditional %q", ev, err, up.lastCond())
	}
}

func TestPullRefusesBadInput(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p, _ := NewPuller(PullerConfig{Dir: d})
	tests := map[string]struct{ network, arch, url, sha, want string }{
		"bad network":  {"../x", "", "http://127.0.0.1/k", "", "network"},
		"bad arch":     {"test", "riscv64", "http://127.0.0.1/k", "", "architecture"},
		"ftp":          {"test", "", "ftp://127.0.0.1/k", "", "http:// or https://"},
		"no host":      {"test", "", "http:///k", "", "host"},
		"credentials":  {"test", "", "http://u:p@127.0.0.1/k", "", "credentials"},
		"space":        {"test", "", "http://127.0.0.1/a b", "", "printable"},
		"short sha256": {"test", "", "http://127.0.0.1/k", "abcd", "64 hex"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := p.Pull(context.Background(), tc.network, tc.arch, tc.url, tc.sha); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(filepath.Join(d.root.Name())); len(entries) != 0 {
		t.Errorf("refused pulls wrote %d files", len(entries))
	}
}

// Each architecture's default takes only its own kind of image, and keeps its own state.
func TestPullArch(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p, _ := NewPuller(PullerConfig{Dir: d})
	arm := make([]byte, 8192)
	copy(arm, "MZ")
	copy(arm[0x38:], "ARM\x64")
	up := newUpstream(t, arm)
	ctx := context.Background()
	if _, err := p.Pull(ctx, "test", "x86_64", up.url, ""); err == nil || !strings.Contains(err.Error(), "arm64_image image cannot be the x86_64 default") {
		t.Errorf("arm64 kernel as the x86 default: %v", err)
	}
	ev, err := p.Pull(ctx, "test", "arm64", up.url, "")
	want := "test-arm64-" + shaOf(arm)[:12] + ".efi"
	if err != nil || ev.Kernel != want || d.DefaultFor("test", "arm64") != want || d.Default("test") != "" {
		t.Fatalf("arm64 pull: %+v, %v; arm64 default %q, x86 default %q", ev, err, d.DefaultFor("test", "arm64"), d.Default("test"))
	}
	up.set(fakeBzImage("x86"), 0)
	if _, err := p.Pull(ctx, "test", "arm64", up.url, ""); err == nil {
		t.Error("an x86 bzImage became the arm64 default")
	}
	if h := p.History([]string{"test"}); len(h) != 3 || h[0].Arch != "arm64" || h[2].Arch != "x86_64" {
		t.Errorf("history: %+v", h)
	}
}
