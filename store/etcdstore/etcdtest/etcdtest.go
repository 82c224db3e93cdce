// Package etcdtest runs real etcd servers (Debian's etcd-server binary) on loopback for
// tests: one member or a cluster, on free ports, with data in the test's temporary
// directory. Members can be killed and started again.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Binary is the etcd server the tests run.
const Binary = "etcd"

// Require skips the test when the etcd binary is missing, or fails it when
// BOOTSTRAPD_REQUIRE_TOOLS=1 forbids skipping; it returns the binary's path.
func Require(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath(Binary)
	if err == nil {
		return p
	}
	if os.Getenv("BOOTSTRAPD_REQUIRE_TOOLS") == "1" {
		t.Fatalf("needs %s (Debian etcd-server), and BOOTSTRAPD_REQUIRE_TOOLS=1 forbids skipping", Binary)
	}
	t.Skipf("needs %s (Debian etcd-server: make deps); skipped (BOOTSTRAPD_REQUIRE_TOOLS=1 makes this a failure)", Binary)
	return ""
}

// Member is one etcd server.
type Member struct {
	Name       string
	ClientURL  string
	peerURL    string
	dataDir    string
	logPath    string
	args       []string
	bin        string
	cmd        *exec.Cmd
	exited     chan struct{}
	clusterArg string
}

// Cluster is a set of members started together.
type Cluster struct {
	t       testing.TB
	Members []*Member
}

// freePort returns a loopback port nobody listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs a cluster of n members and waits until it answers; the test's cleanup kills
// it.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	c := &Cluster{t: t}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			bin:       bin,
		}
		m.dataDir = filepath.Join(dir, m.Name)
		m.logPath = filepath.Join(dir, m.Name+".log")
		initial = append(initial, m.Name+"="+m.peerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.clusterArg = strings.Join(initial, ",")
		m.args = []string{
			"--name", m.Name, "--data-dir", m.dataDir,
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", m.clusterArg, "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(dir),
			// An import of 1,000 records is one transaction (the default allows 128).
			"--max-txn-ops", "10000",
			// Elections in under a second on a loaded test machine.
			"--heartbeat-interval", "100", "--election-timeout", "1000",
		}
		m.start(t)
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
		}
	})
	c.WaitReady(t, 30*time.Second)
	return c
}

func (m *Member) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(m.bin, m.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a kill reaches nothing else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", m.Name, err)
	}
	m.cmd, m.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(m.exited)
	}()
}

// Kill stops the member with SIGKILL and waits for it; a stopped member is left alone.
func (m *Member) Kill() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}

// Restart starts a killed member again on its data directory.
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	if m.cmd != nil {
		t.Fatalf("restart %s: still running", m.Name)
	}
	m.start(t)
}

// Log returns what the member wrote, for a failing test's message.
func (m *Member) Log() string {
	b, _ := os.ReadFile(m.logPath)
	return string(b)
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

// Client connects to the cluster; the test's cleanup closes it.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// WaitReady waits until a linearizable read succeeds (a leader is elected).
func (c *Cluster) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	cli := c.Client(t)
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Get(ctx, "ready-check")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, m := range c.Members {
				fmt.Fprintf(&logs, "--- %s\n%s\n", m.Name, tail(m.Log(), 2000))
			}
			t.Fatalf("etcd not ready after %v: %v\n%s", within, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
