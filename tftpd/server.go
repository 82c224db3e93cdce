package tftpd

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// Config configures a Server. Every field but Files has a safe zero value, noted on it.
type Config struct {
	// Addr is the UDP address to listen on; "" means ":69".
	Addr string

	// Files holds the only files served, by bare name. bootstrapd passes *ipxe.Catalogue.
	// A Files that also has a `Files() []string` method (as the catalogue does) names the
	// file label values of the metrics; otherwise they are the regular files at its root.
	Files fs.FS

	// Interfaces, when not empty, are the only interfaces served, by name: a request sent to
	// an address that is not one of theirs is refused with an access violation (reason
	// "interface"). bootstrapd passes the ProxyDHCP's list, so that TFTP answers only on the
	// LAN it boots. The names must exist when New is called; their addresses are looked up
	// again every 5 s. Empty (the default): every interface.
	Interfaces []string

	// MaxTransfers bounds the read transfers in flight; 0 means 2048, more than a rack of
	// 1,000 nodes powered on at once asks for (make storm). A request over it is
	// refused at once with one ERROR packet (access violation, reason "too_many_transfers")
	// before any file is opened. Each transfer holds a socket, a goroutine and an open file
	// until it ends, or until the client has been silent for Timeout × (Retries+1).
	MaxTransfers int

	// MaxPerSource bounds the read transfers in flight from one client IP address; 0 means
	// 16. A request over it is refused as over MaxTransfers, with reason
	// "too_many_from_source". A machine reads one file at a time: the margin is for the
	// abandoned transfers of firmware that retries, and for several machines behind one NAT.
	MaxPerSource int

	// Grace is how long Serve lets the transfers in flight finish once its context ends;
	// 0 means 2 s. Then Serve closes their sockets and returns, whatever the clients do.
	Grace time.Duration

	// Logger receives one line per request (refusals of one reason at most every 10 s, so
	// that a flood does not fill the log); nil discards.
	Logger *slog.Logger

	// Registerer receives the metrics; nil does not register them (they are still counted).
	Registerer prometheus.Registerer

	// Anticipate, when 2 or more, turns on pin/tftp's experimental anticipate mode: that many
	// blocks (at most 60) are sent before the server waits for an ACK. Lock-step clients
	// tolerate it and it is faster, but a packet lost inside a window stalls the transfer
	// until it fails (TestLossRecovery, docs/PERFORMANCE.md). It also multiplies by the window
	// what an unverified request gets back (see Retries). 0 (the default) or 1 is plain
	// lock-step TFTP.
	Anticipate uint

	// Timeout is how long to wait for each ACK before sending the block again; 0 means 1 s.
	// Lock-step TFTP recovers every lost packet by this timeout (firmware re-ACKs sooner, but
	// a duplicate ACK must not trigger a resend, RFC 1123 4.2.3.1), so it sets the cost of
	// loss; docs/PERFORMANCE.md ("TFTP") measures it against pin/tftp's own default of 5 s.
	Timeout time.Duration

	// Retries is how many times a block or option acknowledgement is sent again before the
	// transfer fails; 0 means 2, so each is sent at most 3 times. pin/tftp has one setting for
	// every block, and the first one goes to an address nobody has verified yet: a request
	// with a spoofed source gets the first block (or the OACK) Retries+1 times, plus one ERROR
	// packet, reflected at its victim. 2 keeps that at three blocks; a block now fails the
	// transfer only when it or its ACK is lost three times in a row.
	Retries int

	// OnTransfer, if set, is called once per read or write request when it ends, refused
	// ones included, from the transfer's goroutine. It must be safe for concurrent use and
	// should return quickly: the transfer's socket is still open while it runs. It may be
	// called after Serve has returned, for the transfers Serve abandoned.
	OnTransfer func(Transfer)

	// Timeline receives the boot stages of transfers whose name carries a MAC (the
	// ProxyDHCP hands out "<mac>/<binary>"); nil: none.
	Timeline timeline.Sink
}

