package kernels

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threefoldtech/bootstrapd/ipxe"
)

// Pull results, the values of bootstrapd_kernel_pulls_total's result label.
const (
	PullUpdated   = "updated"   // a new kernel was stored and net/<network>.efi points at it
	PullUnchanged = "unchanged" // the upstream has nothing new (304, or the same bytes)
	PullError     = "error"     // nothing changed; Error says why
)

// ErrNotKernel means downloaded bytes have no Linux or EFI image header.
var ErrNotKernel = errors.New("not a kernel image")

// DefaultMaxPullBytes bounds a pulled kernel, as an upload is bounded.
const DefaultMaxPullBytes = 1 << 30

// pullHistory is how many pulls of each network the state file keeps.
const pullHistory = 20

// headerBytes is how much of a download CheckHeader sees: every magic it looks for is in it.
const headerBytes = 4096

// CheckHeader tells what kind of kernel image b (the first bytes of a file) starts: a Linux
// bzImage ("HdrS" at 0x202, x86), an arm64 Image ("ARM\x64" at 0x38; Debian's arm64 kernels
// are one with an EFI stub) or a PE/COFF EFI application ("MZ", then "PE\0\0" at the offset
// stored at 0x3c). Anything else is ErrNotKernel: an HTML error page served with 200, a
// truncated file, a tarball.
func CheckHeader(b []byte) (string, error) {
	switch {
	case len(b) >= 0x206 && string(b[0x202:0x206]) == "HdrS":
		return "bzimage", nil
	case len(b) >= 0x40 && string(b[0x38:0x3c]) == "ARM\x64":
		return "arm64_image", nil
	case len(b) >= 0x40 && string(b[:2]) == "MZ":
		off := binary.LittleEndian.Uint32(b[0x3c:0x40])
		if off >= 0x40 && uint64(off)+4 <= uint64(len(b)) && string(b[off:off+4]) == "PE\x00\x00" {
			return "efi", nil
		}
		return "", fmt.Errorf("%w: MZ without a PE header in the first %d bytes", ErrNotKernel, len(b))
	}
	return "", fmt.Errorf("%w: no bzImage, arm64 Image or PE/EFI header", ErrNotKernel)
}

// PullEvent is one pull, as logged, counted and kept in the network's history.
type PullEvent struct {
	Time     time.Time `json:"time"`
	Network  string    `json:"network"`
	Arch     string    `json:"arch"` // the default it is for: ipxe.ArchX86 or ipxe.ArchARM64
	URL      string    `json:"url"`
	Result   string    `json:"result"`             // PullUpdated, PullUnchanged, PullError
	Kernel   string    `json:"kernel,omitempty"`   // what the default points at afterwards
	Previous string    `json:"previous,omitempty"` // what it pointed at before (kept on disk)
	SHA256   string    `json:"sha256,omitempty"`
	Size     int64     `json:"size,omitempty"`
	Image    string    `json:"image,omitempty"` // CheckHeader's kind
	Error    string    `json:"error,omitempty"`
}

// pullState is what the pulls of one default keep between runs, in .pull-<link>.json
// (.pull-prod.json, .pull-prod-arm64.json): the validators of the last download for
// conditional GETs, and the recent pulls.
type pullState struct {
	URL          string      `json:"url"`
	ETag         string      `json:"etag,omitempty"`
	LastModified string      `json:"last_modified,omitempty"`
	History      []PullEvent `json:"history"`
}

// linkName is the default's name under net/ without .efi: <network> or <network>-arm64.
func linkName(network, arch string) string {
	if arch == ipxe.ArchARM64 {
		return network + "-arm64"
	}
	return network
}

func stateName(link string) string { return ".pull-" + link + ".json" }

