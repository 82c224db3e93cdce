package httpd

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// The list endpoints (/api/v1/nodes, /api/v1/discovered) page, search, filter and sort on the
// server, so the page never downloads thousands of rows to show fifty. Without any query
// parameter they answer the old shape (a JSON array of everything); with one, a listPage.
//
// Every answer carries an ETag that is a hash of its body: a client that sends it back in
// If-None-Match gets a bodiless 304 when nothing it would see changed (a stuck flag that
// flips with time changes the body, so it is never hidden behind a 304).

// Bounds on list requests.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
	// maxQueryLen bounds q: a MAC, a farm id, a network and an IP fit in far less.
	maxQueryLen = 100
	// maxCursorLen bounds the cursor before it is decoded.
	maxCursorLen = 256
	// bootedWindow is what "booted" means in state=booted and in the counts: a kernel was
	// sent whole in the last hour.
	bootedWindow = time.Hour
)

// List states (the state parameter).
const (
	stateKnown   = "known"   // has a record
	stateUnknown = "unknown" // asked, has no record
	stateStuck   = "stuck"   // between two stages for longer than events.stuck_after
	stateBooted  = "booted"  // a kernel sent whole within bootedWindow
)

var listStates = []string{stateKnown, stateUnknown, stateStuck, stateBooted}

// Sort columns (the sort parameter).
var listSorts = []string{"mac", "last_seen", "first_seen", "network", "farm", "ip", "arch", "stage", "count", "updated"}

// listParams are the query parameters a list endpoint accepts; any other is refused, so a
// typo ("filter=stuck") is a 400 rather than a silently unfiltered list.
var listParams = []string{"q", "state", "sort", "order", "limit", "cursor"}

// listQuery is a validated list request.
type listQuery struct {
	paged bool         // a parameter was given: answer a listPage
	terms []searchTerm // q split on spaces; every term must match
	state string       // "" or one of listStates
	sort  string
	desc  bool
	limit int
	after *listCursor
}

// listCursor is where the previous page ended: the sort key and MAC of its last row. It is
// tied to the sort it was made for.
type listCursor struct {
	Sort string `json:"s"`
	Desc bool   `json:"d,omitempty"`
	Key  string `json:"k"`
	MAC  string `json:"m"`
}

func (c listCursor) encode() string {
	b, _ := json.Marshal(c) // strings and a bool: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseListQuery validates the query of a list request; defSort is the endpoint's default
// order. Errors wrap errBadInput and say which parameter is wrong and why.
func parseListQuery(q map[string][]string, defSort string, defDesc bool) (listQuery, error) {
	lq := listQuery{sort: defSort, desc: defDesc, limit: DefaultListLimit}
	for name, vs := range q {
		if !slices.Contains(listParams, name) {
			return lq, fmt.Errorf("%w: unknown parameter %q (accepted: %s)", errBadInput, name, strings.Join(listParams, ", "))
		}
		if len(vs) != 1 {
			return lq, fmt.Errorf("%w: parameter %q given %d times", errBadInput, name, len(vs))
		}
		lq.paged = true
	}
	get := func(name string) string {
		if vs := q[name]; len(vs) == 1 {
			return vs[0]
		}
		return ""
	}
	if s := get("q"); s != "" {
		if len(s) > maxQueryLen {
			return lq, fmt.Errorf("%w: q is %d bytes long, at most %d", errBadInput, len(s), maxQueryLen)
		}
		if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return lq, fmt.Errorf("%w: q holds a control character or invalid UTF-8", errBadInput)
		}
		for _, t := range strings.Fields(strings.ToLower(s)) {
			lq.terms = append(lq.terms, newSearchTerm(t))
		}
	}
	if s := get("state"); s != "" {
		if !slices.Contains(listStates, s) {
			return lq, fmt.Errorf("%w: state %q (accepted: %s)", errBadInput, s, strings.Join(listStates, ", "))
		}
		lq.state = s
	}
	if s := get("sort"); s != "" {
		if !slices.Contains(listSorts, s) {
			return lq, fmt.Errorf("%w: sort %q (accepted: %s)", errBadInput, s, strings.Join(listSorts, ", "))
		}
		lq.sort = s
		lq.desc = false
	}
	switch s := get("order"); s {
	case "":
	case "asc":
		lq.desc = false
	case "desc":
		lq.desc = true
	default:
		return lq, fmt.Errorf("%w: order %q (accepted: asc, desc)", errBadInput, s)
	}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			return lq, fmt.Errorf("%w: limit %q: a whole number from 1 to %d", errBadInput, s, MaxListLimit)
		}
		lq.limit = n
	}
	if s := get("cursor"); s != "" {
		c, err := parseCursor(s)
		if err != nil {
			return lq, err
		}
		if c.Sort != lq.sort || c.Desc != lq.desc {
			return lq, fmt.Errorf("%w: cursor was made for another sort order: start again without it", errBadInput)
		}
		lq.after = &c
	}
	return lq, nil
}

