package httpd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threefoldtech/bootstrapd/store/kernels"
)

const testToken = "0123456789abcdef0123" // newFixture's AdminToken

// multipartBody is a form with the given plain fields (in order) and then, unless fileName
// is "-", the kernel file.
func multipartBody(t *testing.T, fields [][2]string, field, fileName, content string) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, f := range fields {
		must(t, w.WriteField(f[0], f[1]))
	}
	if fileName != "-" {
		fw, err := w.CreateFormFile(field, fileName)
		must(t, err)
		fw.Write([]byte(content))
	}
	must(t, w.Close())
	return buf.String(), w.FormDataContentType()
}

func TestKernelMultipartUpload(t *testing.T) {
	payload := "MZ multipart kernel " + strings.Repeat("k", 70000)
	sum := sha256.Sum256([]byte(payload))
	digest := hex.EncodeToString(sum[:])
	bearer := "Bearer " + testToken
	tests := map[string]struct {
		fields   [][2]string
		field    string
		fileName string // "-": no file part
		ctype    string // "" = the form's
		hdr      []string
		code     int
		want     string // in the body
		stored   string // file that must exist afterwards with payload; "" = nothing stored
	}{
		"bearer":            {nil, "kernel", "zos-v5.efi", "", []string{"Authorization", bearer}, 201, `"status":"success"`, "zos-v5.efi"},
		"sha256 field":      {[][2]string{{"sha256", digest}}, "kernel", "zos-v6.efi", "", []string{"Authorization", bearer}, 201, digest, "zos-v6.efi"},
		"checksum header":   {nil, "kernel", "zos-v7.efi", "", []string{"Authorization", bearer, "X-Checksum-Sha256", digest}, 201, digest, "zos-v7.efi"},
		"directories cut":   {nil, "kernel", "/tmp/build/zos-v8.efi", "", []string{"Authorization", bearer}, 201, `"name":"zos-v8.efi"`, "zos-v8.efi"},
		"other fields kept": {[][2]string{{"note", "x"}}, "kernel", "zos-v9.efi", "", []string{"Authorization", bearer}, 201, `"status":"success"`, "zos-v9.efi"},
		"wrong sha256":      {[][2]string{{"sha256", strings.Repeat("0", 64)}}, "kernel", "bad1.efi", "", []string{"Authorization", bearer}, 400, "sha256 mismatch", ""},
		"sha256 not hex":    {[][2]string{{"sha256", "xyz"}}, "kernel", "bad2.efi", "", []string{"Authorization", bearer}, 400, "64 hex digits", ""},
		"cookie only":       {nil, "kernel", "bad3.efi", "", []string{"Cookie", "token=" + testToken}, 401, "Bearer", ""},
		"no token":          {nil, "kernel", "bad4.efi", "", nil, 401, "Bearer", ""},
		"wrong field":       {nil, "file", "bad5.efi", "", []string{"Authorization", bearer}, 400, `the kernel goes in \"kernel\"`, ""},
		"no file":           {[][2]string{{"sha256", digest}}, "kernel", "-", "", []string{"Authorization", bearer}, 400, "no file", ""},
		"hidden name":       {nil, "kernel", ".hidden", "", []string{"Authorization", bearer}, 400, "unsafe", ""},
		"not multipart":     {nil, "kernel", "bad6.efi", "application/octet-stream", []string{"Authorization", bearer}, 400, "multipart/form-data", ""},
		"long field":        {[][2]string{{"note", strings.Repeat("n", maxFormField+1)}}, "kernel", "bad7.efi", "", []string{"Authorization", bearer}, 400, "longer than", ""},
	}
	f := newFixture(t, nil)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			body, ctype := multipartBody(t, tc.fields, tc.field, tc.fileName, payload)
			if tc.ctype != "" {
				ctype = tc.ctype
			}
			code, got := do(t, http.DefaultClient, "POST", f.base+"/api/kernel", body, append([]string{"Content-Type", ctype}, tc.hdr...)...)
			if code != tc.code || !strings.Contains(got, tc.want) {
				t.Fatalf("POST /api/kernel = %d %s, want %d with %q", code, got, tc.code, tc.want)
			}
			if tc.stored != "" {
				b, err := os.ReadFile(filepath.Join(f.kernels, tc.stored))
				if err != nil || string(b) != payload {
					t.Fatalf("%s after upload: %v (%d bytes)", tc.stored, err, len(b))
				}
			}
		})
	}
	// Nothing refused left a file, a temporary one included.
	entries, err := os.ReadDir(f.kernels)
	must(t, err)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "bad") || strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if got := testutil.ToFloat64(f.srv.metrics.unauthorized); got != 2 {
		t.Errorf("unauthorized_total = %v, want 2 (cookie only, no token)", got)
	}
	if got := testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("/api/kernel", "201")); got != 5 {
		t.Errorf(`http_requests_total{route="/api/kernel",code="201"} = %v, want 5`, got)
	}
}

