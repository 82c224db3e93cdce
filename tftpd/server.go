package tftpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Config configures a Server. The zero value of every field but Files is usable.
type Config struct {
	// Addr is the UDP address to listen on; "" means ":69".
	Addr string

	// Files holds the only files served, by bare name. bootstrapd passes *ipxe.Catalogue.
	// A Files that also has a `Files() []string` method (as the catalogue does) names the
	// file label values of the metrics; otherwise they are the regular files at its root.
	Files fs.FS

	// Logger receives one line per request; nil discards.
	Logger *slog.Logger

	// Registerer receives the metrics; nil does not register them (they are still counted).
	Registerer prometheus.Registerer

	// Anticipate, when 2 or more, turns on pin/tftp's experimental anticipate mode: that many
	// blocks (at most 60) are sent before the server waits for an ACK. Lock-step clients
	// tolerate it and it is faster, but a packet lost inside a window stalls the transfer
	// until it fails (TestLossRecovery, docs/PERFORMANCE.md). 0 (the default) or 1 is plain
	// lock-step TFTP.
	Anticipate uint

	// Timeout is how long to wait for each ACK before sending the block again; 0 means 1 s.
	// Lock-step TFTP recovers every lost packet by this timeout (firmware re-ACKs sooner, but
	// a duplicate ACK must not trigger a resend, RFC 1123 4.2.3.1), so it sets the cost of
	// loss: at 1 % loss a 1 MiB read took about 17 s with 1 s and 60–95 s with pin/tftp's own
	// default of 5 s (docs/PERFORMANCE.md, "TFTP").
	Timeout time.Duration

	// Retries is how many times a block is sent before the transfer fails; 0 means 5.
	Retries int

	// OnTransfer, if set, is called once per read or write request when it ends, refused
	// ones included, from the transfer's goroutine. It must be safe for concurrent use and
	// should return quickly: the transfer's socket is still open while it runs.
	OnTransfer func(Transfer)
}

// Transfer describes one request that has ended.
type Transfer struct {
	Remote   netip.AddrPort // the client
	File     string         // the name the client asked for, as sent
	Bytes    int64          // file bytes sent (all of them when Err is nil)
	Duration time.Duration  // from the request to the last ACK or the error
	// Err is nil for a complete transfer; otherwise it wraps ErrRefused, ErrNotFound,
	// ErrClientAbort, or describes a read or network error (such as a timeout).
	Err error
}

// Server is a read-only TFTP server bound to one UDP socket.
type Server struct {
	files      fs.FS
	log        *slog.Logger
	metrics    *metrics
	onTransfer func(Transfer)
	conn       *net.UDPConn
	tftp       *tftp.Server

	mu      sync.Mutex
	started bool // Serve was called
	closed  bool // the socket was closed
}

// New validates cfg and binds the UDP socket, so that an address in use or a privileged port
// fails here, before anything is served. Bind errors wrap the system error:
// errors.Is(err, os.ErrPermission) holds for an unprivileged user on port 69.
func New(cfg Config) (*Server, error) {
	if cfg.Files == nil {
		return nil, errors.New("tftpd: Config.Files is nil")
	}
	if cfg.Addr == "" {
		cfg.Addr = ":69"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer, servedNames(cfg.Files))
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("tftp listen %q: %w", cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("tftp listen %q: %w", cfg.Addr, err)
	}
	// pin/tftp asks for each request's destination address and interface (it answers from that
	// address, and caps blksize by that interface's MTU) only when Serve starts. A request
	// queued before then would carry neither, and be capped at 512-byte blocks.
	if conn.LocalAddr().(*net.UDPAddr).IP.To4() != nil { // the test pin/tftp makes
		_ = ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
	} else {
		_ = ipv6.NewPacketConn(conn).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
	}
	s := &Server{
		files:      cfg.Files,
		log:        cfg.Logger,
		metrics:    m,
		onTransfer: cfg.OnTransfer,
		conn:       conn,
	}
	s.tftp = tftp.NewServer(s.read, s.write)
	s.tftp.SetAnticipate(cfg.Anticipate)
	s.tftp.SetTimeout(cfg.Timeout)
	s.tftp.SetBackoff(func(int) time.Duration { return 0 }) // resend at once: the timeout was the wait
	s.tftp.SetRetries(cfg.Retries)
	s.tftp.SetHook(hook{s})
	return s, nil
}

// Addr is the bound address, with the actual port when Config.Addr asked for port 0.
func (s *Server) Addr() net.Addr { return s.conn.LocalAddr() }

// Serve answers requests until ctx ends, then stops taking new requests, lets the transfers
// in flight finish (each is bounded by Timeout × Retries of silence), closes the socket and
// returns nil. It can be called once.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return errors.New("tftpd: Serve called twice or after Close")
	}
	s.started = true
	s.mu.Unlock()

	done := make(chan error, 1)
	go func() { done <- s.tftp.Serve(s.conn) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-done:
		// pin/tftp returns by itself only when it cannot start on the socket.
		err = fmt.Errorf("tftp serve %s: %w", s.Addr(), err)
	}
	s.tftp.Shutdown()
	if err == nil {
		<-done
	}
	// Shutdown closes only a socket pin/tftp has already taken, which it may not have yet.
	s.closeConn()
	return err
}