// Transfer describes one request that has ended.
type Transfer struct {
	Remote   netip.AddrPort // the client
	File     string         // the name the client asked for, as sent
	MAC      string         // the MAC the ProxyDHCP put in front of the name; "" when none
	Name     string         // File without that prefix; "" when the name was refused
	Bytes    int64          // file bytes sent (all of them when Err is nil)
	Duration time.Duration  // from the request to the last ACK or the error
	// Err is nil for a complete transfer; otherwise it wraps ErrRefused, ErrNotFound,
	// ErrClientAbort, or describes a read or network error (such as a timeout).
	Err error
}

// Server is a read-only TFTP server bound to one UDP socket.
type Server struct {
	files fs.FS
	// readers are the buffers files are read through, 16 KiB each: at most one per
	// transfer, and tftp.max_transfers bounds those.
	readers    sync.Pool
	log        *slog.Logger
	metrics    *metrics
	onTransfer func(Transfer)
	timeline   timeline.Sink
	conn       *net.UDPConn
	tftp       *tftp.Server
	slots      *slots
	ifaces     *ifaceAddrs // nil: every interface
	grace      time.Duration
	warn       *warnLimiter
	stopping   atomic.Bool // Serve's context has ended

	mu      sync.Mutex
	started bool // Serve was called
	closed  bool // the socket was closed
}

// Defaults of the Config fields whose zero value means "the default"; bootstrapd's built-in
// configuration uses these too.
const (
	DefaultAddr         = ":69"
	DefaultMaxTransfers = 2048
	DefaultMaxPerSource = 16
	DefaultGrace        = 2 * time.Second
	DefaultTimeout      = time.Second
	DefaultRetries      = 2
	ifaceTTL            = 5 * time.Second
	warnEvery           = 10 * time.Second
)

