package tftpd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// runClient runs a client program with a deadline and returns its combined output.
func runClient(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %v did not finish: %s", name, args, out.String())
		return "", nil
	}
}

// clientCase is one request made with a real client program.
type clientCase struct {
	file     string   // the name the server must see
	args     []string // extra client arguments
	wantErr  error    // nil: the client must get the file
	wantCode uint16   // the TFTP error code the client must report, with wantErr
}

// errorCode reads the TFTP error code a client reports: tftp-hpa 5.2 exits 0 after an error
// packet, printing "Error code N: message"; curl exits with 68 (code 1), 69 (2) or 71 (4).
func errorCode(msg string, err error) (uint16, bool) {
	var code uint16
	if i := strings.Index(msg, "Error code "); i >= 0 {
		if _, err := fmt.Sscanf(msg[i:], "Error code %d:", &code); err == nil {
			return code, true
		}
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code, ok := map[int]uint16{68: codeNotFound, 69: codeAccess, 71: codeIllegal}[ee.ExitCode()]
		return code, ok
	}
	return 0, false
}

func TestCurl(t *testing.T) {
	curl := needTool(t, "curl")
	files := testFiles()
	for _, anticipate := range []uint{0, 8} {
		ts := startServer(t, Config{Anticipate: anticipate})
		base := fmt.Sprintf("tftp://127.0.0.1:%d/", ts.port())
		tests := map[string]struct {
			clientCase
			url string
		}{
			"bios default":      {url: base + "undionly.kpxe", clientCase: clientCase{file: "undionly.kpxe"}},
			"bios blksize 1468": {url: base + "undionly.kpxe", clientCase: clientCase{file: "undionly.kpxe", args: []string{"--tftp-blksize", "1468"}}},
			"efi 1 MiB 1468":    {url: base + "ipxe-amd64.efi", clientCase: clientCase{file: "ipxe-amd64.efi", args: []string{"--tftp-blksize", "1468"}}},
			"no options":        {url: base + "blocks512.bin", clientCase: clientCase{file: "blocks512.bin", args: []string{"--tftp-no-options"}}},
			"empty":             {url: base + "empty.bin", clientCase: clientCase{file: "empty.bin"}},
			"multiple of 1468":  {url: base + "blocks1468.bin", clientCase: clientCase{file: "blocks1468.bin", args: []string{"--tftp-blksize", "1468"}}},
			// curl drops the "/" that separates host and path (RFC 3617), so "//" sends "/etc/passwd".
			"absolute":  {url: base + "/etc/passwd", clientCase: clientCase{file: "/etc/passwd", wantErr: ErrRefused, wantCode: codeAccess}},
			"traversal": {url: base + "../etc/passwd", clientCase: clientCase{file: "../etc/passwd", args: []string{"--path-as-is"}, wantErr: ErrRefused, wantCode: codeAccess}},
			"unknown":   {url: base + "pxelinux.0", clientCase: clientCase{file: "pxelinux.0", wantErr: ErrNotFound, wantCode: codeNotFound}},
		}
		for name, tc := range tests {
			t.Run(fmt.Sprintf("anticipate %d/%s", anticipate, name), func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				args := append([]string{"-sS", "--max-time", "20", "-o", out}, tc.args...)
				msg, err := runClient(t, curl, append(args, tc.url)...)
				checkClient(t, ts, tc.clientCase, out, fileData(files, tc.file), msg, err)
			})
		}
	}
}

