package dhcpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// readBuffer is the socket receive buffer asked for; see listen.
const readBuffer = 1 << 20

// BootFiles names the iPXE binary a firmware architecture loads. *ipxe.Catalogue implements
// it. BootFile returns a bare file name, served by TFTP as is and by HTTP under /boot/, or an
// error when no binary exists for arch; it must be safe for concurrent use.
type BootFiles interface {
	BootFile(arch iana.Arch) (string, error)
}

// Config configures a Server. Zero values are the defaults noted.
type Config struct {
	// Interfaces to answer on, by name. Empty: every interface that is up, is not a
	// loopback, and has an IPv4 address (checked per request, so interfaces that appear
	// later are served too). Requests from other interfaces are dropped and counted.
	Interfaces []string
	// Addr is the local address to bind, default "" (all). Anything else stops broadcast
	// DHCPDISCOVERs from arriving; it is only useful for relayed setups and tests.
	Addr string
	// Port is the DHCP server port, default 67. Clients are answered on Port+1 (68), relays
	// on Port, as dnsmasq's --dhcp-alternate-port does. The port is bound with SO_REUSEADDR
	// so a DHCP server on the same host that set it too (dnsmasq, ISC dhcpd) can share it.
	Port int
	// PXEPort is the PXE boot-server port, default 4011.
	PXEPort int
	// HTTPPort is the port of bootstrapd's HTTP server, used in URLs when PublicURL is
	// empty; default 80.
	HTTPPort int
	// PublicURL is the base of every URL handed out (http or https, no query), e.g.
	// "http://boot.example.net:8080". Empty: http://<our address on the arrival
	// interface>:<HTTPPort>.
	PublicURL string
	// Files maps architectures to iPXE binaries; required.
	Files BootFiles
	// EFIChoice tells which binary a MAC's x86_64 UEFI firmware gets instead of Files'
	// ipxe-amd64.efi: ipxe.EFIBinarySNPOnly gives snponly.efi (for NICs iPXE's drivers do
	// not run), anything else keeps ipxe-amd64.efi. It is asked with the MAC as
	// aa:bb:cc:dd:ee:ff, from the serve loop, so it must be quick and safe for concurrent
	// use. Nil: always ipxe-amd64.efi.
	EFIChoice func(mac string) string
	// Logger receives one line per reply (Info) and per ignored datagram (Debug). When the
	// cause of a drop is on our side (no address, architecture or binary for a PXE client;
	// a failed send) the first of each cause a minute is a Warn instead. Nil: discard.
	Logger *slog.Logger
	// Registerer receives the metrics (bootstrapd_dhcp_*). Nil: not registered (still
	// counted). Registering twice on one registry fails New.
	Registerer prometheus.Registerer
	// Timeline, when set, is told of each reply sent (a boot stage), from the serve loop.
	Timeline timeline.Sink
}

// stages maps a reply's kind to the boot stage it is.
var stages = map[string]timeline.Stage{
	kindBinary:     timeline.OfferBinary,
	kindIPXEScript: timeline.OfferScript,
	kindHTTPBoot:   timeline.OfferHTTPBoot,
}

// Server is a ProxyDHCP server on the DHCP and PXE ports. It is created bound by New and runs
// in Serve.
type Server struct {
	log      *slog.Logger
	pol      policy
	timeline timeline.Sink
	m        *metrics
	warns    *warnLimiter
	ifaces   *ifaceCache
	conns    []*listener

	closeOnce sync.Once
	closeErr  error
}

type listener struct {
	role role
	pc   *ipv4.PacketConn
	addr netip.AddrPort
}

