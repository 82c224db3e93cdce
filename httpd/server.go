package httpd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// DefaultNode boots MACs that have no record. An empty Network means they wait instead.
type DefaultNode struct {
	Network string
	Farm    uint64
	Args    string
}

// Defaults of the zero Config fields; bootstrapd's built-in configuration uses these too.
const (
	DefaultAddr              = ":8080"
	DefaultShutdownGrace     = 10 * time.Second
	DefaultStuckAfter        = 10 * time.Minute
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultMaxConnections    = 4096
)

// Config is everything the HTTP side needs; New fills the documented defaults.
type Config struct {
	// Addr is the TCP listen address; default ":8080".
	Addr string
	// PublicURL is the base of every URL handed to clients. Empty: http:// (https:// on the
	// TLS listener) and the address the request came in on, so one appliance serves several
	// interfaces.
	PublicURL string
	// Networks maps short names (prod, test, ...) to display names.
	Networks map[string]string
	// Kernels is the kernels directory (a *kernels.Dir); whoever opened it closes it.
	Kernels Kernels
	// Binaries are the iPXE binaries served at /boot/<file> (UEFI HTTP Boot).
	Binaries fs.FS
	Scripts  *ipxe.Scripts
	// Nodes are the node records and what the appliance saw of each MAC (a *store.DB).
	Nodes   Nodes
	Default DefaultNode
	// AdminSocket is the admin API's unix socket (mode 0600); empty: none.
	AdminSocket string
	// AdminToken allows the admin API over TCP with "Authorization: Bearer <token>"; empty:
	// the admin API answers only on the socket.
	AdminToken string
	Logger     *slog.Logger
	// Registerer receives the package's metrics and Gatherer is what /metrics serves; both
	// nil: a private registry for both.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Timeline is told of boot stages seen over HTTP (script served, kernel requested and
	// sent); may be nil.
	Timeline timeline.Sink
	// MaxBody bounds admin request bodies; default 4 MiB.
	MaxBody int64
	// ShutdownGrace is how long requests in flight may run after Serve's context ends;
	// default 10 s. Longer ones (a kernel on a slow link) are cut off.
	ShutdownGrace time.Duration
	// Media builds /iso/, /usb/, /uefimg/, /uefi/, /krn/ and the -generic and -provision
	// binaries; nil: those answer 503 with MediaErr as the reason.
	Media    MediaBuilder
	MediaErr error
	// StuckAfter is how long a node may stay between two boot stages before it is flagged
	// stuck; default 10 minutes.
	StuckAfter time.Duration

	// Limits on what a client can hold (appliance.yaml documents each; zero: the default).
	ReadHeaderTimeout time.Duration // default 10 s
	IdleTimeout       time.Duration // default 60 s
	WriteTimeout      time.Duration // per write of a response; default 30 s
	MaxHeaderBytes    int           // default 16 KiB
	MaxConnections    int           // open TCP connections; default 4096
	// TrustedProxies are the peers whose X-Forwarded-* headers are believed; none by default.
	TrustedProxies []netip.Prefix

	// TLSAddr is a second TCP listen address that speaks HTTPS with the same routes and
	// limits (its connections count in MaxConnections); empty: none. TLSCertFile and
	// TLSKeyFile are PEM files, read at New and again on ReloadTLS.
	TLSAddr, TLSCertFile, TLSKeyFile string
	// Puller mirrors kernels (POST /api/v1/networks/<network>/pull); nil: those routes
	// answer 503.
	Puller KernelPuller
}

// Server answers HTTP on a TCP listener and the admin unix socket.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	live    *live
	scripts *scriptCache // rendered boot scripts (scriptcache.go)
	views   *views       // the joined view behind the admin lists (list.go)
	engine  *gin.Engine
	tcp     net.Listener
	limiter *connLimiter
	unix    net.Listener
	// tlsLn and certs exist when Config.TLSAddr is set.
	tlsLn net.Listener
	certs *certSource
}