// New validates cfg and binds the UDP socket, so that an address in use or a privileged port
// fails here, before anything is served. Bind errors wrap the system error:
// errors.Is(err, os.ErrPermission) holds for an unprivileged user on port 69.
func New(cfg Config) (*Server, error) {
	if cfg.Files == nil {
		return nil, errors.New("tftpd: Config.Files is nil")
	}
	for name, v := range map[string]int64{
		"MaxTransfers": int64(cfg.MaxTransfers), "MaxPerSource": int64(cfg.MaxPerSource),
		"Grace": int64(cfg.Grace), "Timeout": int64(cfg.Timeout), "Retries": int64(cfg.Retries),
	} {
		if v < 0 {
			return nil, fmt.Errorf("tftpd: Config.%s is negative", name)
		}
	}
	for _, name := range cfg.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			return nil, fmt.Errorf("tftpd: interface %q: %w", name, err)
		}
	}
	cfg.Addr = cmp.Or(cfg.Addr, DefaultAddr)
	cfg.MaxTransfers = cmp.Or(cfg.MaxTransfers, DefaultMaxTransfers)
	cfg.MaxPerSource = cmp.Or(cfg.MaxPerSource, DefaultMaxPerSource)
	cfg.Grace = cmp.Or(cfg.Grace, DefaultGrace)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.Retries = cmp.Or(cfg.Retries, DefaultRetries)
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
		timeline:   cfg.Timeline,
		conn:       conn,
		slots:      newSlots(cfg.MaxTransfers, cfg.MaxPerSource),
		grace:      cfg.Grace,
		warn:       &warnLimiter{every: warnEvery},
	}
	if len(cfg.Interfaces) > 0 {
		s.ifaces = &ifaceAddrs{names: slices.Clone(cfg.Interfaces), ttl: ifaceTTL}
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

// Serve answers requests until ctx ends. Then it closes the socket, so that no request is
// taken any more, lets the transfers in flight run for at most Config.Grace, closes the
// sockets of those still running (they end with an error) and returns nil. It can be called
// once.
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
	s.stopping.Store(true)
	// pin/tftp's Shutdown closes only a socket it has already taken, which it may not have yet.
	s.closeConn()
	// Shutdown waits for every transfer, however slow its client: it must not hold Serve.
	finished := make(chan struct{})
	go func() {
		s.tftp.Shutdown()
		close(finished)
	}()
	grace := time.NewTimer(s.grace)
	defer grace.Stop()
	select {
	case <-finished:
	case <-grace.C:
		if n := s.slots.abandon(); n > 0 {
			s.log.Warn("TFTP shutdown: grace period over, abandoning transfers", "transfers", n, "grace", s.grace)
		}
	}
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

// reqInfo is what a handler knows of a request.
type reqInfo struct {
	remote net.UDPAddr
	local  net.IP       // the address the request was sent to; nil if unknown
	conn   *net.UDPConn // the transfer's socket; nil if it cannot be had (see transferConn)
	mode   string       // "" if it cannot be read (see transferMode)
}

func newRequest(transfer any) reqInfo {
	r := reqInfo{conn: transferConn(transfer), mode: transferMode(transfer)}
	if rt, ok := transfer.(interface{ RemoteAddr() net.UDPAddr }); ok {
		r.remote = rt.RemoteAddr()
	}
	if pi, ok := transfer.(tftp.RequestPacketInfo); ok {
		r.local = pi.LocalIP()
	}
	return r
}

func (r reqInfo) source() netip.Addr { return addrPort(r.remote).Addr() }

// read is pin/tftp's read handler. An error it returns has already been sent to the client
// (see reject); pin/tftp has already sent one for errors of rf.ReadFrom.
func (s *Server) read(name string, rf io.ReaderFrom) error {
	req := newRequest(rf)
	t := Transfer{File: name, Remote: addrPort(req.remote)}
	start := time.Now()
	t.Bytes, t.Err = s.send(req, &t, rf)
	t.Duration = time.Since(start)
	s.finish(t)
	return t.Err
}

// send serves t.File, setting t.MAC from its <mac>/ prefix.
func (s *Server) send(req reqInfo, t *Transfer, rf io.ReaderFrom) (int64, error) {
	if err := s.checkInterface(req); err != nil {
		return 0, s.reject(req, err)
	}
	// pin/tftp would serve any other mode as octet, and netascii would garble a binary.
	if req.mode != "" && !strings.EqualFold(req.mode, "octet") {
		return 0, s.reject(req, refuse(reasonMode, fmt.Sprintf("unsupported mode %q, this server sends binaries in octet mode", req.mode)))
	}
	mac, clean, err := parsePath(t.File)
	if err != nil {
		return 0, s.reject(req, err)
	}
	t.MAC, t.Name = mac, clean
	if err := s.slots.acquire(req.source(), req.conn); err != nil {
		return 0, s.reject(req, err)
	}
	defer s.slots.release(req.source(), req.conn)
	f, err := s.files.Open(clean)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return 0, s.reject(req, notFound(clean))
	}
	if err != nil {
		s.log.Error("TFTP open failed", "file", clean, "err", err)
		return 0, s.reject(req, fmt.Errorf("open %q: server read error", clean))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.log.Error("TFTP stat failed", "file", clean, "err", err)
		return 0, s.reject(req, fmt.Errorf("stat %q: server read error", clean))
	}
	if !st.Mode().IsRegular() {
		return 0, s.reject(req, notFound(clean))
	}
	// Reported whether or not f can seek: firmware sizes its buffer from tsize.
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(st.Size())
	}
	// pin/tftp reads one block at a time: a buffer turns 11 reads of the file into one
	// (a syscall per block was a tenth of a 1,000-node storm's TFTP CPU).
	br, _ := s.readers.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(nil, 16<<10)
	}
	br.Reset(f)
	n, err := rf.ReadFrom(br)
	br.Reset(nil)
	s.readers.Put(br)
	if err != nil {
		if s.slots.isAbandoned() {
			err = fmt.Errorf("abandoned at shutdown: %w", err)
		}
		return n, fmt.Errorf("send %q: %w", clean, classify(err))
	}
	return n, nil
}

// checkInterface refuses a request sent to an address outside Config.Interfaces. The client
// is not told which interfaces are served: that is the operator's business, and a short
// answer reflects less at a forged source.
func (s *Server) checkInterface(req reqInfo) error {
	if s.ifaces == nil {
		return nil
	}
	// Without a destination address (the system gave none) the request cannot be shown to
	// have come to one of ours.
	if ip, ok := netip.AddrFromSlice(req.local); !ok || !s.ifaces.has(ip) {
		return refuse(reasonInterface, "not served on this interface")
	}
	return nil
}