// New checks cfg and binds both ports. A port below 1024 needs root or CAP_NET_BIND_SERVICE:
// without it the error satisfies errors.Is(err, os.ErrPermission). The sockets are released
// by Serve or Close.
func New(cfg Config) (*Server, error) {
	if cfg.Port == 0 {
		cfg.Port = 67
	}
	if cfg.PXEPort == 0 {
		cfg.PXEPort = 4011
	}
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = 80
	}
	for _, p := range []int{cfg.Port, cfg.Port + 1, cfg.PXEPort, cfg.HTTPPort} {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("dhcpd: port %d out of range", p)
		}
	}
	if cfg.Files == nil {
		return nil, errors.New("dhcpd: Config.Files is required")
	}
	base, err := publicURL(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	for _, name := range cfg.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			return nil, fmt.Errorf("dhcpd: interface %q: %w", name, err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:      log,
		pol:      policy{PublicURL: base, HTTPPort: cfg.HTTPPort, ServerPort: cfg.Port, Files: cfg.Files, EFIChoice: cfg.EFIChoice},
		timeline: cfg.Timeline,
		m:        m,
		warns:    &warnLimiter{every: time.Minute},
		ifaces:   &ifaceCache{names: slices.Clone(cfg.Interfaces), ttl: 5 * time.Second},
	}
	for _, l := range []struct {
		r    role
		port int
	}{{roleDHCP, cfg.Port}, {rolePXE, cfg.PXEPort}} {
		ln, err := listen(l.r, net.JoinHostPort(cfg.Addr, strconv.Itoa(l.port)))
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.conns = append(s.conns, ln)
	}
	return s, nil
}

// publicURL checks Config.PublicURL once, with the rules every URL in a script or a DHCP
// reply follows: it goes into option 67 of every iPXE offer as it is.
func publicURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	base, err := ipxe.ValidateBaseURL(raw)
	if err != nil {
		return "", fmt.Errorf("dhcpd: public URL: %w", err)
	}
	const path = "/provision/aa:bb:cc:dd:ee:ff"
	if len(base)+len(path) > maxBootFileLen {
		return "", fmt.Errorf("dhcpd: public URL %q: longer than %d bytes leaves no room in a DHCP reply", raw, maxBootFileLen-len(path))
	}
	return base, nil
}

func listen(r role, addr string) (*listener, error) {
	// Go sets SO_BROADCAST on UDP sockets, which the 255.255.255.255 replies need.
	var lc net.ListenConfig
	if r == roleDHCP {
		// SO_REUSEADDR on the DHCP port only: a DHCP server on the same host (dnsmasq and
		// ISC dhcpd set it too) can share port 67, and both see every broadcast. The PXE
		// port stays exclusive, so a second bootstrapd still fails to start.
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	c, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("dhcpd: listen on udp %s (%s port): %w", addr, r, err)
	}
	// A flood from the LAN is read as fast as it comes, but a burst or a pause (GC, a slow
	// log sink) must not overflow the queue and lose a real client's request with it. The
	// kernel caps this at net.core.rmem_max without an error, which is as much as we get.
	if uc, ok := c.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(readBuffer)
	}
	pc := ipv4.NewPacketConn(c)
	// IP_PKTINFO: the arrival interface picks our address and the broadcast's way out.
	if err := pc.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("dhcpd: enable IP_PKTINFO on %s: %w", addr, err)
	}
	ap, _ := netip.ParseAddrPort(c.LocalAddr().String())
	return &listener{role: r, pc: pc, addr: ap}, nil
}

// Addrs lists the bound addresses: the DHCP port first, then the PXE port.
func (s *Server) Addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(s.conns))
	for _, l := range s.conns {
		out = append(out, l.addr)
	}
	return out
}

// Close releases the sockets: for a Server that is never served, or to stop Serve, which
// then returns nil. Serve calls it on return. Safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, l := range s.conns {
			if err := l.pc.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Serve answers requests until ctx ends, then closes the sockets and returns nil once every
// goroutine it started has stopped. A socket error ends it early with that error. Call it
// once: the sockets do not outlive it.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(s.conns))
	var wg sync.WaitGroup
	for _, l := range s.conns {
		wg.Go(func() { errc <- s.loop(ctx, l) })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	_ = s.Close()
	wg.Wait()
	return err
}

// batchSize is how many datagrams one receive (recvmmsg) takes and one send (sendmmsg) gives
// at most. An idle LAN still costs one syscall per request each way: a receive returns as
// soon as one datagram is queued. Under a boot storm or a flood, a batch saves most of the
// per-packet syscalls, the larger part of a reply's cost (docs/PERFORMANCE.md, ProxyDHCP).
const batchSize = 32

