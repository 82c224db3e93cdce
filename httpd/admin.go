package httpd

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/kernels"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// api serves /api/v1: the admin API and the public network list. It holds only what those
// handlers need, so the boot path's dependencies stay out of its reach and the other way
// round: records come through Nodes, kernel files through Kernels.
type api struct {
	live       *live
	nodes      Nodes
	kernels    Kernels
	log        *slog.Logger
	token      string        // Config.AdminToken
	maxBody    int64         // Config.MaxBody
	stuckAfter time.Duration // Config.StuckAfter
	views      *views        // the joined view behind the list endpoints
	// unauthorized counts refused requests (bootstrapd_http_unauthorized_total).
	unauthorized prometheus.Counter
}

// requireAdmin lets through requests on the admin socket (its 0600 mode is the check) and TCP
// requests carrying the configured bearer token; everything else is 401 and counted.
func (a *api) requireAdmin(c *gin.Context) {
	if v, _ := c.Request.Context().Value(viaSocket).(bool); v {
		c.Next()
		return
	}
	const prefix = "Bearer "
	h := c.GetHeader("Authorization")
	ok := a.token != "" && strings.HasPrefix(h, prefix) &&
		subtle.ConstantTimeCompare([]byte(strings.TrimPrefix(h, prefix)), []byte(a.token)) == 1
	if !ok {
		a.unauthorized.Inc()
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
	// Revision changes whenever anything the methods above return changes, and only after
	// the change is visible to them: the list endpoints rebuild their joined view only when
	// it moved.
	Revision() uint64
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
	// EFIBinary: "ipxe", "snponly" or "" (dhcp.efi_binary).
	EFIBinary *string `json:"efi_binary,omitempty"`
}

func (a *api) routes(g *gin.RouterGroup) {
	// Kernel uploads are streamed to disk under their own, larger bound.
	g.PUT("/kernels/:name", a.apiUploadKernel)
	g.Use(func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, a.maxBody)
	})
	getHead(g, "/nodes", a.apiListNodes)
	g.POST("/nodes", a.apiCreateNode)
	getHead(g, "/nodes/:mac", a.apiGetNode)
	g.PATCH("/nodes/:mac", a.apiUpdateNode)
	g.DELETE("/nodes/:mac", a.apiDeleteNode)
	getHead(g, "/nodes/:mac/events", a.apiEvents)
	g.POST("/import", a.apiImport)
	getHead(g, "/export", a.apiExport)
	getHead(g, "/discovered", a.apiDiscovered)
	getHead(g, "/fleet", a.apiFleet)
	g.DELETE("/discovered/:mac", a.apiForget)
	getHead(g, "/kernels", a.apiKernels)
	g.DELETE("/kernels/:name", a.apiDeleteKernel)
	g.PUT("/networks/:network/kernel", a.apiSetNetworkKernel)
}

// readJSON decodes the request's one JSON value into v. Not gin's ShouldBindJSON: its
// validator calls methods found by name, which makes the linker keep every exported method in
// the program (docs/PERFORMANCE.md, Binary size); bootstrapd validates what it decoded itself.
func readJSON(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", errBadInput, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: more than one JSON value in the body", errBadInput)
	}
	return nil
}

func (a *api) apiFail(c *gin.Context, err error) {
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
	case errors.Is(err, store.ErrUnavailable):
		// The shared store (etcd) is down: nothing changed, and trying later may work.
		code = http.StatusServiceUnavailable
	default:
		a.log.Error("admin API", "path", c.FullPath(), "err", err)
	}
	c.AbortWithStatusJSON(code, apiError{err.Error()})
}

var errBadInput = errors.New("bad request")

// validateNode checks a record against the configuration before it is stored, so a record
// can never produce an unsafe script.
func (a *api) validateNode(n *store.Node) error {
	mac, err := store.ParseMAC(n.MAC)
	if err != nil {
		return err
	}
	n.MAC = mac
	if err := ipxe.ValidateNetwork(n.Network); err != nil {
		return err
	}
	nets := a.live.networks()
	if _, ok := nets[n.Network]; !ok {
		return fmt.Errorf("%w: %q (known: %s)", ipxe.ErrUnknownNetwork, n.Network, strings.Join(networkNames(nets), ", "))
	}
	if n.Farm == 0 {
		return fmt.Errorf("%w: farm id must be a positive integer", ipxe.ErrUnsafe)
	}
	if err := ipxe.ValidateArgs(n.Args); err != nil {
		return err
	}
	if n.Kernel != "" {
		if _, err := ipxe.KernelFor(a.kernels, n.Network, n.Kernel); err != nil {
			return err
		}
	}
	if err := ipxe.ValidateEFIBinary(n.EFIBinary); err != nil {
		return err
	}
	return nil
}

