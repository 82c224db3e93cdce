package httpd

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// listenUnix binds the admin socket with mode 0600: file permissions are its authentication.
//
// The socket is bound under a random temporary name in the socket's directory, made 0600 and
// only then renamed over path. Clients connect by path, so nobody can reach the listener
// before its mode is final, and no process-wide umask has to change meanwhile. The window in
// which the temporary socket has the default mode is closed to others by the directory: it
// is created 0750 when missing, and in production it is the daemon's own (/run/bootstrapd).
//
// A stale socket from a crashed daemon is replaced; a live one (another daemon) is an error.
func listenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("httpd: admin socket dir: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("httpd: admin socket %s: another bootstrapd is listening on it", path)
	}
	// 60 random bits are plenty against a collision and keep the name short: a socket path
	// holds at most 107 bytes.
	tmp := filepath.Join(dir, ".admin.sock."+rand.Text()[:12])
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("httpd: admin socket %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	// Close would unlink the temporary name, which no longer exists after the rename; Serve
	// removes the final path itself.
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ul.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("httpd: admin socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ul.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("httpd: admin socket %s: %w", path, err)
	}
	return ul, nil
}