func parseCursor(s string) (listCursor, error) {
	var c listCursor
	if len(s) > maxCursorLen {
		return c, fmt.Errorf("%w: cursor is %d bytes long, at most %d", errBadInput, len(s), maxCursorLen)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, fmt.Errorf("%w: cursor is not one this server made (not base64url)", errBadInput)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return c, fmt.Errorf("%w: cursor is not one this server made", errBadInput)
	}
	if !slices.Contains(listSorts, c.Sort) {
		return c, fmt.Errorf("%w: cursor names an unknown sort", errBadInput)
	}
	mac, err := store.ParseMAC(c.MAC)
	if err != nil || mac != c.MAC {
		return c, fmt.Errorf("%w: cursor names no MAC", errBadInput)
	}
	return c, nil
}

// entry is everything the appliance knows about one MAC, joined once per snapshot.
type entry struct {
	mac      string
	hex      string      // the MAC's 12 hex digits, for fragment search
	node     *store.Node // nil: no record
	seen     *store.Seen // nil: never asked
	last     store.Event // last event; zero: none
	lastBoot time.Time   // last kernel_sent; zero: none
}

// snapshot is the joined view of the store at one revision.
type snapshot struct {
	rev     uint64
	built   time.Time
	entries []entry // ordered by MAC
	fleet   Fleet

	mu     sync.Mutex          // guards orders and keys
	orders map[string][]int32  // sort column → entry indices, ascending (see order)
	keys   map[string][]string // sort column → each entry's key
}

// views caches the snapshot: it is rebuilt only when the store's revision moved (or the
// hour changed, so the fleet's hourly figures move on with the clock; stuck and booted are
// worked out per request), so a refresh of a farm where nothing happened costs a filter
// over memory, not a read of every record and timeline.
//
// On a farm where nodes boot all the time the revision moves every second, and a build
// reads every timeline (BenchmarkListBuild). Paged requests (the page's) therefore accept a
// view up to lag old whatever the revision: one build per lag serves every operator's
// refreshes and searches, and boot activity shows at most lag late. Admin writes (a record
// added, changed, deleted, imported, a MAC forgotten) mark the view stale at once, so an
// operator sees their own change on the next request; requests without parameters (the old
// shape, scripts, the CLI without filters) always see the current revision.
type views struct {
	nodes Nodes
	lag   time.Duration
	// mu is held while a snapshot is built, so a burst of requests builds it once.
	mu    sync.Mutex
	snap  *snapshot
	stale bool // an admin write happened since snap was built
	// observe receives each build's duration (bootstrapd_admin_list_build_seconds).
	observe func(time.Duration)
}

// listLag is views.lag of the server.
const listLag = 10 * time.Second

// changed marks the view stale after an admin write.
func (v *views) changed() {
	v.mu.Lock()
	v.stale = true
	v.mu.Unlock()
}

// get returns the view for a request at now; exact: it must reflect the current revision.
func (v *views) get(now time.Time, exact bool) (*snapshot, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	rev := v.nodes.Revision()
	if s := v.snap; s != nil && !v.stale && !now.Before(s.built) && now.Truncate(time.Hour).Equal(s.built.Truncate(time.Hour)) &&
		(s.rev == rev || (!exact && now.Sub(s.built) < v.lag)) {
		return s, nil
	}
	start := time.Now()
	s, err := buildSnapshot(v.nodes, rev, now)
	if err != nil {
		return nil, err
	}
	if v.observe != nil {
		v.observe(time.Since(start))
	}
	v.snap, v.stale = s, false
	return s, nil
}