// PullerConfig configures NewPuller.
type PullerConfig struct {
	Dir *Dir
	// Client makes the requests; nil: one with a 10-minute timeout per pull.
	Client *http.Client
	// MaxBytes bounds a download; 0: DefaultMaxPullBytes.
	MaxBytes int64
	// Networks pre-create the metric's label values.
	Networks   []string
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Puller mirrors kernels from upstream URLs: it downloads, checks and stores a kernel under
// a versioned name, then repoints net/<network>.efi at it. A failed pull changes nothing.
type Puller struct {
	cfg   PullerConfig
	log   *slog.Logger
	pulls *prometheus.CounterVec
	// mu makes pulls one at a time: they are rare, and two pulls of one network must not
	// interleave their state writes.
	mu sync.Mutex
}

// NewPuller makes a Puller over cfg.Dir.
func NewPuller(cfg PullerConfig) (*Puller, error) {
	if cfg.Dir == nil {
		return nil, errors.New("kernels: Puller needs a Dir")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Minute}
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxPullBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Puller{cfg: cfg, log: cfg.Logger, pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bootstrapd_kernel_pulls_total",
		Help: "Kernel pulls (bootstrapd kernel pull, kernels.upstream) by network and result: updated, unchanged, error.",
	}, []string{"network", "result"})}
	for _, n := range cfg.Networks {
		for _, r := range []string{PullUpdated, PullUnchanged, PullError} {
			p.pulls.WithLabelValues(n, r)
		}
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(p.pulls); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ValidateUpstream checks a pull URL: http or https, a host, no credentials (they would be
// logged and kept in the history) and nothing iPXE-unsafe, since it is shown on the page.
func ValidateUpstream(raw string) error {
	if len(raw) > 2048 {
		return fmt.Errorf("%w: URL longer than 2048 bytes", ipxe.ErrUnsafe)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: URL %q: %v", ipxe.ErrUnsafe, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%w: URL %q: want http:// or https:// and a host", ipxe.ErrUnsafe, raw)
	}
	if u.User != nil {
		return fmt.Errorf("%w: URL %q: credentials in a URL are refused", ipxe.ErrUnsafe, raw)
	}
	for _, r := range raw {
		if r < 0x21 || r > 0x7e {
			return fmt.Errorf("%w: URL %q: only printable ASCII without spaces", ipxe.ErrUnsafe, raw)
		}
	}
	return nil
}

// Pull fetches rawURL as network's kernel for arch (ipxe.ArchX86, or ipxe.ArchARM64 for
// net/<network>-arm64.efi; "" is x86). wantSHA256 ("" accepts any) must match the
// download. The bytes are checked (size, header, sha256) in a temporary file, stored as
// <network>[-arm64]-<sha256[:12]>.efi, and the default link is repointed atomically; the previous
// kernel stays on disk. A repeat of the last URL is a conditional GET (ETag,
// If-Modified-Since). The returned event says what happened; err is non-nil when its result
// is PullError.
func (p *Puller) Pull(ctx context.Context, network, arch, rawURL, wantSHA256 string) (PullEvent, error) {
	if arch == "" {
		arch = ipxe.ArchX86
	}
	ev := PullEvent{Time: time.Now().UTC(), Network: network, Arch: arch, URL: rawURL}
	if err := ipxe.ValidateNetwork(network); err != nil {
		return ev, err // not recorded: no state file for a name that is not a network
	}
	if arch != ipxe.ArchX86 && arch != ipxe.ArchARM64 {
		return ev, fmt.Errorf("%w: architecture %q (x86_64 or arm64)", ipxe.ErrUnsafe, arch)
	}
	if err := ValidateUpstream(rawURL); err != nil {
		return ev, err
	}
	wantSHA256 = strings.ToLower(wantSHA256)
	if b, err := hex.DecodeString(wantSHA256); wantSHA256 != "" && (err != nil || len(b) != sha256.Size) {
		return ev, fmt.Errorf("%w: %q is not 64 hex digits", ErrChecksum, wantSHA256)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	link := linkName(network, arch)
	st := p.loadState(link)
	ev.Previous = p.cfg.Dir.DefaultFor(network, arch)
	err := p.pull(ctx, &ev, &st, wantSHA256)
	if err != nil {
		ev.Result, ev.Error, ev.Kernel = PullError, err.Error(), ev.Previous
	}
	st.History = append(st.History, ev)
	if len(st.History) > pullHistory {
		st.History = slices.Clone(st.History[len(st.History)-pullHistory:])
	}
	if serr := p.saveState(link, st); serr != nil {
		p.log.Warn("kernel pull: state not saved", "network", network, "err", serr)
	}
	p.pulls.WithLabelValues(network, ev.Result).Inc()
	log := p.log.With("network", network, "arch", arch, "url", rawURL, "result", ev.Result)
	if err != nil {
		log.Warn("kernel pull failed, current kernel unchanged", "kernel", ev.Previous, "err", err)
	} else {
		log.Info("kernel pull", "kernel", ev.Kernel, "previous", ev.Previous, "sha256", ev.SHA256, "bytes", ev.Size)
	}
	return ev, err
}

func (p *Puller) pull(ctx context.Context, ev *PullEvent, st *pullState, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ev.URL, nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", ev.URL, err)
	}
	// Conditional only for a repeat of the last download whose kernel is still the default:
	// a 304 then means "nothing new" for certain.
	conditional := want == "" && st.URL == ev.URL && ev.Previous != "" && p.cfg.Dir.Exists(ev.Previous)
	if conditional {
		if st.ETag != "" {
			req.Header.Set("If-None-Match", st.ETag)
		}
		if st.LastModified != "" {
			req.Header.Set("If-Modified-Since", st.LastModified)
		}
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		ev.Result, ev.Kernel = PullUnchanged, ev.Previous
		return nil
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("upstream answered %s", resp.Status)
	case resp.ContentLength > p.cfg.MaxBytes:
		return fmt.Errorf("upstream announces %d bytes, more than the %d allowed", resp.ContentLength, p.cfg.MaxBytes)
	}
	name, err := p.store(ev, resp.Body, want)
	if err != nil {
		return err
	}
	// The validators are kept only once the kernel they describe is stored.
	st.URL, st.ETag, st.LastModified = ev.URL, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if name == ev.Previous {
		ev.Result, ev.Kernel = PullUnchanged, name
		return nil
	}
	if err := p.cfg.Dir.SetDefaultFor(ev.Network, ev.Arch, name); err != nil {
		return err
	}
	ev.Result, ev.Kernel = PullUpdated, name
	return nil
}

// headWriter keeps the first headerBytes written through it.
type headWriter struct{ b []byte }

func (w *headWriter) Write(p []byte) (int, error) {
	if n := headerBytes - len(w.b); n > 0 {
		w.b = append(w.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// store streams body into a temporary file, checks it and renames it to its versioned name,
// which it returns. On any error the temporary file is removed and nothing else changed.
func (p *Puller) store(ev *PullEvent, body io.Reader, want string) (string, error) {
	d := p.cfg.Dir
	tmp := uploadPrefix + rand.Text()
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("kernels: create temporary file: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			d.root.Remove(tmp)
		}
	}()
	sum, head := sha256.New(), &headWriter{}
	n, err := io.Copy(io.MultiWriter(f, sum, head), io.LimitReader(body, p.cfg.MaxBytes+1))
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	if n > p.cfg.MaxBytes {
		return "", fmt.Errorf("download larger than the %d bytes allowed", p.cfg.MaxBytes)
	}
	if ev.Image, err = CheckHeader(head.b); err != nil {
		return "", err
	}
	// An arm64 node cannot start an x86 kernel, nor the reverse: the header must fit.
	if (ev.Image == "arm64_image") != (ev.Arch == ipxe.ArchARM64) {
		return "", fmt.Errorf("%w: a %s image cannot be the %s default", ErrNotKernel, ev.Image, ev.Arch)
	}
	ev.SHA256, ev.Size = hex.EncodeToString(sum.Sum(nil)), n
	if want != "" && ev.SHA256 != want {
		return "", fmt.Errorf("%w: the download's sha256 is %s, %s was expected", ErrChecksum, ev.SHA256, want)
	}
	name := linkName(ev.Network, ev.Arch) + "-" + ev.SHA256[:12] + ".efi"
	if err := ValidName(name); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("kernels: sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("kernels: close %s: %w", name, err)
	}
	if err := d.root.Rename(tmp, name); err != nil {
		return "", fmt.Errorf("kernels: install %s: %w", name, err)
	}
	committed = true
	d.syncDir(".")
	return name, nil
}

// loadState reads a default's state; a missing or unreadable file is an empty state (the
// next pull is then unconditional, which is always safe).
func (p *Puller) loadState(link string) pullState {
	var st pullState
	b, err := p.readState(link)
	if err == nil {
		if jerr := json.Unmarshal(b, &st); jerr != nil {
			p.log.Warn("kernel pull: state unreadable, starting afresh", "default", link, "err", jerr)
			st = pullState{}
		}
	}
	return st
}

func (p *Puller) readState(link string) ([]byte, error) {
	f, err := p.cfg.Dir.root.Open(stateName(link))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// saveState replaces a default's state file atomically (temporary file, fsync, rename).
func (p *Puller) saveState(link string, st pullState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	d := p.cfg.Dir
	tmp := uploadPrefix + rand.Text()
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, bytes.NewReader(b))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.root.Rename(tmp, stateName(link))
	}
	if err != nil {
		d.root.Remove(tmp)
		return err
	}
	d.syncDir(".")
	return nil
}

// History is the recent pulls of networks (both architectures), newest first.
func (p *Puller) History(networks []string) []PullEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []PullEvent{}
	for _, n := range networks {
		if ipxe.ValidateNetwork(n) == nil {
			out = append(out, p.loadState(linkName(n, ipxe.ArchX86)).History...)
			out = append(out, p.loadState(linkName(n, ipxe.ArchARM64)).History...)
		}
	}
	slices.SortStableFunc(out, func(a, b PullEvent) int { return b.Time.Compare(a.Time) })
	return out
}

// Run pulls each upstream URL now and then every interval, until ctx ends. upstream's keys
// are networks (their x86 default) or <network>-arm64 (their arm64 default). Failures are
// logged and counted by Pull; the next round tries again.
func (p *Puller) Run(ctx context.Context, upstream map[string]string, every time.Duration) {
	names := slices.Sorted(maps.Keys(upstream))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, n := range names {
			if ctx.Err() != nil {
				return
			}
			network, arch := SplitUpstreamKey(n)
			p.Pull(ctx, network, arch, upstream[n], "")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SplitUpstreamKey reads a kernels.upstream key: "prod" is prod's x86 default,
// "prod-arm64" its arm64 default.
func SplitUpstreamKey(key string) (network, arch string) {
	if n, ok := strings.CutSuffix(key, "-arm64"); ok {
		return n, ipxe.ArchARM64
	}
	return key, ipxe.ArchX86
}
