package ipxelog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// Defaults of the zero Config fields.
const (
	DefaultMaxSources = 4096
	DefaultRate       = 5  // lines per second per source address, sustained
	DefaultBurst      = 60 // lines a source may send at once (a failing boot prints a screenful)
)

// Drop reasons and the one success, the values of bootstrapd_ipxe_log_lines_total's result.
const (
	resultRecorded      = "recorded"
	resultMalformed     = "malformed"
	resultRateLimited   = "rate_limited"
	resultUnknownSource = "unknown_source"
	resultEmpty         = "empty"
)

// Config configures New.
type Config struct {
	// Addr is the UDP address to listen on; iPXE sends to port 514.
	Addr string
	// Neighbours maps a source address to the MAC that last used it; required.
	Neighbours *Neighbours
	// Timeline receives one timeline.IPXELog event per line; required.
	Timeline timeline.Sink
	// MaxSources bounds the per-source rate limiters; default 4096. When full, an idle
	// source's limiter is reused, and a line from a new source is dropped if none is idle.
	MaxSources int
	// Rate and Burst are the per-source token bucket: lines per second, and at once.
	Rate  float64
	Burst int
	// Registerer receives bootstrapd_ipxe_log_lines_total; nil: counted, not registered.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock of the rate limiter; nil: time.Now.
	Now func() time.Time
}

// Receiver is the syslog listener.
type Receiver struct {
	cfg   Config
	conn  *net.UDPConn
	lines *prometheus.CounterVec

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New binds cfg.Addr.
func New(cfg Config) (*Receiver, error) {
	if cfg.Neighbours == nil || cfg.Timeline == nil {
		return nil, errors.New("ipxelog: Neighbours and Timeline are required")
	}
	cfg.MaxSources = cmp.Or(cfg.MaxSources, DefaultMaxSources)
	cfg.Rate = cmp.Or(cfg.Rate, DefaultRate)
	cfg.Burst = cmp.Or(cfg.Burst, DefaultBurst)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Receiver{cfg: cfg, buckets: map[netip.Addr]*bucket{}, lines: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bootstrapd_ipxe_log_lines_total",
		Help: "iPXE syslog datagrams by result: recorded (on a node's timeline), malformed, rate_limited, unknown_source (no MAC known for the address), empty.",
	}, []string{"result"})}
	for _, res := range []string{resultRecorded, resultMalformed, resultRateLimited, resultUnknownSource, resultEmpty} {
		r.lines.WithLabelValues(res)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(r.lines); err != nil {
			return nil, err
		}
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ipxelog: %w", err)
	}
	if r.conn, err = net.ListenUDP("udp", addr); err != nil {
		return nil, fmt.Errorf("ipxelog: listen %s: %w", cfg.Addr, err)
	}
	return r, nil
}

// Addr is the bound address.
func (r *Receiver) Addr() net.Addr { return r.conn.LocalAddr() }

// Serve reads datagrams until ctx ends, then closes the socket.
func (r *Receiver) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.conn.Close() })
	defer stop()
	defer r.conn.Close()
	// iPXE's lines are at most 128 bytes plus the header; anything longer is cut and still
	// parsed, never allocated for.
	buf := make([]byte, 1024)
	for {
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("ipxelog: %w", err)
			}
			continue
		}
		r.handle(buf[:n], src.Addr().Unmap())
	}
}

// handle turns one datagram into a timeline event, or counts why not.
func (r *Receiver) handle(pkt []byte, src netip.Addr) {
	if !r.allow(src) {
		r.lines.WithLabelValues(resultRateLimited).Inc()
		return
	}
	msg, err := Parse(pkt)
	if err != nil {
		r.lines.WithLabelValues(resultMalformed).Inc()
		return
	}
	if msg.Line == "" {
		r.lines.WithLabelValues(resultEmpty).Inc()
		return
	}
	mac, ok := r.cfg.Neighbours.Lookup(src)
	if !ok {
		r.lines.WithLabelValues(resultUnknownSource).Inc()
		r.cfg.Logger.Debug("iPXE log line from an address no node used", "remote", src, "line", msg.Line)
		return
	}
	r.lines.WithLabelValues(resultRecorded).Inc()
	r.cfg.Timeline(timeline.Event{MAC: mac, Stage: timeline.IPXELog, Detail: msg.Line, IP: src})
}

// allow takes a token from src's bucket. The map is bounded: a new source reuses an idle
// source's bucket (one that has refilled completely), or is refused when all are busy.
func (r *Receiver) allow(src netip.Addr) bool {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[src]
	if b == nil {
		if len(r.buckets) >= r.cfg.MaxSources && !r.evictIdle(now) {
			return false
		}
		b = &bucket{tokens: float64(r.cfg.Burst), last: now}
		r.buckets[src] = b
	}
	b.tokens = min(float64(r.cfg.Burst), b.tokens+now.Sub(b.last).Seconds()*r.cfg.Rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// evictIdle removes one bucket that would be full by now; false if there is none.
func (r *Receiver) evictIdle(now time.Time) bool {
	for a, b := range r.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*r.cfg.Rate >= float64(r.cfg.Burst) {
			delete(r.buckets, a)
			return true
		}
	}
	return false
}
