package httpd

import (
	"io"
	"sync"
	"time"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store/kernels"
)

// Bounds of the script cache. A boot storm asks for the same few scripts thousands of times a
// second (one per network, farm and base URL); rendering each anew costs a stat of every
// kernel it names and a template execution, most of a request's time. Entries live
// scriptTTL, so a kernel copied into or removed from the directory by hand shows within that
// time, as it would for a node that asked a moment later; a reload or an admin change to
// the kernels empties the cache at once.
const (
	scriptTTL = time.Second
	// scriptCacheBytes bounds what the cache holds: extra kernel arguments come from URLs,
	// so anyone can add entries. At the bound the cache is emptied and fills again with
	// what is asked for.
	scriptCacheBytes = 8 << 20
)

// scriptKey is everything a successful boot script depends on besides the kernels directory
// (which scriptTTL covers) and the Scripts, fixed for the Server's life.
type scriptKey struct {
	base, display string
	req           ipxe.BootRequest
}

type cachedScript struct {
	script []byte
	born   time.Time
	size   int // what the entry counts towards scriptCacheBytes
}

// scriptCache holds rendered boot scripts. Only scripts that boot are kept: a failure (an
// unknown network, a missing kernel) and a wait script are decided anew each time.
type scriptCache struct {
	mu    sync.RWMutex
	m     map[scriptKey]cachedScript
	bytes int
}

func newScriptCache() *scriptCache { return &scriptCache{m: map[scriptKey]cachedScript{}} }

func (c *scriptCache) get(k scriptKey, now time.Time) ([]byte, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || now.Sub(e.born) >= scriptTTL || now.Before(e.born) {
		return nil, false
	}
	return e.script, true
}

// put keeps script for k. The slice is shared with every later get: callers never modify it.
func (c *scriptCache) put(k scriptKey, script []byte, now time.Time) {
	size := len(script) + len(k.base) + len(k.display) + len(k.req.Network) + len(k.req.Args) + len(k.req.Kernel)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		c.bytes -= old.size
	}
	if c.bytes+size > scriptCacheBytes {
		clear(c.m)
		c.bytes = 0
	}
	c.m[k] = cachedScript{script: script, born: now, size: size}
	c.bytes += size
}

// clear empties the cache: the networks, the default node or the kernels changed.
func (c *scriptCache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.bytes = 0
	c.mu.Unlock()
}

// boot is p.Boot(req), from the cache when the same script was rendered less than scriptTTL
// ago.
func (s *Server) boot(p ipxe.Policy, req ipxe.BootRequest) ([]byte, error) {
	k := scriptKey{base: p.Base, display: p.Networks[req.Network], req: req}
	now := time.Now()
	if script, ok := s.scripts.get(k, now); ok {
		return script, nil
	}
	script, err := p.Boot(req)
	if err == nil {
		s.scripts.put(k, script, now)
	}
	return script, err
}

// provision is p.Provision(mac, rec, lookupErr), with the script of a node that boots (its
// record's, or default_node's) from the cache when it can be. The policy's own order is
// kept: a record is tried first, default_node only for a MAC without one and without a
// failed lookup, and anything that does not boot goes to the policy.
func (s *Server) provision(p ipxe.Policy, mac string, rec *ipxe.BootRequest, lookupErr error) (ipxe.Decision, error) {
	var req ipxe.BootRequest
	var kind ipxe.Kind
	switch {
	case lookupErr != nil:
		return p.Provision(mac, rec, lookupErr)
	case rec != nil:
		req, kind = *rec, ipxe.KindNode
	case p.Default.Network != "":
		req, kind = p.Default, ipxe.KindDefault
	default:
		return p.Provision(mac, rec, lookupErr)
	}
	k := scriptKey{base: p.Base, display: p.Networks[req.Network], req: req}
	now := time.Now()
	if script, ok := s.scripts.get(k, now); ok {
		return ipxe.Decision{Kind: kind, Script: script}, nil
	}
	d, err := p.Provision(mac, rec, lookupErr)
	if err == nil && d.Kind == kind {
		s.scripts.put(k, d.Script, now)
	}
	return d, err
}

// clearingKernels is the kernels directory as the admin API changes it: every change empties
// the script cache, so the next script names the kernels as they are now.
type clearingKernels struct {
	Kernels
	clear func()
}

func (k clearingKernels) Put(name string, r io.Reader, sha256Hex string) (kernels.KernelInfo, error) {
	defer k.clear()
	return k.Kernels.Put(name, r, sha256Hex)
}

func (k clearingKernels) Remove(name string, inUse func(name string) ([]string, error)) error {
	defer k.clear()
	return k.Kernels.Remove(name, inUse)
}

func (k clearingKernels) SetDefault(network, name string) error {
	defer k.clear()
	return k.Kernels.SetDefault(network, name)
}

func (k clearingKernels) SetDefaultFor(network, arch, name string) error {
	defer k.clear()
	return k.Kernels.SetDefaultFor(network, arch, name)
}