func buildSnapshot(nodes Nodes, rev uint64, now time.Time) (*snapshot, error) {
	recs, err := nodes.ListNodes()
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	seen, err := nodes.ListSeen()
	if err != nil {
		return nil, fmt.Errorf("list seen: %w", err)
	}
	byMAC := make(map[string]int, len(recs)+len(seen))
	entries := make([]entry, 0, max(len(recs), len(seen)))
	at := func(mac string) *entry {
		if i, ok := byMAC[mac]; ok {
			return &entries[i]
		}
		byMAC[mac] = len(entries)
		entries = append(entries, entry{mac: mac, hex: strings.ReplaceAll(mac, ":", "")})
		return &entries[len(entries)-1]
	}
	for i := range recs {
		at(recs[i].MAC).node = &recs[i]
	}
	for i := range seen {
		at(seen[i].MAC).seen = &seen[i]
	}
	fb := newFleetBuilder(now)
	for i := range entries {
		e := &entries[i]
		evs, err := nodes.Events(e.mac)
		if err != nil {
			return nil, fmt.Errorf("events of %s: %w", e.mac, err)
		}
		if len(evs) == 0 {
			continue
		}
		e.last = evs[len(evs)-1]
		for j := len(evs) - 1; j >= 0; j-- {
			if evs[j].Stage == string(timeline.KernelSent) {
				e.lastBoot = evs[j].Time
				break
			}
		}
		fb.add(evs)
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.mac, b.mac) })
	return &snapshot{rev: rev, built: now, entries: entries, fleet: fb.fleet()}, nil
}

// stuck and booted depend on the time of the request, not of the snapshot.
func (e *entry) stuck(now time.Time, after time.Duration) bool {
	return e.last.Stage != "" && stuckAt(e.last, now, after)
}

func (e *entry) booted(now time.Time) bool {
	return !e.lastBoot.IsZero() && now.Sub(e.lastBoot) <= bootedWindow
}

func (e *entry) hasState(state string, now time.Time, after time.Duration) bool {
	switch state {
	case stateKnown:
		return e.node != nil
	case stateUnknown:
		return e.node == nil
	case stateStuck:
		return e.stuck(now, after)
	case stateBooted:
		return e.booted(now)
	}
	return true
}

// searchTerm is one word of q, with what it can be read as, worked out once per request.
type searchTerm struct {
	text   string
	hex    string // as hex digits of a MAC (fragment); "" if it cannot be one
	farm   uint64
	isFarm bool
}

func newSearchTerm(t string) searchTerm {
	st := searchTerm{text: t}
	st.hex, _ = macFragment(t)
	st.farm, st.isFarm = parseFarmTerm(t)
	return st
}

func parseFarmTerm(t string) (uint64, bool) {
	f, err := strconv.ParseUint(t, 10, 64)
	return f, err == nil
}

// matches reports whether every search term matches the entry: a MAC in any accepted
// spelling or a fragment of one, a farm id (whole), a network, or an IP (or its start).
func (e *entry) matches(terms []searchTerm) bool {
	for i := range terms {
		if !e.matchTerm(&terms[i]) {
			return false
		}
	}
	return true
}

func (e *entry) matchTerm(t *searchTerm) bool {
	if t.hex != "" && strings.Contains(e.hex, t.hex) {
		return true
	}
	if e.node != nil && (strings.Contains(e.node.Network, t.text) || (t.isFarm && t.farm == e.node.Farm)) {
		return true
	}
	return e.seen != nil && e.seen.IP != "" && strings.HasPrefix(e.seen.IP, t.text)
}

// macFragment turns a search term into hex digits when it can be (part of) a MAC in any of
// the accepted spellings: aa:bb:…, aa-bb-…, aabb.ccdd…, aabbcc…. Separators are dropped.
func macFragment(t string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			b.WriteByte(c)
		case c == ':' || c == '-' || c == '.':
		default:
			return "", false
		}
	}
	return b.String(), b.Len() > 0 && b.Len() <= 12
}