// An old upload script's curl line, changed only from the cookie to the bearer header.
func TestKernelMultipartCurl(t *testing.T) {
	curl := needCurl(t)
	f := newFixture(t, nil)
	file := filepath.Join(t.TempDir(), "zos-curl.efi")
	must(t, os.WriteFile(file, []byte("MZ from curl"), 0o644))
	out, err := exec.Command(curl, "-sS", "-w", " %{http_code}", "-H", "Authorization: Bearer "+testToken,
		"-F", "kernel=@"+file, f.base+"/api/kernel").CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), " 201") || !strings.Contains(string(out), `"status":"success"`) {
		t.Fatalf("curl -F: %v %s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(f.kernels, "zos-curl.efi")); string(b) != "MZ from curl" {
		t.Fatalf("stored %q", b)
	}
	// The old cookie form is refused, and stores nothing.
	must(t, os.WriteFile(file+"2", []byte("MZ cookie"), 0o644))
	out, _ = exec.Command(curl, "-sS", "-w", " %{http_code}", "-b", "token="+testToken,
		"-F", "kernel=@"+file+"2", f.base+"/api/kernel").CombinedOutput()
	if !strings.HasSuffix(string(out), " 401") {
		t.Fatalf("cookie upload: %s", out)
	}
}

func needCurl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("curl not installed: %v", err)
		}
		t.Skipf("curl not installed: %v", err)
	}
	return p
}

func TestCompatRefusals(t *testing.T) {
	f := newFixture(t, nil)
	tests := map[string]struct {
		method, path string
		code         int
		want         string
	}{
		"GET upload":       {"GET", "/api/kernel", 405, "POST a multipart form"},
		"HEAD upload":      {"HEAD", "/api/kernel", 405, ""},
		"symlink":          {"GET", "/api/symlink/net%2Fprod.efi/zos-v3.efi", 410, "PUT /api/v1/networks/"},
		"symlink HEAD":     {"HEAD", "/api/symlink/prod.efi/zos-v3.efi", 410, ""},
		"symlink escaping": {"GET", "/api/symlink/%3Cscript%3E/x", 410, "is gone"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, body := do(t, http.DefaultClient, tc.method, f.base+tc.path, "", "Cookie", "token="+testToken)
			if code != tc.code || !strings.Contains(body, tc.want) || strings.Contains(body, "<script>") {
				t.Fatalf("%s %s = %d %q, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.want)
			}
		})
	}
	// The default link is untouched.
	if target, _ := os.Readlink(filepath.Join(f.kernels, "net", "test.efi")); target != "../zos-v3.efi" {
		t.Fatalf("net/test.efi -> %q", target)
	}
}

func TestImages(t *testing.T) {
	f := newFixture(t, nil)
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	newer := old.Add(48 * time.Hour)
	files := map[string]struct {
		body  string
		mtime time.Time
	}{
		"zos-v3.efi":        {"MZ kernel bytes 0123456789", old.Add(24 * time.Hour)}, // the fixture's, default of test
		"zos-old.efi":       {"MZ old", old},
		"zos-new+x_1-2.efi": {strings.Repeat("n", 3<<20), newer},
	}
	for name, fl := range files {
		p := filepath.Join(f.kernels, name)
		must(t, os.WriteFile(p, []byte(fl.body), 0o644))
		must(t, os.Chtimes(p, fl.mtime, fl.mtime))
	}
	order := []string{"zos-new+x_1-2.efi", "zos-v3.efi", "zos-old.efi"}

	code, _, body := get(t, f.base+"/images.json")
	var got struct{ Images []Image }
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 {
		t.Fatalf("/images.json: %d %v %s", code, err, body)
	}
	if len(got.Images) != len(order) {
		t.Fatalf("/images.json lists %d files, want %d: %s", len(got.Images), len(order), body)
	}
	for i, img := range got.Images {
		want := files[img.Name]
		sum := sha256.Sum256([]byte(want.body))
		if img.Name != order[i] || img.Size != int64(len(want.body)) || img.SHA256 != hex.EncodeToString(sum[:]) || !img.MTime.Equal(want.mtime) {
			t.Errorf("image %d = %+v, want %s, %d bytes, mtime %v", i, img, order[i], len(want.body), want.mtime)
		}
	}
	if n := got.Images[1].Networks; len(n) != 1 || n[0] != "test" {
		t.Errorf("zos-v3.efi is the default of %v, want [test]", n)
	}

	for _, path := range []string{"/images", "/images/"} {
		code, hdr, page := get(t, f.base+path)
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || hdr.Get("Content-Security-Policy") == "" {
			t.Fatalf("%s: %d %v", path, code, hdr)
		}
		last := -1
		for _, name := range order {
			i := strings.Index(page, `href="/kernel/`+name+`"`)
			if i < 0 || i < last {
				t.Fatalf("%s: %s missing or out of order:\n%s", path, name, page)
			}
			last = i
		}
		if !strings.Contains(page, "3.0 MiB") || !strings.Contains(page, "2024-01-04 03:04:05 UTC") {
			t.Errorf("%s lacks the size or the date:\n%s", path, page)
		}
		if !strings.Contains(page, `/expert?kernel=zos-new%2Bx_1-2.efi`) {
			t.Errorf("%s: the expert link does not escape the name:\n%s", path, page)
		}
	}
	req, err := http.NewRequest(http.MethodHead, f.base+"/images", nil)
	must(t, err)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	headBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(headBody) != 0 {
		t.Fatalf("HEAD /images: %d, %d bytes", resp.StatusCode, len(headBody))
	}
	if got := testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("/images", "200")); got != 2 {
		t.Errorf(`http_requests_total{route="/images",code="200"} = %v, want 2`, got)
	}
}