// New validates cfg and binds the listeners. It changes nothing outside the Server (gin's
// mode, the umask): those belong to the program.
func New(cfg Config) (*Server, error) {
	cfg.Addr = cmp.Or(cfg.Addr, DefaultAddr)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.Registerer == nil && cfg.Gatherer == nil:
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	case cfg.Registerer == nil || cfg.Gatherer == nil:
		// One without the other: /metrics would serve metrics that are not this server's.
		return nil, errors.New("httpd: Registerer and Gatherer are set together (both nil: a private registry)")
	}
	if cfg.Media == nil && cfg.MediaErr == nil {
		cfg.MediaErr = errors.New("no media builder configured")
	}
	cfg.MaxBody = cmp.Or(cfg.MaxBody, 4<<20)
	cfg.ShutdownGrace = cmp.Or(cfg.ShutdownGrace, DefaultShutdownGrace)
	cfg.StuckAfter = cmp.Or(cfg.StuckAfter, DefaultStuckAfter)
	cfg.ReadHeaderTimeout = cmp.Or(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.WriteTimeout = cmp.Or(cfg.WriteTimeout, DefaultWriteTimeout)
	cfg.MaxHeaderBytes = cmp.Or(cfg.MaxHeaderBytes, DefaultMaxHeaderBytes)
	cfg.MaxConnections = cmp.Or(cfg.MaxConnections, DefaultMaxConnections)
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.Scripts == nil || cfg.Nodes == nil || cfg.Kernels == nil || cfg.Binaries == nil {
		return nil, errors.New("httpd: Scripts, Nodes, Kernels and Binaries are required")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Registerer, cfg.Nodes), live: &live{}, scripts: newScriptCache()}
	s.Reload(cfg.Networks, cfg.Default)
	var err error
	if s.engine, err = s.routes(); err != nil {
		return nil, err
	}

	tcp, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("httpd: listen %s: %w", cfg.Addr, err)
	}
	s.limiter = newConnLimiter(tcp, cfg.MaxConnections, s.metrics)
	s.tcp = s.limiter
	if cfg.TLSAddr != "" {
		if s.certs, err = newCertSource(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.Registerer); err == nil {
			s.tlsLn, err = s.listenTLS(cfg.TLSAddr)
		}
		if err != nil {
			s.tcp.Close()
			return nil, err
		}
	}
	if cfg.AdminSocket != "" {
		s.unix, err = listenUnix(cfg.AdminSocket)
		if err != nil {
			s.tcp.Close()
			if s.tlsLn != nil {
				s.tlsLn.Close()
			}
			return nil, err
		}
	}
	return s, nil
}

// Reload replaces the networks and the default node; requests in flight finish with the old
// ones. The caller validates them (as at start).
func (s *Server) Reload(networks map[string]string, def DefaultNode) {
	s.live.set(networks, def)
	s.scripts.clear()
}

// Addr is the bound TCP address.
func (s *Server) Addr() net.Addr { return s.tcp.Addr() }

// AdminSocket is the admin socket's path, "" if none.
func (s *Server) AdminSocket() string { return s.cfg.AdminSocket }

// Handler is the whole HTTP handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.engine }

type ctxKey int

const viaSocket ctxKey = 1

// Serve answers until ctx ends, then stops accepting and gives requests in flight up to
// ShutdownGrace to finish.
func (s *Server) Serve(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		// No WriteTimeout: it would cut every kernel download at a fixed time. writeDeadline
		// and progressWriter bound each write instead.
		ConnState: func(c net.Conn, st http.ConnState) {
			if c, ok := plainConn(c).(*watchedConn); ok {
				s.limiter.track(c, st)
			}
		},
		// Client mistakes (a TLS handshake on the plain port, a broken header) are the
		// network's noise: Debug, so a flood cannot fill the journal.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if _, ok := c.(*net.UnixConn); ok {
				return context.WithValue(ctx, viaSocket, true)
			}
			return ctx
		},
	}
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(s.tcp) }()
	n := 1
	if s.unix != nil {
		n++
		go func() { errc <- srv.Serve(s.unix) }()
	}
	if s.tlsLn != nil {
		n++
		// Serve, not ServeTLS: the listener already speaks TLS (and stays HTTP/1.1).
		go func() { errc <- srv.Serve(s.tlsLn) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		n--
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownGrace)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil {
		srv.Close()
	}
	for ; n > 0; n-- {
		<-errc
	}
	if s.unix != nil {
		os.Remove(s.cfg.AdminSocket)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("httpd: %w", err)
	}
	return nil
}

