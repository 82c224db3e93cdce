package reliability

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestUploadInterrupted streams a kernel upload over the admin socket, stalls it part way and
// ends the daemon: no kernel of that name may appear, and the next start removes the upload's
// temporary file and says so in its log.
func TestUploadInterrupted(t *testing.T) {
	const (
		name  = "zos-interrupted.efi"
		total = 64 << 20
		sent  = 8 << 20
	)
	cases := []struct {
		name string
		sig  syscall.Signal
	}{
		{"SIGKILL mid-body", syscall.SIGKILL},
		{"SIGTERM mid-body", syscall.SIGTERM},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDaemon(t, nil)
			d.start()

			pr, pw := io.Pipe()
			stall := make(chan struct{})
			var once sync.Once
			release := func() { once.Do(func() { close(stall) }) }
			defer release()
			go func() {
				chunk := bytes.Repeat([]byte("K"), 1<<20)
				for range sent / len(chunk) {
					if _, err := pw.Write(chunk); err != nil {
						return
					}
				}
				<-stall // never send the rest
				pw.CloseWithError(io.ErrUnexpectedEOF)
			}()
			req, err := http.NewRequest(http.MethodPut, "http://bootstrapd/api/v1/kernels/"+name, pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = total
			answer := make(chan string, 1)
			go func() {
				resp, err := d.admin.Do(req)
				if err != nil {
					answer <- "error: " + err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answer <- fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
			}()

			// The daemon holds the first 8 MiB in its temporary file.
			deadline := time.Now().Add(20 * time.Second)
			var tmp string
			for {
				for _, f := range uploadTemps(t, d.kernels) {
					if st, err := os.Stat(filepath.Join(d.kernels, f)); err == nil && st.Size() >= sent {
						tmp = f
					}
				}
				if tmp != "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no .upload-* file of %s in %s after 20 s; files: %v", mib(sent), d.kernels, dirNames(t, d.kernels))
				}
				time.Sleep(20 * time.Millisecond)
			}

			sigAt := time.Now()
			d.signal(tc.sig)
			if !d.waitExit(15 * time.Second) {
				t.Fatalf("the daemon still runs 15 s after %v", tc.sig)
			}
			exitTook := d.p.exitAt.Sub(sigAt)
			// The client's transport waits for its body reader; end it now the daemon is gone.
			release()
			select {
			case a := <-answer:
				if strings.HasPrefix(a, "201") {
					t.Errorf("the interrupted upload was acknowledged: %s", a)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("the upload request did not end within 5 s of the daemon's exit")
			}
			if _, err := os.Lstat(filepath.Join(d.kernels, name)); err == nil {
				t.Errorf("%s exists in paths.kernels after an upload of %s of %s was interrupted", name, mib(sent), mib(total))
			}
			left := uploadTemps(t, d.kernels)

			d.start()
			restartLog := d.logText()
			if rest := uploadTemps(t, d.kernels); len(rest) > 0 {
				t.Errorf("after the restart, paths.kernels still holds %v", rest)
			}
			logged := true
			for _, f := range left {
				if !logLineWith(restartLog, "removed", f) {
					logged = false
					t.Errorf("the restart's log has no line with \"removed\" naming %s:\n%s", f, tail(d.p.logPath, 15))
				}
			}
			var list struct {
				Kernels []struct {
					Name string `json:"name"`
				} `json:"kernels"`
			}
			if code := d.apiJSON(http.MethodGet, "/api/v1/kernels", nil, &list); code != 200 {
				t.Fatalf("GET /api/v1/kernels: %d", code)
			}
			for _, k := range list.Kernels {
				if k.Name == name || strings.HasPrefix(k.Name, ".upload-") {
					t.Errorf("GET /api/v1/kernels lists %s", k.Name)
				}
			}
			// The name is free for a complete upload.
			payload := bytes.Repeat([]byte("MZ whole kernel "), 4096)
			req, err = http.NewRequest(http.MethodPut, "http://bootstrapd/api/v1/kernels/"+name, bytes.NewReader(payload))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := d.admin.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("a complete upload after the restart: %d", resp.StatusCode)
			} else if code, body, err := httpGet(http.DefaultClient, d.base()+"/kernel/"+name); err != nil || code != 200 || !bytes.Equal(body, payload) {
				t.Errorf("GET /kernel/%s after a complete upload: %d, %d bytes, %v", name, code, len(body), err)
			}
			t.Logf("SOAK: test=upload-interrupted case=%q total=%s sent=%s temp_seen=%s exit_after_signal=%s temps_left_at_exit=%d removed_logged=%t",
				tc.name, mib(total), mib(sent), tmp, exitTook.Round(time.Millisecond), len(left), logged && len(left) > 0)
		})
	}
}

// uploadTemps lists the .upload-* files in dir.
func uploadTemps(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, n := range dirNames(t, dir) {
		if strings.HasPrefix(n, ".upload-") {
			out = append(out, n)
		}
	}
	return out
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// logLineWith reports whether one line of log holds every one of words.
func logLineWith(log string, words ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