func TestTFTPHPA(t *testing.T) {
	tftpBin := needTool(t, "tftp")
	files := testFiles()
	for _, anticipate := range []uint{0, 8} {
		ts := startServer(t, Config{Anticipate: anticipate})
		port := fmt.Sprint(ts.port())
		tests := map[string]clientCase{
			"bios":              {file: "undionly.kpxe"},
			"efi 1 MiB":         {file: "ipxe-amd64.efi"},
			"empty":             {file: "empty.bin"},
			"multiple of 512":   {file: "blocks512.bin"},
			"absolute":          {file: "/etc/passwd", wantErr: ErrRefused, wantCode: codeAccess},
			"traversal":         {file: "../etc/passwd", wantErr: ErrRefused, wantCode: codeAccess},
			"deep traversal":    {file: "../../../../../../etc/passwd", wantErr: ErrRefused, wantCode: codeAccess},
			"unknown":           {file: "pxelinux.0", wantErr: ErrNotFound, wantCode: codeNotFound},
			"directory":         {file: "sub/inner.bin", wantErr: ErrRefused, wantCode: codeAccess},
			"windows separator": {file: `\etc\passwd`, wantErr: ErrRefused, wantCode: codeAccess},
		}
		for name, tc := range tests {
			t.Run(fmt.Sprintf("anticipate %d/%s", anticipate, name), func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				// -l: literal names, so that a ':' is not read as host:file.
				msg, err := runClient(t, tftpBin, "-l", "-m", "binary", "127.0.0.1", port, "-c", "get", tc.file, out)
				checkClient(t, ts, tc, out, fileData(files, tc.file), msg, err)
			})
		}
	}
	// tftp-hpa's default mode is netascii, which would garble a binary.
	ts := startServer(t, Config{})
	msg, _ := runClient(t, tftpBin, "127.0.0.1", fmt.Sprint(ts.port()), "-c", "get", "undionly.kpxe", filepath.Join(t.TempDir(), "out"))
	if !strings.Contains(msg, `Error code 4: illegal TFTP operation: unsupported mode "netascii"`) {
		t.Errorf("netascii get: %q, want the unsupported-mode refusal", msg)
	}
	if tr := ts.next(t); !errors.Is(tr.Err, ErrRefused) || refuseReason(tr.Err) != reasonMode {
		t.Errorf("netascii transfer = %+v, want refused for its mode", tr)
	}
}

func TestTFTPHPAPut(t *testing.T) {
	tftpBin := needTool(t, "tftp")
	ts := startServer(t, Config{})
	local := filepath.Join(t.TempDir(), "evil")
	if err := os.WriteFile(local, []byte("not a boot loader"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, remote := range []string{"undionly.kpxe", "new.bin", "../tmp/x"} {
		msg, err := runClient(t, tftpBin, "-l", "-m", "binary", "127.0.0.1", fmt.Sprint(ts.port()), "-c", "put", local, remote)
		if !strings.Contains(msg, "Error code 4: illegal TFTP operation: write requests are refused") {
			t.Errorf("put %s: %v, %q; want the read-only refusal", remote, err, msg)
		}
		if tr := ts.next(t); tr.File != remote || !errors.Is(tr.Err, ErrRefused) {
			t.Errorf("transfer = %+v, want %s refused", tr, remote)
		}
	}
	if got := ts.refusals(reasonWrite); got != 3 {
		t.Errorf("refused{write} = %v, want 3", got)
	}
}

// checkClient checks a client's result and the server's report of the same request.
func checkClient(t *testing.T, ts *testServer, tc clientCase, out string, want []byte, msg string, err error) {
	t.Helper()
	tr := ts.next(t)
	if tr.File != tc.file {
		t.Errorf("server saw %q, want %q", tr.File, tc.file)
	}
	code, failed := errorCode(msg, err)
	if tc.wantErr != nil {
		if !failed || code != tc.wantCode {
			t.Errorf("client reports code %d (failed %v), want code %d; output %q, %v", code, failed, tc.wantCode, msg, err)
		}
		if strings.Contains(msg, "Error code") && !strings.Contains(msg, tr.Err.Error()) {
			t.Errorf("client shows %q, want the server's wording %q", msg, tr.Err)
		}
		if !errors.Is(tr.Err, tc.wantErr) {
			t.Errorf("transfer error = %v, want %v", tr.Err, tc.wantErr)
		}
		return
	}
	if failed || err != nil {
		t.Fatalf("client: %v: %s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil && !(len(want) == 0 && errors.Is(err, os.ErrNotExist)) {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("client got %d bytes, want the %d bytes of %s", len(got), len(want), tc.file)
	}
	if tr.Err != nil || tr.Bytes != int64(len(want)) {
		t.Errorf("transfer = %+v, want %d bytes, no error", tr, len(want))
	}
}

func fileData(files map[string]*fstest.MapFile, name string) []byte {
	if f, ok := files[name]; ok {
		return f.Data
	}
	return nil
}