func TestExpertAndGenerate(t *testing.T) {
	f := newFixture(t, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := map[string]struct {
		path     string
		code     int
		location string // for 302
		body     string // for errors
	}{
		"generate":       {"/generate", 302, "/#generator", ""},
		"generate slash": {"/generate/", 302, "/#generator", ""},
		"expert bare":    {"/expert", 302, "/#generator", ""},
		"expert kernel":  {"/expert?kernel=zos-v3.efi", 302, "/?gen_kernel=zos-v3.efi#generator", ""},
		"expert everything": {"/expert/?network=test&farm=42&args=console%3DttyS0+root%3D%2Fdev%2Fram0&kernel=zos-v3.efi&format=snponly", 302,
			"/?gen_args=console%3DttyS0+root%3D%2Fdev%2Fram0&gen_farm=42&gen_format=snponly&gen_kernel=zos-v3.efi&gen_network=test#generator", ""},
		"unknown kernel":  {"/expert?kernel=nope.efi", 404, "", "kernel file not found: nope.efi"},
		"escaping kernel": {"/expert?kernel=..%2F..%2Fetc%2Fpasswd", 400, "", "kernel:"},
		"kernel outside":  {"/expert?kernel=net%2Fprod.efi", 404, "", "kernel file not found"},
		"unknown network": {"/expert?network=mainnet", 404, "", "unknown network"},
		"bad network":     {"/expert?network=%3Cscript%3E", 400, "", "network:"},
		"bad farm":        {"/expert?farm=0", 400, "", "farm:"},
		"unsafe args":     {"/expert?args=a%3Breboot", 400, "", "args:"},
		"unknown format":  {"/expert?format=floppy", 400, "", `unknown format "floppy"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				req, err := http.NewRequest(method, f.base+tc.path, nil)
				must(t, err)
				resp, err := noRedirect.Do(req)
				must(t, err)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.code || resp.Header.Get("Location") != tc.location {
					t.Fatalf("%s %s = %d Location %q, want %d %q (%s)", method, tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.code, tc.location, body)
				}
				// Reasons are plain text: a name from the URL is never markup.
				if ct := resp.Header.Get("Content-Type"); tc.code >= 400 && !strings.HasPrefix(ct, "text/plain") {
					t.Fatalf("%s %s: Content-Type %q", method, tc.path, ct)
				}
				if method == http.MethodGet && !strings.Contains(string(body), tc.body) {
					t.Fatalf("GET %s: body %q, want %q", tc.path, body, tc.body)
				}
			}
		})
	}
	if got := testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("/expert", "302")); got != 4 {
		t.Errorf(`http_requests_total{route="/expert",code="302"} = %v, want 4 (2 links, GET and HEAD)`, got)
	}
}

// The generator's link for a kernel without extra arguments has an empty segment before it.
func TestKernelAfterEmptyArgs(t *testing.T) {
	f := newFixture(t, nil)
	for _, path := range []string{"/ipxe/test/42//zos-v3.efi", "/ipxe/test/42/%20/zos-v3.efi"} {
		code, _, body := get(t, f.base+path)
		if code != 200 || !strings.Contains(body, "set kernel "+f.base+"/kernel/zos-v3.efi\n") || !strings.Contains(body, "runmode=test farmer_id=42 ||") {
			t.Fatalf("GET %s = %d\n%s", path, code, body)
		}
	}
}

func TestImagesPageEscapes(t *testing.T) {
	page := imagesPage([]Image{{KernelInfo: kernels.KernelInfo{Name: `a<b>"&'c d?.efi`, SHA256: "<x>"}, Networks: []string{"<n>"}}})
	for _, want := range []string{
		`href="/kernel/a%3Cb%3E%22&amp;%27c%20d%3F.efi"`,
		`>a&lt;b&gt;&#34;&amp;&#39;c d?.efi</a>`,
		`<code>&lt;x&gt;</code>`,
		`<td>&lt;n&gt;</td>`,
		`href="/expert?kernel=a%3Cb%3E%22%26%27c+d%3F.efi"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<b>") || strings.Contains(page, "<x>") {
		t.Errorf("a name reached the page unescaped:\n%s", page)
	}
}