func (s *Server) loop(ctx context.Context, l *listener) error {
	in := make([]ipv4.Message, batchSize)
	for i := range in {
		// One byte more than we parse: the kernel silently cuts a datagram to the buffer, and
		// a 64 KiB one cut to a valid-looking prefix would be answered. This way anything
		// longer than maxRequestLen arrives longer than maxRequestLen, and decide drops it as
		// oversized.
		in[i].Buffers = [][]byte{make([]byte, maxRequestLen+1)}
		in[i].OOB = ipv4.NewControlMessage(ipv4.FlagDst | ipv4.FlagInterface)
	}
	out := make([]ipv4.Message, 0, batchSize)
	sent := make([]sentReply, 0, batchSize)
	for {
		n, err := l.pc.ReadBatch(in, 0)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("dhcpd: read %s: %w", l.addr, err)
		}
		out, sent = out[:0], sent[:0]
		for i := range in[:n] {
			m := &in[i]
			var cm *ipv4.ControlMessage
			if m.NN > 0 {
				cm = new(ipv4.ControlMessage)
				if cm.Parse(m.OOB[:m.NN]) != nil {
					cm = nil
				}
			}
			r, ok := s.handle(l, m.Buffers[0][:m.N], cm, m.Addr)
			if !ok {
				continue
			}
			out = append(out, ipv4.Message{Buffers: [][]byte{r.d.Reply.ToBytes()}, OOB: r.oob, Addr: net.UDPAddrFromAddrPort(r.d.To)})
			sent = append(sent, r)
		}
		s.send(l, out, sent)
	}
}

// sentReply is a reply decided in a batch, with what its send needs and what follows it.
type sentReply struct {
	in  arrival
	d   decision
	oob []byte
}

// handle decides one datagram. A drop is counted and logged here; a reply is returned to be
// sent with the rest of its batch.
func (s *Server) handle(l *listener, b []byte, cm *ipv4.ControlMessage, src net.Addr) (sentReply, bool) {
	in := arrival{Role: l.role}
	if u, ok := src.(*net.UDPAddr); ok {
		in.Src = u.AddrPort()
		in.Src = netip.AddrPortFrom(in.Src.Addr().Unmap(), in.Src.Port())
	}
	if cm != nil {
		in.IfIndex = cm.IfIndex
		if a, ok := netip.AddrFromSlice(cm.Dst.To4()); ok {
			in.Dst = a
		}
	}
	info := s.ifaces.get(in.IfIndex)
	in.Iface, in.Served, in.Addrs = info.name, info.served, info.addrs

	d := decide(b, in, s.pol)
	typ, arch := receivedLabels(d)
	s.m.received.WithLabelValues(typ, arch).Inc()
	if d.Reply == nil {
		s.m.dropped.WithLabelValues(d.Drop).Inc()
		s.logDrop(l, in, d, len(b))
		return sentReply{}, false
	}
	out := &ipv4.ControlMessage{Src: d.Server.AsSlice()}
	if d.Broadcast {
		out.IfIndex = in.IfIndex
	}
	return sentReply{in: in, d: d, oob: out.Marshal()}, true
}

// send sends a batch of replies, then counts and reports each one that went out. A reply
// the kernel refuses is counted and logged, and the rest of the batch still goes.
func (s *Server) send(l *listener, out []ipv4.Message, sent []sentReply) {
	for start := 0; start < len(out); {
		n, err := l.pc.WriteBatch(out[start:], 0)
		// sendmmsg reports -1 with its error when the first message fails.
		n = max(0, min(n, len(out)-start))
		for _, r := range sent[start : start+n] {
			s.replied(r)
		}
		start += n
		if err != nil && start < len(out) {
			s.sendFailed(sent[start], err)
			start++
		}
	}
}

func (s *Server) sendFailed(r sentReply, err error) {
	s.m.dropped.WithLabelValues(dropSendFailed).Inc()
	args := []any{"mac", r.d.Client.MAC.String(), "xid", r.d.Client.XID.String(), "to", r.d.To, "iface", r.in.Iface, "err", err}
	lvl, held := s.dropLevel(dropSendFailed)
	if lvl > slog.LevelDebug {
		args = append(args, "held_back", held)
	}
	s.log.Log(context.Background(), lvl, "dhcp reply not sent", args...)
}

func (s *Server) replied(r sentReply) {
	d := r.d
	s.m.replies.WithLabelValues(d.Kind).Inc()
	// Debug: the timeline logs the boot stage at Info, once. The arguments are built only
	// when Debug is on: this runs for every reply of a boot storm.
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("proxy dhcp reply sent", "mac", d.Client.MAC.String(), "xid", d.Client.XID.String(),
			"type", d.Reply.MessageType().String(), "kind", d.Kind, "file", d.File, "arch", archLabel(d.Client), "ipxe", d.Client.IPXE, "to", d.To,
			"iface", r.in.Iface, "server", d.Server)
	}
	if s.timeline != nil {
		ev := timeline.Event{MAC: d.Client.MAC.String(), IP: d.Client.IP, Stage: stages[d.Kind], Time: time.Now()}
		if d.Client.HasArch {
			ev.Arch = d.Client.Arch.String()
		}
		ev.Detail = strings.TrimSpace(ev.Arch + " " + d.File)
		s.timeline(ev)
	}
}