// sortKey orders entries by one column; keys compare as strings, so numbers and times are
// written fixed-width. Entries with the same key are ordered by MAC, which makes the order
// total and a cursor exact.
func (e *entry) sortKey(col string) string {
	tm := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("20060102150405.000000000")
	}
	switch col {
	case "last_seen":
		if e.seen != nil {
			return tm(e.seen.LastSeen)
		}
	case "first_seen":
		if e.seen != nil {
			return tm(e.seen.FirstSeen)
		}
	case "network":
		if e.node != nil {
			return e.node.Network
		}
	case "farm":
		if e.node != nil {
			return fmt.Sprintf("%020d", e.node.Farm)
		}
	case "ip":
		if e.seen != nil && e.seen.IP != "" {
			if a, err := netip.ParseAddr(e.seen.IP); err == nil {
				b := a.As16()
				return hex.EncodeToString(b[:])
			}
			return e.seen.IP
		}
	case "arch":
		if e.seen != nil {
			return e.seen.Arch
		}
	case "stage":
		return e.last.Stage
	case "count":
		if e.seen != nil {
			return fmt.Sprintf("%020d", e.seen.Count)
		}
	case "updated":
		if e.node != nil {
			return tm(e.node.Updated)
		}
	}
	return ""
}

// Counts are the whole farm's figures, whatever the filters: the page's summary line.
type Counts struct {
	Known   int `json:"known"`   // records
	Unknown int `json:"unknown"` // MACs that asked and have no record
	Stuck   int `json:"stuck"`
	Booted  int `json:"booted"` // a kernel sent whole in the last hour
}

// ListPage is the answer to a list request with parameters.
type ListPage[T any] struct {
	Total  int    `json:"total"` // rows matching the filters, on every page
	Items  []T    `json:"items"`
	Next   string `json:"next,omitempty"` // cursor of the next page; empty: this is the last
	Counts Counts `json:"counts"`
}

// order is the snapshot's entries sorted by one column, ascending (ties by MAC), with each
// entry's key: computed on first use and kept with the snapshot, so a search re-sorts
// nothing until the store changes.
func (s *snapshot) order(col string) ([]int32, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.orders[col]; ok {
		return o, s.keys[col]
	}
	keys := make([]string, len(s.entries))
	idx := make([]int32, len(s.entries))
	for i := range s.entries {
		keys[i] = s.entries[i].sortKey(col)
		idx[i] = int32(i)
	}
	// Entries are ordered by MAC already: a stable sort by key keeps that order for ties.
	slices.SortStableFunc(idx, func(a, b int32) int { return strings.Compare(keys[a], keys[b]) })
	if s.orders == nil {
		s.orders, s.keys = map[string][]int32{}, map[string][]string{}
	}
	s.orders[col], s.keys[col] = idx, keys
	return idx, keys
}

// selectEntries applies a query to a snapshot: the rows of one page, the number matching,
// the next cursor and the counts. include says which entries the endpoint lists at all.
func selectEntries(s *snapshot, q listQuery, include func(*entry) bool, now time.Time, stuckAfter time.Duration) (page []*entry, total int, next string, counts Counts) {
	for i := range s.entries {
		e := &s.entries[i]
		if e.node != nil {
			counts.Known++
		} else if e.seen != nil {
			counts.Unknown++
		}
		if e.stuck(now, stuckAfter) {
			counts.Stuck++
		}
		if e.booted(now) {
			counts.Booted++
		}
	}
	idx, keys := s.order(q.sort)
	match := make([]int32, 0, 64)
	for n := range idx {
		i := idx[n]
		if q.desc {
			i = idx[len(idx)-1-n]
		}
		e := &s.entries[i]
		if include(e) && e.hasState(q.state, now, stuckAfter) && e.matches(q.terms) {
			match = append(match, i)
		}
	}
	total = len(match)
	start := 0
	if c := q.after; c != nil {
		// The first row after the cursor's (key, MAC) in the requested direction.
		start, _ = slices.BinarySearchFunc(match, c, func(i int32, c *listCursor) int {
			o := cmp.Or(strings.Compare(keys[i], c.Key), strings.Compare(s.entries[i].mac, c.MAC))
			if q.desc {
				o = -o
			}
			if o <= 0 {
				return -1
			}
			return 1
		})
	}
	end := min(start+q.limit, len(match))
	page = make([]*entry, 0, end-start)
	for _, i := range match[start:end] {
		page = append(page, &s.entries[i])
	}
	if end < len(match) {
		last := match[end-1]
		next = listCursor{Sort: q.sort, Desc: q.desc, Key: keys[last], MAC: s.entries[last].mac}.encode()
	}
	return page, total, next, counts
}

