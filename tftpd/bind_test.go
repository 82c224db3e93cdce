package tftpd

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const childEnv = "BOOTSTRAPD_TFTPD_UNPRIVILEGED_CHILD"

// TestBindPrivilegedPort checks the error an unprivileged user gets on port 69: run as root,
// it runs itself again as nobody.
func TestBindPrivilegedPort(t *testing.T) {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		t.Skipf("cannot tell which ports are privileged: %v", err)
	}
	if start, _ := strconv.Atoi(strings.TrimSpace(string(raw))); start <= 69 {
		t.Skipf("port 69 is not privileged here (ip_unprivileged_port_start = %d)", start)
	}
	if os.Geteuid() != 0 {
		s, err := New(Config{Addr: "127.0.0.1:69", Files: testFiles()})
		if err == nil {
			s.Close()
			if os.Getenv(childEnv) != "" {
				t.Fatal("New bound port 69 without privilege")
			}
			t.Skip("this user may bind port 69 (CAP_NET_BIND_SERVICE?)")
		}
		if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), `tftp listen "127.0.0.1:69"`) {
			t.Fatalf("New error = %v, want one naming the address that errors.Is os.ErrPermission", err)
		}
		return
	}
	// The test binary may sit in a directory nobody cannot enter: copy it out.
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "tftpd.test")
	copyFile(t, os.Args[0], exe)
	cmd := exec.Command(exe, "-test.run=^TestBindPrivilegedPort$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "--- PASS: TestBindPrivilegedPort") {
		t.Fatalf("as nobody: %v\n%s", err, out.String())
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