// logDrop logs a datagram left unanswered. Anyone on the LAN can send those as fast as the
// link goes, so they are logged at Debug, and the cost of a line is only paid when Debug is
// on; see dropLevel for the exceptions.
func (s *Server) logDrop(l *listener, in arrival, d decision, size int) {
	ctx := context.Background()
	lvl, held := s.dropLevel(d.Drop)
	if !s.log.Enabled(ctx, lvl) {
		return
	}
	attrs := []slog.Attr{
		slog.String("reason", d.Drop), slog.String("detail", d.Detail), slog.Any("remote", in.Src),
		slog.String("iface", in.Iface), slog.String("port", l.role.String()),
	}
	if undecodable(d.Drop) {
		attrs = append(attrs, slog.Int("bytes", size))
	} else {
		attrs = append(attrs, slog.String("mac", d.Client.MAC.String()), slog.String("xid", d.Client.XID.String()),
			slog.String("vendor_class", d.Client.VendorClass))
	}
	if lvl > slog.LevelDebug {
		attrs = append(attrs, slog.Int("held_back", held))
	}
	s.log.LogAttrs(ctx, lvl, "dhcp request ignored", attrs...)
}

// dropLevel is the log level of a drop. A PXE client we should serve left without an answer
// (no address, architecture or binary for it, or a failed send) is on our side and worth a
// Warn, but a client can cause those at will too: the first per reason and minute is a Warn,
// the rest Debug. held is how many Debug ones went before this Warn.
func (s *Server) dropLevel(reason string) (lvl slog.Level, held int) {
	switch reason {
	case dropNoAddress, dropNoArch, dropNoBinary, dropSendFailed:
		if ok, n := s.warns.allow(reason, time.Now()); ok {
			return slog.LevelWarn, n
		}
	}
	return slog.LevelDebug, 0
}

// warnLimiter lets one event per key through every interval and counts those it holds back.
// Keys are drop reasons, a fixed set.
type warnLimiter struct {
	every time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// allow reports whether key may be logged loudly at now, and if so how many were held back
// since the last time it was.
func (w *warnLimiter) allow(key string, now time.Time) (bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.last[key]; ok && now.Sub(t) < w.every {
		w.held[key]++
		return false, 0
	}
	if w.last == nil {
		w.last, w.held = map[string]time.Time{}, map[string]int{}
	}
	n := w.held[key]
	w.last[key], w.held[key] = now, 0
	return true, n
}

// ifaceCache remembers each interface's name and IPv4 addresses for a few seconds, so a burst
// of requests costs one netlink dump, and address changes are still seen.
type ifaceCache struct {
	names []string
	ttl   time.Duration

	mu      sync.Mutex
	byIndex map[int]ifaceEntry
}

type ifaceEntry struct {
	name   string
	served bool
	addrs  []netip.Prefix
	at     time.Time
}

func (c *ifaceCache) get(index int) ifaceEntry {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.byIndex[index]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.ttl {
		return e
	}
	e = c.load(index)
	e.at = now
	c.mu.Lock()
	// Interface indexes only grow as interfaces come and go; start over rather than keep
	// every one ever seen.
	if c.byIndex == nil || len(c.byIndex) > 256 {
		c.byIndex = map[int]ifaceEntry{}
	}
	c.byIndex[index] = e
	c.mu.Unlock()
	return e
}

func (c *ifaceCache) load(index int) ifaceEntry {
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return ifaceEntry{name: "ifindex-" + strconv.Itoa(index)}
	}
	e := ifaceEntry{name: ifi.Name}
	if len(c.names) > 0 {
		e.served = slices.Contains(c.names, ifi.Name)
	} else {
		e.served = ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagLoopback == 0
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return e
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP.To4())
		if !ok {
			continue
		}
		ones, _ := ipn.Mask.Size()
		e.addrs = append(e.addrs, netip.PrefixFrom(ip, ones))
	}
	return e
}