// Close releases the socket of a Server whose Serve was never called (Serve closes it
// itself). It is a no-op after Serve.
func (s *Server) Close() error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if started {
		return nil
	}
	return s.closeConn()
}

func (s *Server) closeConn() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.conn.Close()
}

// read is pin/tftp's read handler. An error it returns is sent to the client as the message
// of a TFTP error packet; pin/tftp has already sent one for errors of rf.ReadFrom.
func (s *Server) read(name string, rf io.ReaderFrom) error {
	t := Transfer{File: name}
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		t.Remote = addrPort(ot.RemoteAddr())
	}
	start := time.Now()
	t.Bytes, t.Err = s.send(name, rf)
	t.Duration = time.Since(start)
	s.finish(t)
	return t.Err
}

func (s *Server) send(name string, rf io.ReaderFrom) (int64, error) {
	clean, err := parsePath(name)
	if err != nil {
		return 0, err
	}
	f, err := s.files.Open(clean)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return 0, fmt.Errorf("%w: %q", ErrNotFound, clean)
	}
	if err != nil {
		s.log.Error("TFTP open failed", "file", clean, "err", err)
		return 0, fmt.Errorf("open %q: server read error", clean)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.log.Error("TFTP stat failed", "file", clean, "err", err)
		return 0, fmt.Errorf("stat %q: server read error", clean)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%w: %q", ErrNotFound, clean)
	}
	// Reported whether or not f can seek: firmware sizes its buffer from tsize.
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(st.Size())
	}
	n, err := rf.ReadFrom(f)
	if err != nil {
		return n, fmt.Errorf("send %q: %w", clean, classify(err))
	}
	return n, nil
}

// classify marks errors of pin/tftp that are the client's doing. pin/tftp v3.1.0 reports an
// error packet from the client only as text: "sending block N: code=C, error: MSG".
func classify(err error) error {
	// pin/tftp keeps the client's terminating NUL in the message; it must not reach logs
	// or the boot timeline.
	if msg := err.Error(); strings.ContainsRune(msg, 0) {
		err = fmt.Errorf("%s", strings.ReplaceAll(msg, "\x00", ""))
	}
	if strings.HasPrefix(err.Error(), "sending block ") && strings.Contains(err.Error(), ": code=") {
		return fmt.Errorf("%w: %w", ErrClientAbort, err)
	}
	return err
}

// write is pin/tftp's write handler: bootstrapd's TFTP is read-only.
func (s *Server) write(name string, wt io.WriterTo) error {
	t := Transfer{File: name, Err: refuse(reasonWrite, "write requests are refused, this server is read-only")}
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		t.Remote = addrPort(it.RemoteAddr())
	}
	s.finish(t)
	return t.Err
}

// finish counts, logs and reports a request that has ended.
func (s *Server) finish(t Transfer) {
	log := s.log.With("remote", t.Remote.String(), "file", t.File)
	file := s.metrics.fileLabel(t.File)
	s.metrics.bytes.Add(float64(t.Bytes))
	switch {
	case t.Err == nil:
		s.metrics.transfers.WithLabelValues(file, resultOK).Inc()
		s.metrics.duration.Observe(t.Duration.Seconds())
		log.Info("TFTP sent", "bytes", t.Bytes, "duration", t.Duration)
	case errors.Is(t.Err, ErrRefused):
		s.metrics.transfers.WithLabelValues(file, resultRefused).Inc()
		s.metrics.refused.WithLabelValues(refuseReason(t.Err)).Inc()
		log.Warn("TFTP request refused", "err", t.Err)
	case errors.Is(t.Err, ErrNotFound):
		s.metrics.transfers.WithLabelValues(file, resultNotFound).Inc()
		// iPXE EFI asks for an optional autoexec.ipxe on every boot: not worth a warning.
		log.Info("TFTP file not found")
	case errors.Is(t.Err, ErrClientAbort):
		s.metrics.transfers.WithLabelValues(file, resultError).Inc()
		// OVMF's size probe ends this way on every boot: not worth a warning.
		log.Info("TFTP transfer aborted by the client", "bytes", t.Bytes, "err", t.Err)
	default:
		s.metrics.transfers.WithLabelValues(file, resultError).Inc()
		log.Warn("TFTP transfer failed", "bytes", t.Bytes, "duration", t.Duration, "err", t.Err)
	}
	if s.onTransfer != nil {
		s.onTransfer(t)
	}
}

func addrPort(ua net.UDPAddr) netip.AddrPort {
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// hook sees the errors of pin/tftp's request loop, which no handler sees: packets on the
// server port that are not read or write requests.
type hook struct{ s *Server }

func (hook) OnSuccess(tftp.TransferStats) {}

func (h hook) OnFailure(st tftp.TransferStats, err error) {
	if st.RemoteAddr != nil {
		return // a transfer's failure, already accounted by read or write
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		// pin/tftp could not open the transfer's own socket.
		h.s.log.Error("TFTP transfer socket", "err", err)
		return
	}
	h.s.metrics.refused.WithLabelValues(reasonMalformed).Inc()
	h.s.log.Debug("TFTP malformed packet dropped", "err", err)
}
