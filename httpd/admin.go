package httpd

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/kernels"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// requireAdmin lets through requests on the admin socket (its 0600 mode is the check) and TCP
// requests carrying the configured bearer token; everything else is 401 and counted.
func (s *Server) requireAdmin(c *gin.Context) {
	if v, _ := c.Request.Context().Value(viaSocket).(bool); v {
		c.Next()
		return
	}
	const prefix = "Bearer "
	h := c.GetHeader("Authorization")
	ok := s.cfg.AdminToken != "" && strings.HasPrefix(h, prefix) &&
		subtle.ConstantTimeCompare([]byte(strings.TrimPrefix(h, prefix)), []byte(s.cfg.AdminToken)) == 1
	if !ok {
		s.metrics.unauthorized.Inc()
		c.Header("WWW-Authenticate", `Bearer realm="bootstrapd"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, apiError{"admin API: use the admin socket or Authorization: Bearer <token from admin.token_file>"})
		return
	}
	c.Next()
}

// Nodes are the node records and what the appliance saw of each MAC, as the admin API and
// the boot path use them; *store.DB is one. The errors are store's (store.ErrNotFound,
// store.ErrExists, store.ErrBadMAC).
type Nodes interface {
	GetNode(mac string) (store.Node, error)
	ListNodes() ([]store.Node, error)
	CreateNode(n store.Node) (store.Node, error)
	// UpdateNode applies change to the record inside one transaction; an error from change
	// leaves the record as it was.
	UpdateNode(mac string, change func(*store.Node) error) (store.Node, error)
	DeleteNode(mac string) error
	ImportNodes(nodes []store.Node) (created, updated int, err error)
	ListSeen() ([]store.Seen, error)
	Events(mac string) ([]store.Event, error)
	// Forget drops a MAC's discovered entry and boot events; its record stays.
	Forget(mac string) error
	// CountNodes is read by /metrics at scrape time.
	CountNodes(seenSince time.Time) (known, seen int, err error)
}

type apiError struct {
	Error string `json:"error"`
}

// NodeInput is the body of node create and update requests. Nil fields are left unchanged by
// an update.
type NodeInput struct {
	MAC     string  `json:"mac"`
	Network *string `json:"network,omitempty"`
	Farm    *uint64 `json:"farm,omitempty"`
	Args    *string `json:"args,omitempty"`
	Kernel  *string `json:"kernel,omitempty"`
}

func (s *Server) adminRoutes(g *gin.RouterGroup) {
	// Kernel uploads are streamed to disk under their own, larger bound.
	g.PUT("/kernels/:name", s.apiUploadKernel)
	g.Use(func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBody)
	})
	getHead(g, "/nodes", s.apiListNodes)
	g.POST("/nodes", s.apiCreateNode)
	getHead(g, "/nodes/:mac", s.apiGetNode)
	g.PATCH("/nodes/:mac", s.apiUpdateNode)
	g.DELETE("/nodes/:mac", s.apiDeleteNode)
	getHead(g, "/nodes/:mac/events", s.apiEvents)
	g.POST("/import", s.apiImport)
	getHead(g, "/export", s.apiExport)
	getHead(g, "/discovered", s.apiDiscovered)
	g.DELETE("/discovered/:mac", s.apiForget)
	getHead(g, "/kernels", s.apiKernels)
	g.DELETE("/kernels/:name", s.apiDeleteKernel)
	g.PUT("/networks/:network/kernel", s.apiSetNetworkKernel)
}

func (s *Server) apiFail(c *gin.Context, err error) {
	code := http.StatusInternalServerError
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, store.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, store.ErrExists):
		code = http.StatusConflict
	case errors.Is(err, store.ErrBadMAC), errors.Is(err, ipxe.ErrUnsafe), errors.Is(err, ipxe.ErrUnknownNetwork),
		errors.Is(err, ipxe.ErrNoKernel), errors.Is(err, kernels.ErrNotFound), errors.Is(err, kernels.ErrChecksum),
		errors.Is(err, kernels.ErrEmpty), errors.Is(err, errBadInput):
		code = http.StatusBadRequest
	case errors.Is(err, kernels.ErrInUse):
		code = http.StatusConflict
	case errors.As(err, &mbe):
		code = http.StatusRequestEntityTooLarge
	default:
		s.log.Error("admin API", "path", c.FullPath(), "err", err)
	}
	c.AbortWithStatusJSON(code, apiError{err.Error()})
}

var errBadInput = errors.New("bad request")

// ValidateNode checks a record against the configuration before it is stored, so a record
// can never produce an unsafe script.
func (s *Server) ValidateNode(n *store.Node) error {
	mac, err := store.ParseMAC(n.MAC)
	if err != nil {
		return err
	}
	n.MAC = mac
	if err := ipxe.ValidateNetwork(n.Network); err != nil {
		return err
	}
	if _, ok := s.networks()[n.Network]; !ok {
		return fmt.Errorf("%w: %q (known: %s)", ipxe.ErrUnknownNetwork, n.Network, strings.Join(s.networkNames(), ", "))
	}
	if n.Farm == 0 {
		return fmt.Errorf("%w: farm id must be a positive integer", ipxe.ErrUnsafe)
	}
	if err := ipxe.ValidateArgs(n.Args); err != nil {
		return err
	}
	if n.Kernel != "" {
		if _, err := ipxe.KernelFor(s.cfg.Kernels, n.Network, n.Kernel); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) apiListNodes(c *gin.Context) {
	nodes, err := s.cfg.Nodes.ListNodes()
	if err != nil {
		s.apiFail(c, err)
		return
	}
	c.JSON(http.StatusOK, nodes)
}

func (s *Server) apiGetNode(c *gin.Context) {
	n, err := s.cfg.Nodes.GetNode(c.Param("mac"))
	if err != nil {
		s.apiFail(c, err)
		return
	}
	c.JSON(http.StatusOK, n)
}

func (s *Server) apiCreateNode(c *gin.Context) {
	var in NodeInput
	if err := c.ShouldBindJSON(&in); err != nil {
		s.apiFail(c, fmt.Errorf("%w: %v", errBadInput, err))
		return
	}
	n := store.Node{MAC: in.MAC}
	apply(&n, in)
	if err := s.ValidateNode(&n); err != nil {
		s.apiFail(c, err)
		return
	}
	n, err := s.cfg.Nodes.CreateNode(n)
	if err != nil {
		s.apiFail(c, err)
		return
	}
	s.log.Info("node created", "mac", n.MAC, "network", n.Network, "farm", n.Farm)
	c.JSON(http.StatusCreated, n)
}

func (s *Server) apiUpdateNode(c *gin.Context) {
	var in NodeInput
	if err := c.ShouldBindJSON(&in); err != nil {
		s.apiFail(c, fmt.Errorf("%w: %v", errBadInput, err))
		return
	}
	n, err := s.cfg.Nodes.UpdateNode(c.Param("mac"), func(n *store.Node) error {
		apply(n, in)
		return s.ValidateNode(n)
	})
	if err != nil {
		s.apiFail(c, err)
		return
	}
	s.log.Info("node updated", "mac", n.MAC, "network", n.Network, "farm", n.Farm)
	c.JSON(http.StatusOK, n)
}

func apply(n *store.Node, in NodeInput) {
	if in.Network != nil {
		n.Network = *in.Network
	}
	if in.Farm != nil {
		n.Farm = *in.Farm
	}
	if in.Args != nil {
		n.Args = *in.Args
	}
	if in.Kernel != nil {
		n.Kernel = *in.Kernel
	}
}

func (s *Server) apiDeleteNode(c *gin.Context) {
	if err := s.cfg.Nodes.DeleteNode(c.Param("mac")); err != nil {
		s.apiFail(c, err)
		return
	}
	s.log.Info("node deleted", "mac", c.Param("mac"))
	c.Status(http.StatusNoContent)
}

// apiForget removes what the appliance remembers of a MAC that asked for something (its
// discovered entry and boot events); its record, if any, stays.
func (s *Server) apiForget(c *gin.Context) {
	if err := s.cfg.Nodes.Forget(c.Param("mac")); err != nil {
		s.apiFail(c, err)
		return
	}
	s.log.Info("discovered MAC forgotten", "mac", c.Param("mac"))
	c.Status(http.StatusNoContent)
}

func (s *Server) apiEvents(c *gin.Context) {
	evs, err := s.cfg.Nodes.Events(c.Param("mac"))
	if err != nil {
		s.apiFail(c, err)
		return
	}
	c.JSON(http.StatusOK, evs)
}

// ImportResult is the answer to an import: counts, or every bad line (nothing imported).
type ImportResult struct {
	Created int         `json:"created"`
	Updated int         `json:"updated"`
	Errors  []LineError `json:"errors,omitempty"`
}

func (s *Server) apiImport(c *gin.Context) {
	// Read it all first: a body over the limit is refused whole, never parsed in part.
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		s.apiFail(c, err)
		return
	}
	nodes, bad := ParseNodesCSV(bytes.NewReader(body), s.ValidateNode)
	if len(bad) > 0 {
		c.AbortWithStatusJSON(http.StatusBadRequest, ImportResult{Errors: bad})
		return
	}
	created, updated, err := s.cfg.Nodes.ImportNodes(nodes)
	if err != nil {
		s.apiFail(c, err)
		return
	}
	s.log.Info("nodes imported", "created", created, "updated", updated)
	c.JSON(http.StatusOK, ImportResult{Created: created, Updated: updated})
}

func (s *Server) apiExport(c *gin.Context) {
	nodes, err := s.cfg.Nodes.ListNodes()
	if err != nil {
		s.apiFail(c, err)
		return
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="bootstrapd-nodes.csv"`)
	if err := WriteNodesCSV(c.Writer, nodes); err != nil {
		s.log.Warn("export", "err", err)
	}
}

// Discovered is a MAC that asked for something, with where its boot stands.
type Discovered struct {
	store.Seen
	Known     bool      `json:"known"`
	LastStage string    `json:"last_stage,omitempty"`
	LastEvent time.Time `json:"last_event,omitzero"`
	Stuck     bool      `json:"stuck"`
}

// bootState tells where a timeline stands: its last stage, and whether the node stopped
// between stages for longer than after. A finished boot is never stuck, and a waiting node
// asks again every few seconds, so its timeline keeps moving.
func bootState(evs []store.Event, now time.Time, after time.Duration) (last store.Event, stuck bool) {
	if len(evs) == 0 {
		return store.Event{}, false
	}
	last = evs[len(evs)-1]
	return last, last.Stage != string(timeline.KernelSent) && now.Sub(last.Time) > after
}

func (s *Server) apiDiscovered(c *gin.Context) {
	seen, err := s.cfg.Nodes.ListSeen()
	if err != nil {
		s.apiFail(c, err)
		return
	}
	now := time.Now()
	out := make([]Discovered, 0, len(seen))
	for _, sn := range seen {
		_, err := s.cfg.Nodes.GetNode(sn.MAC)
		d := Discovered{Seen: sn, Known: err == nil}
		evs, err := s.cfg.Nodes.Events(sn.MAC)
		if err != nil {
			s.apiFail(c, err)
			return
		}
		last, stuck := bootState(evs, now, s.cfg.StuckAfter)
		d.LastStage, d.LastEvent, d.Stuck = last.Stage, last.Time, stuck
		out = append(out, d)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) networkNames() []string {
	names := make([]string, 0, len(s.networks()))
	for k := range s.networks() {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}