// reject answers a request that will not be served with one ERROR packet carrying the RFC
// 1350 code of err (see wireError), sent from the transfer's own socket, which it then
// closes; it returns err. It must be called before ReadFrom or WriteTo. pin/tftp, which gets
// err back from the handler, would send it again with code 1, but finds the socket closed
// and sends nothing (pintftp.go). Without the socket, pin/tftp's packet is all the client
// gets.
func (s *Server) reject(req reqInfo, err error) error {
	if req.conn == nil {
		return err
	}
	code, msg := wireError(err)
	if _, werr := req.conn.WriteToUDP(errorPacket(code, msg), &req.remote); werr != nil {
		s.log.Debug("TFTP error packet not sent", "remote", req.remote.String(), "err", werr)
	}
	_ = req.conn.Close()
	return err
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
	req := newRequest(wt)
	t := Transfer{File: name, Remote: addrPort(req.remote)}
	t.Err = s.checkInterface(req)
	if t.Err == nil {
		t.Err = refuse(reasonWrite, "write requests are refused, this server is read-only")
	}
	t.Err = s.reject(req, t.Err)
	s.finish(t)
	return t.Err
}

// finish counts, logs and reports a request that has ended.
func (s *Server) finish(t Transfer) {
	log := s.log.With("remote", t.Remote.String(), "file", t.File)
	// The file label is the catalogue's name, without the <mac>/ prefix (send parsed it).
	file := s.metrics.fileLabel(cmp.Or(t.Name, t.File))
	s.metrics.bytes.Add(float64(t.Bytes))
	switch {
	case t.Err == nil:
		s.metrics.transfers.WithLabelValues(file, resultOK).Inc()
		s.metrics.duration.Observe(t.Duration.Seconds())
		// Debug: the timeline logs the boot stage.
		log.Debug("TFTP sent", "bytes", t.Bytes, "duration", t.Duration)
	case errors.Is(t.Err, ErrRefused):
		reason := refuseReason(t.Err)
		s.metrics.refused.WithLabelValues(reason).Inc()
		if ok, held := s.warn.allow(reason); ok {
			log.Warn("TFTP request refused", "reason", reason, "err", t.Err, "refusals_not_logged", held)
		}
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
	s.emit(t)
	if s.onTransfer != nil {
		s.onTransfer(t)
	}
}

// emit reports a transfer that is a stage of a node's boot to the timeline: a binary sent,
// or a real failure to send it. Refusals (a flood's noise), OVMF's size probe (it aborts
// before the real read on every boot) and iPXE's look for an optional autoexec.ipxe are
// not stages; neither is a request without the <mac>/ prefix, whose node is unknown.
func (s *Server) emit(t Transfer) {
	if s.timeline == nil || t.MAC == "" {
		return
	}
	ev := timeline.Event{MAC: t.MAC, IP: t.Remote.Addr(), Stage: timeline.TFTPSent, Detail: t.Name}
	switch {
	case t.Err == nil:
	case errors.Is(t.Err, ErrRefused), errors.Is(t.Err, ErrNotFound),
		errors.Is(t.Err, ErrClientAbort) && t.Bytes == 0:
		return
	default:
		ev.Stage, ev.Detail = timeline.TFTPFailed, t.Name+": "+t.Err.Error()
	}
	s.timeline(ev)
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
	if h.s.stopping.Load() {
		return // the request loop reading the socket Serve has just closed
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		// pin/tftp could not open the transfer's own socket: out of file descriptors, say,
		// which a flood of requests would repeat on every one.
		if ok, held := h.s.warn.allow("transfer_socket"); ok {
			h.s.log.Error("TFTP transfer socket", "err", err, "errors_not_logged", held)
		}
		return
	}
	h.s.metrics.refused.WithLabelValues(reasonMalformed).Inc()
	h.s.log.Debug("TFTP malformed packet dropped", "err", err)
}

// warnLimiter keeps a flood of refusals from filling the log: one line per reason per
// interval, which says how many refusals of that reason went unlogged before it. The metrics
// count every one. Reasons are a fixed set, so the maps stay small.
type warnLimiter struct {
	every time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func (w *warnLimiter) allow(reason string) (ok bool, held int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if last, seen := w.last[reason]; seen && now.Sub(last) < w.every {
		w.held[reason]++
		return false, 0
	}
	if w.last == nil {
		w.last, w.held = map[string]time.Time{}, map[string]int{}
	}
	w.last[reason] = now
	held = w.held[reason]
	delete(w.held, reason)
	return true, held
}
