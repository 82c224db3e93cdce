package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a background process the test started. It runs in its own process group, is
// killed with SIGKILL if the test binary dies, and is stopped by t.Cleanup.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed
}

// start runs argv with stdout and stderr appended to logPath.
func start(t *testing.T, name, logPath string, argv ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("%s: log: %v", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s (%s): %v", name, strings.Join(argv, " "), err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after 5 s. Only this process's group
// is signalled, never anything found by name.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// kill ends the process at once (a VM whose work is done).
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// run runs argv to completion and returns its combined output.
func run(argv ...string) (string, error) {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func mustRun(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := run(argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ansi matches terminal control sequences that firmware and iPXE write to the console.
var ansi = regexp.MustCompile(`\x1b(\[[0-9;?=]*[A-Za-z]|[()][0-9A-Za-z]|[A-Za-z])`)

// cleanConsole makes a serial log readable: no escape sequences, no carriage returns, no
// backspaces (iPXE's countdown).
func cleanConsole(b []byte) string {
	s := ansi.ReplaceAllString(string(b), "")
	s = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\b \b", "", "\b", "").Replace(s)
	return s
}

// tail returns about the last n lines of the file at path, cleaned of escape sequences.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "(no file " + path + ")"
		}
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(cleanConsole(b), "\n"), "\n")
	var keep []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}
