package httpd

import (
	"maps"
	"slices"
	"sync/atomic"
)

// live is the configuration a reload (SIGHUP) replaces while requests read it. A handler
// loads each value once, so one request never mixes the old and the new.
type live struct {
	nets atomic.Pointer[map[string]string]
	dflt atomic.Pointer[DefaultNode]
}

func (l *live) set(networks map[string]string, def DefaultNode) {
	nets := maps.Clone(networks)
	l.nets.Store(&nets)
	l.dflt.Store(&def)
}

func (l *live) networks() map[string]string { return *l.nets.Load() }

func (l *live) defaultNode() DefaultNode { return *l.dflt.Load() }

// networkNames are the names of nets, sorted: error messages and listings list them so.
func networkNames(nets map[string]string) []string { return slices.Sorted(maps.Keys(nets)) }