func (s *Server) routes() (*gin.Engine, error) {
	e := gin.New()
	// gin believes X-Forwarded-For from anyone unless told otherwise: only the configured
	// proxies may name a client address.
	proxies := make([]string, len(s.cfg.TrustedProxies))
	for i, p := range s.cfg.TrustedProxies {
		proxies[i] = p.String()
	}
	if err := e.SetTrustedProxies(proxies); err != nil {
		return nil, fmt.Errorf("httpd: trusted proxies: %w", err)
	}
	e.Use(gin.Recovery(), s.metrics.middleware, s.writeDeadline)
	e.RedirectTrailingSlash = false
	getHead(e, "/ipxe/", s.handleIPXE)
	getHead(e, "/ipxe/:network", s.handleIPXE)
	getHead(e, "/ipxe/:network/*rest", s.handleIPXE)
	getHead(e, "/provision/:mac", s.handleProvision)
	getHead(e, "/provision/:mac/", s.handleProvision)
	getHead(e, "/kernel/*name", s.handleKernel)
	// /boot/<binary>, and /boot/<mac>/<binary>, the form the ProxyDHCP hands UEFI HTTP Boot.
	getHead(e, "/boot/*path", s.handleBinary)
	getHead(e, "/metrics", gin.WrapH(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{})))
	getHead(e, "/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	s.views = &views{nodes: s.cfg.Nodes, lag: listLag, observe: func(d time.Duration) { s.metrics.listBuild.Observe(d.Seconds()) }}
	a := &api{
		live: s.live, nodes: s.cfg.Nodes, kernels: clearingKernels{s.cfg.Kernels, s.scripts.clear}, log: s.log, token: s.cfg.AdminToken,
		maxBody: s.cfg.MaxBody, stuckAfter: s.cfg.StuckAfter, unauthorized: s.metrics.unauthorized,
		views: s.views,
	}
	// Public: the page's generator needs the networks before anyone has entered a token.
	getHead(e, "/api/v1/networks", a.publicNetworks)
	admin := e.Group("/api/v1", a.requireAdmin)
	a.routes(admin)
	s.pullRoutes(admin, a)
	a.compatRoutes(e)
	s.webRoutes(e)
	s.mediaRoutes(e)
	e.NoRoute(func(c *gin.Context) {
		fail(c, http.StatusNotFound, "not found: %q (see the README for the endpoints)", c.Request.URL.Path)
	})
	return e, nil
}

// getHead serves a route for GET and HEAD alike: a HEAD answers what the GET would, without the
// body (net/http discards it).
func getHead(r gin.IRoutes, path string, h ...gin.HandlerFunc) {
	r.GET(path, h...)
	r.HEAD(path, h...)
}

// baseURL is where clients reach us: public_url; else, from a trusted proxy, the scheme and
// host it forwarded; else the address this request came in on. Whatever it returns is safe
// to put in a script (ipxe.ValidateBaseURL).
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	if s.fromTrustedProxy(r) {
		if base, ok := forwardedBase(r.Header); ok {
			return base
		}
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		ap := a.AddrPort()
		scheme := "http://"
		if r.TLS != nil {
			scheme = "https://"
		}
		// A link-local address carries its zone (%eth0), which means nothing to the node.
		return scheme + netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()).String()
	}
	return "http://localhost"
}

// fromTrustedProxy tells whether the request's peer is one of http.trusted_proxies.
func (s *Server) fromTrustedProxy(r *http.Request) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// forwardedBase is the base URL named by a proxy's X-Forwarded-Proto and X-Forwarded-Host;
// ok is false when either is missing or not safe in a script.
func forwardedBase(h http.Header) (string, bool) {
	proto := strings.ToLower(strings.TrimSpace(strings.Split(h.Get("X-Forwarded-Proto"), ",")[0]))
	host := strings.TrimSpace(strings.Split(h.Get("X-Forwarded-Host"), ",")[0])
	if (proto != "http" && proto != "https") || host == "" {
		return "", false
	}
	base, err := ipxe.ValidateBaseURL(proto + "://" + host)
	if err != nil {
		return "", false
	}
	if u, err := url.Parse(base); err != nil || u.Path != "" || u.User != nil {
		return "", false
	}
	return base, true
}

// fail writes a one-line plain-text reason and stops the handler chain.
func fail(c *gin.Context, code int, format string, args ...any) {
	c.Header("Content-Type", "text/plain; charset=utf-8")
	c.AbortWithStatus(code)
	fmt.Fprintf(c.Writer, format+"\n", args...)
}