// KnownNode is a record as the paged /api/v1/nodes lists it: with where its boot stands.
type KnownNode struct {
	store.Node
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Arch      string    `json:"arch,omitempty"`
	IP        string    `json:"ip,omitempty"`
	LastStage string    `json:"last_stage,omitempty"`
	LastEvent time.Time `json:"last_event,omitzero"`
	LastBoot  time.Time `json:"last_boot,omitzero"`
	Stuck     bool      `json:"stuck"`
}

func (e *entry) known(now time.Time, after time.Duration) KnownNode {
	k := KnownNode{Node: *e.node, LastStage: e.last.Stage, LastEvent: e.last.Time, LastBoot: e.lastBoot, Stuck: e.stuck(now, after)}
	if e.seen != nil {
		k.LastSeen, k.Arch, k.IP = e.seen.LastSeen, e.seen.Arch, e.seen.IP
	}
	return k
}

func (e *entry) discovered(now time.Time, after time.Duration) Discovered {
	d := Discovered{Seen: *e.seen, Known: e.node != nil, LastStage: e.last.Stage, LastEvent: e.last.Time,
		LastBoot: e.lastBoot, Stuck: e.stuck(now, after)}
	if e.node != nil {
		d.Network, d.Farm = e.node.Network, e.node.Farm
	}
	return d
}

func (a *api) apiListNodes(c *gin.Context) {
	a.list(c, "mac", false, func(e *entry) bool { return e.node != nil }, func(e *entry, now time.Time) any {
		return e.known(now, a.stuckAfter)
	}, func(e *entry, _ time.Time) any { return *e.node })
}

func (a *api) apiDiscovered(c *gin.Context) {
	d := func(e *entry, now time.Time) any { return e.discovered(now, a.stuckAfter) }
	a.list(c, "last_seen", true, func(e *entry) bool { return e.seen != nil }, d, d)
}

// list answers a list request: the old shape (every item, by MAC) without parameters, else
// one page. paged and plain make the items of each.
func (a *api) list(c *gin.Context, defSort string, defDesc bool, include func(*entry) bool, paged, plain func(*entry, time.Time) any) {
	q, err := parseListQuery(c.Request.URL.Query(), defSort, defDesc)
	if err != nil {
		a.apiFail(c, err)
		return
	}
	now := time.Now()
	s, err := a.views.get(now, !q.paged)
	if err != nil {
		a.apiFail(c, err)
		return
	}
	var body any
	if !q.paged {
		out := []any{}
		for i := range s.entries {
			if e := &s.entries[i]; include(e) {
				out = append(out, plain(e, now))
			}
		}
		body = out
	} else {
		rows, total, next, counts := selectEntries(s, q, include, now, a.stuckAfter)
		items := make([]any, len(rows))
		for i, e := range rows {
			items[i] = paged(e, now)
		}
		body = ListPage[any]{Total: total, Items: items, Next: next, Counts: counts}
	}
	writeJSONTagged(c, body)
}

// writeJSONTagged writes body as JSON with an ETag of its bytes, or 304 when the client
// already has them (If-None-Match).
func writeJSONTagged(c *gin.Context, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		c.AbortWithStatusJSON(http.StatusInternalServerError, apiError{fmt.Sprintf("encode answer: %v", err)})
		return
	}
	sum := sha256.Sum256(b)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	c.Header("ETag", etag)
	// Admin data: revalidate every time, keep it out of shared caches.
	c.Header("Cache-Control", "private, no-cache")
	if etagMatch(c.GetHeader("If-None-Match"), etag) {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
}

// etagMatch implements If-None-Match's weak comparison over a list of tags (RFC 9110 13.1.2).
func etagMatch(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