func (a *api) apiGetNode(c *gin.Context) {
	n, err := a.nodes.GetNode(c.Param("mac"))
	if err != nil {
		a.apiFail(c, err)
		return
	}
	c.JSON(http.StatusOK, n)
}

func (a *api) apiCreateNode(c *gin.Context) {
	var in NodeInput
	if err := readJSON(c, &in); err != nil {
		a.apiFail(c, err)
		return
	}
	n := store.Node{MAC: in.MAC}
	apply(&n, in)
	if err := a.validateNode(&n); err != nil {
		a.apiFail(c, err)
		return
	}
	n, err := a.nodes.CreateNode(n)
	if err != nil {
		a.apiFail(c, err)
		return
	}
	a.views.changed()
	a.log.Info("node created", "mac", n.MAC, "network", n.Network, "farm", n.Farm)
	c.JSON(http.StatusCreated, n)
}

func (a *api) apiUpdateNode(c *gin.Context) {
	var in NodeInput
	if err := readJSON(c, &in); err != nil {
		a.apiFail(c, err)
		return
	}
	n, err := a.nodes.UpdateNode(c.Param("mac"), func(n *store.Node) error {
		apply(n, in)
		return a.validateNode(n)
	})
	if err != nil {
		a.apiFail(c, err)
		return
	}
	a.views.changed()
	a.log.Info("node updated", "mac", n.MAC, "network", n.Network, "farm", n.Farm)
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
	if in.EFIBinary != nil {
		n.EFIBinary = *in.EFIBinary
	}
}

func (a *api) apiDeleteNode(c *gin.Context) {
	if err := a.nodes.DeleteNode(c.Param("mac")); err != nil {
		a.apiFail(c, err)
		return
	}
	a.views.changed()
	a.log.Info("node deleted", "mac", c.Param("mac"))
	c.Status(http.StatusNoContent)
}

// apiForget removes what the appliance remembers of a MAC that asked for something (its
// discovered entry and boot events); its record, if any, stays.
func (a *api) apiForget(c *gin.Context) {
	if err := a.nodes.Forget(c.Param("mac")); err != nil {
		a.apiFail(c, err)
		return
	}
	a.views.changed()
	a.log.Info("discovered MAC forgotten", "mac", c.Param("mac"))
	c.Status(http.StatusNoContent)
}

func (a *api) apiEvents(c *gin.Context) {
	evs, err := a.nodes.Events(c.Param("mac"))
	if err != nil {
		a.apiFail(c, err)
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

func (a *api) apiImport(c *gin.Context) {
	// Read it all first: a body over the limit is refused whole, never parsed in part.
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		a.apiFail(c, err)
		return
	}
	nodes, bad := ParseNodesCSV(bytes.NewReader(body), a.validateNode)
	if len(bad) > 0 {
		c.AbortWithStatusJSON(http.StatusBadRequest, ImportResult{Errors: bad})
		return
	}
	created, updated, err := a.nodes.ImportNodes(nodes)
	if err != nil {
		a.apiFail(c, err)
		return
	}
	a.views.changed()
	a.log.Info("nodes imported", "created", created, "updated", updated)
	c.JSON(http.StatusOK, ImportResult{Created: created, Updated: updated})
}

func (a *api) apiExport(c *gin.Context) {
	nodes, err := a.nodes.ListNodes()
	if err != nil {
		a.apiFail(c, err)
		return
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="bootstrapd-nodes.csv"`)
	if err := WriteNodesCSV(c.Writer, nodes); err != nil {
		a.log.Warn("export", "err", err)
	}
}

// Discovered is a MAC that asked for something, with where its boot stands.
type Discovered struct {
	store.Seen
	Known     bool      `json:"known"`
	LastStage string    `json:"last_stage,omitempty"`
	LastEvent time.Time `json:"last_event,omitzero"`
	// LastBoot is when a kernel was last sent whole to it.
	LastBoot time.Time `json:"last_boot,omitzero"`
	Stuck    bool      `json:"stuck"`
	// Network and Farm are its record's, if it has one.
	Network string `json:"network,omitempty"`
	Farm    uint64 `json:"farm,omitempty"`
}

// bootState tells where a timeline stands: its last stage, and whether the node stopped
// between stages for longer than after. A finished boot is never stuck, and a waiting node
// asks again every few seconds, so its timeline keeps moving.
func bootState(evs []store.Event, now time.Time, after time.Duration) (last store.Event, stuck bool) {
	if len(evs) == 0 {
		return store.Event{}, false
	}
	last = evs[len(evs)-1]
	return last, stuckAt(last, now, after)
}

// stuckAt is bootState's rule for a timeline whose last event is last.
func stuckAt(last store.Event, now time.Time, after time.Duration) bool {
	return last.Stage != string(timeline.KernelSent) && now.Sub(last.Time) > after
}
