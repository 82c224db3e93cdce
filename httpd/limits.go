package httpd

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// connLimiter caps the open TCP connections of one listener. Every farm device and, for
// remote nodes, the internet can open connections; without a cap, idle ones exhaust the
// process's descriptors and a kernel download then fails to open its file. At the cap the
// connection that has been idle (or silent since it connected) the longest is closed to make
// room, so a crowd of idle sockets cannot lock out a node that wants its kernel; when every
// connection is busy, the new one is closed at once.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[net.Conn]connInfo

	evicted, refused prometheus.Counter
	open             prometheus.Gauge
	closed           *prometheus.CounterVec // reason
}

type connInfo struct {
	state http.ConnState
	since time.Time
}

func newConnLimiter(l net.Listener, max int, m *metrics) *connLimiter {
	return &connLimiter{Listener: l, max: max, conns: map[net.Conn]connInfo{},
		evicted: m.connsEvicted, refused: m.connsRefused, open: m.connsOpen, closed: m.connsClosed}
}

// Accept returns the next connection that fits under the cap.
func (l *connLimiter) Accept() (net.Conn, error) { return l.acceptFrom(l.Listener) }

// acceptFrom is Accept on another socket under the same cap (the TLS listener's).
func (l *connLimiter) acceptFrom(ln net.Listener) (net.Conn, error) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil, err
		}
		c = &watchedConn{Conn: c, closed: l.closed}
		if l.admit(c) {
			return c, nil
		}
		// Counted before the close, so whoever sees the close also sees the count.
		l.refused.Inc()
		c.Close()
	}
}

func (l *connLimiter) admit(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		victim := l.oldestIdle()
		if victim == nil {
			return false
		}
		// Closing makes the server report StateClosed, which deletes it; delete now so the
		// count is right for the next Accept.
		delete(l.conns, victim)
		victim.Close()
		l.evicted.Inc()
	}
	l.conns[c] = connInfo{state: http.StateNew, since: time.Now()}
	l.open.Set(float64(len(l.conns)))
	return true
}

// oldestIdle is the connection with no request in flight that has waited the longest.
func (l *connLimiter) oldestIdle() net.Conn {
	var (
		victim net.Conn
		oldest time.Time
	)
	for c, ci := range l.conns {
		if (ci.state == http.StateIdle || ci.state == http.StateNew) && (victim == nil || ci.since.Before(oldest)) {
			victim, oldest = c, ci.since
		}
	}
	return victim
}

// track is the http.Server's ConnState hook.
func (l *connLimiter) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	default:
		if _, ok := l.conns[c]; ok {
			l.conns[c] = connInfo{state: st, since: time.Now()}
		}
	}
	l.open.Set(float64(len(l.conns)))
}

// watchedConn counts the limits the http.Server enforces by itself, which no handler sees: a
// read or write deadline that expired, and a header block over MaxHeaderBytes (the server
// answers 431 and closes).
type watchedConn struct {
	net.Conn
	closed *prometheus.CounterVec
}

var status431 = []byte("HTTP/1.1 431 ")

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.closed.WithLabelValues("read_timeout").Inc()
	}
	return n, err
}

func (c *watchedConn) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, status431) {
		c.closed.WithLabelValues("header_too_large").Inc()
	}
	n, err := c.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.closed.WithLabelValues("write_timeout").Inc()
	}
	return n, err
}

// ReadFrom hands a file response to the TCP connection's own ReadFrom, which sends it with
// sendfile(2): net/http looks for it on the connection, and the embedded net.Conn hides it.
func (c *watchedConn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{c}, r)
	}
	n, err := rf.ReadFrom(r)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.closed.WithLabelValues("write_timeout").Inc()
	}
	return n, err
}

// writerOnly hides a writer's ReadFrom from io.Copy, which would call it again.
type writerOnly struct{ io.Writer }

// writeDeadline gives every response WriteTimeout to be written. File responses renew it at
// each write (progressWriter), so only a client that stops reading is cut off, never a slow
// one fetching a large kernel.
func (s *Server) writeDeadline(c *gin.Context) {
	if err := http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.Debug("set write deadline", "err", err)
	}
	c.Next()
}

// progressWriter counts the bytes of a file response and renews the write deadline before
// each write, or each slice of a file sent by ReadFrom, so every chunk gets a fresh deadline.
type progressWriter struct {
	gin.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	n       int64
}

func newProgressWriter(w gin.ResponseWriter, timeout time.Duration) *progressWriter {
	return &progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout}
}

// sendfileChunk is how much of a file goes out under one write deadline when the file is
// sent with sendfile(2): a client slower than sendfileChunk per WriteTimeout (8.7 KB/s at the
// default 30 s) is cut off, one that stops reading too.
const sendfileChunk = 256 << 10

// ReadFrom sends a file (http.ServeContent copies with io.CopyN, so src is an
// *io.LimitedReader over the *os.File) through the connection's sendfile(2), in slices of
// sendfileChunk with the deadline renewed before each. net/http recognises the file only one
// LimitedReader deep, so the slices are cut from the file itself. Any other writer or reader
// gets the plain copy through Write.
func (w *progressWriter) ReadFrom(src io.Reader) (int64, error) {
	u, ok := w.ResponseWriter.(interface{ Unwrap() http.ResponseWriter })
	var rf io.ReaderFrom
	if ok {
		rf, ok = u.Unwrap().(io.ReaderFrom)
	}
	if !ok {
		return io.Copy(writerOnly{w}, src)
	}
	// gin records the status only when it writes the header itself.
	w.ResponseWriter.WriteHeaderNow()
	r, remain := src, int64(math.MaxInt64)
	lr, limited := src.(*io.LimitedReader)
	if limited {
		r, remain = lr.R, lr.N
	}
	var total int64
	for remain > 0 {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
		chunk := min(remain, sendfileChunk)
		n, err := rf.ReadFrom(&io.LimitedReader{R: r, N: chunk})
		total, remain, w.n = total+n, remain-n, w.n+n
		if limited {
			lr.N -= n
		}
		if err != nil || n < chunk {
			return total, err
		}
	}
	return total, nil
}

func (w *progressWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}
