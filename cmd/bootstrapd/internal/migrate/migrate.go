package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/kernels"
)

// ErrNoSQLite means the sqlite3 program is not installed.
var ErrNoSQLite = errors.New("the sqlite3 program is not installed")

// Query is what ReadDB asks sqlite3: every row of the provision table, in rowid order.
const Query = "SELECT rowid, client, branch, zerotier, kargs FROM provision ORDER BY rowid"

// MaxOutput bounds what ReadDB takes from sqlite3: 0-bootstrap's tables hold a few thousand
// rows, each under 1 KiB.
const MaxOutput = 64 << 20

// Row is one row of the provision table. A NULL column is "".
type Row struct {
	RowID    int64
	Client   string // the node's MAC
	Branch   string // the network, under any of Aliases' names
	Zerotier string // the farm id, despite the name
	Kargs    string // extra kernel arguments
}

// ReadDB reads the provision table of the SQLite database at file with the sqlite3 program
// (sqlite3Path; "" looks it up in PATH), read-only.
func ReadDB(ctx context.Context, sqlite3Path, file string) ([]Row, error) {
	if sqlite3Path == "" {
		p, err := exec.LookPath("sqlite3")
		if err != nil {
			return nil, fmt.Errorf("%w (apt install sqlite3): it reads 0-bootstrap's database", ErrNoSQLite)
		}
		sqlite3Path = p
	}
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("0-bootstrap database: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("0-bootstrap database %s is not a regular file", file)
	}
	// An absolute path never starts with "-" (an option) or "file:" (a URI).
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = MaxOutput, 4<<10
	cmd := exec.CommandContext(ctx, sqlite3Path, "-readonly", "-bail", "-json", abs, Query)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if stdout.over {
			return nil, fmt.Errorf("read %s: the provision table is larger than %d bytes", file, MaxOutput)
		}
		return nil, fmt.Errorf("read %s with sqlite3: %w: %s", file, err, strings.TrimSpace(stderr.String()))
	}
	rows, err := ParseRows(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return rows, nil
}

// limitedBuffer keeps the first max bytes and fails the writer after that, which stops
// sqlite3 (a broken pipe) instead of filling the memory.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return 0, errors.New("output too large")
	}
	return b.Buffer.Write(p)
}

// ParseRows reads sqlite3 -json's answer to Query: an array of objects, or nothing at all
// when the table is empty. Columns may be text, numbers or null (SQLite's types are the
// values'); anything else is an error.
func ParseRows(b []byte) ([]Row, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var objs []map[string]any
	if err := dec.Decode(&objs); err != nil {
		return nil, fmt.Errorf("sqlite3 output: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("sqlite3 output: data after the rows")
	}
	rows := make([]Row, 0, len(objs))
	for i, o := range objs {
		var r Row
		id, err := column(o, "rowid")
		if err == nil {
			r.RowID, err = strconv.ParseInt(id, 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite3 output, object %d: rowid: %v", i+1, err)
		}
		for _, c := range []struct {
			name string
			dst  *string
		}{{"client", &r.Client}, {"branch", &r.Branch}, {"zerotier", &r.Zerotier}, {"kargs", &r.Kargs}} {
			if *c.dst, err = column(o, c.name); err != nil {
				return nil, fmt.Errorf("sqlite3 output, row %d: %s: %v", r.RowID, c.name, err)
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// column is a column's value as text: "" for null or absent.
func column(o map[string]any, name string) (string, error) {
	switch v := o[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	default:
		return "", fmt.Errorf("unexpected %T", v)
	}
}

// DefaultAliases maps 0-bootstrap's branch names to bootstrapd's network names. A branch
// that is already a configured network's name maps to itself. Keys are lower case.
func DefaultAliases() map[string]string {
	return map[string]string{
		"production": "prod", "prod": "prod", "mainnet": "prod",
		"testing": "test", "test": "test", "testnet": "test",
		"development": "dev", "dev": "dev", "devnet": "dev",
		"qa": "qa", "qanet": "qa", "qa-network": "qa",
	}
}

// Network maps a branch (any case, spaces around) to a configured network.
func Network(branch string, networks map[string]string, aliases map[string]string) (string, error) {
	b := strings.ToLower(strings.TrimSpace(branch))
	if b == "" {
		return "", errors.New("no branch")
	}
	network, ok := aliases[b]
	if !ok {
		if _, known := networks[b]; known {
			return b, nil
		}
		return "", fmt.Errorf("branch %q is not in the alias list (add --alias %s=<network>)", branch, b)
	}
	if _, known := networks[network]; !known {
		return "", fmt.Errorf("branch %q maps to network %q, which the appliance does not define (networks: %s)",
			branch, network, strings.Join(slices.Sorted(maps.Keys(networks)), ", "))
	}
	return network, nil
}

// Mapped is a row that maps to a node record.
type Mapped struct {
	RowID int64
	Node  store.Node
}

// Problem is a row, a kernel file or a link that cannot be taken over, and why.
type Problem struct {
	RowID  int64  `json:"row,omitempty"` // provision rows
	Client string `json:"client"`        // the row's client, or the file's path in the kernel directory
	Reason string `json:"reason"`
}

func (p Problem) String() string {
	if p.RowID != 0 {
		return fmt.Sprintf("row %d (client %q): %s", p.RowID, p.Client, p.Reason)
	}
	return fmt.Sprintf("%s: %s", p.Client, p.Reason)
}

// Map turns rows into node records for networks (the appliance's), with the validation the
// admin API applies: a MAC, a known network, a positive farm id, arguments safe in a
// script, each MAC once. Every row that fails is a Problem naming its rowid and every reason.
func Map(rows []Row, networks map[string]string, aliases map[string]string) ([]Mapped, []Problem) {
	var out []Mapped
	var bad []Problem
	seen := map[string]int64{}
	for _, r := range rows {
		var reasons []string
		mac, err := store.ParseMAC(strings.TrimSpace(r.Client))
		if err != nil {
			reasons = append(reasons, err.Error())
		} else if prev, dup := seen[mac]; dup {
			reasons = append(reasons, fmt.Sprintf("MAC %s is also row %d", mac, prev))
		}
		network, err := Network(r.Branch, networks, aliases)
		if err != nil {
			reasons = append(reasons, err.Error())
		}
		farm, err := strconv.ParseUint(strings.TrimSpace(r.Zerotier), 10, 64)
		if err != nil || farm == 0 {
			reasons = append(reasons, fmt.Sprintf("farm id (zerotier column) %q is not a positive integer", r.Zerotier))
		}
		args := strings.Join(strings.Fields(r.Kargs), " ")
		if err := ipxe.ValidateArgs(args); err != nil {
			reasons = append(reasons, "kargs: "+err.Error())
		}
		if len(reasons) > 0 {
			bad = append(bad, Problem{RowID: r.RowID, Client: r.Client, Reason: strings.Join(reasons, "; ")})
			continue
		}
		seen[mac] = r.RowID
		out = append(out, Mapped{RowID: r.RowID, Node: store.Node{MAC: mac, Network: network, Farm: farm, Args: args}})
	}
	return out, bad
}

// KernelFile is a kernel at the top of the predecessor's kernel directory.
type KernelFile struct {
	Name string // also its name in bootstrapd's kernels directory
	Path string
}

// Link is a net/<branch>.efi symlink: the network's default kernel.
type Link struct {
	Network string
	Kernel  string // a KernelFile's Name
	Path    string // the link, for messages
}

// ScanKernels lists the kernel files at the top of dir (regular files; links there and
// hidden files are not kernels) and the net/*.efi links that name one of them, mapped to
// networks. What cannot be taken over is a Problem.
func ScanKernels(dir string, networks map[string]string, aliases map[string]string) ([]KernelFile, []Link, []Problem, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("0-bootstrap kernel directory: %w", err)
	}
	var files []KernelFile
	var bad []Problem
	names := map[string]bool{}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := kernels.ValidName(e.Name()); err != nil {
			bad = append(bad, Problem{Client: e.Name(), Reason: err.Error()})
			continue
		}
		if info, err := e.Info(); err == nil && info.Size() == 0 {
			bad = append(bad, Problem{Client: e.Name(), Reason: "empty file"})
			continue
		}
		files = append(files, KernelFile{Name: e.Name(), Path: filepath.Join(dir, e.Name())})
		names[e.Name()] = true
	}
	netEntries, err := os.ReadDir(filepath.Join(dir, "net"))
	if errors.Is(err, fs.ErrNotExist) {
		return files, nil, bad, nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("0-bootstrap kernel directory: %w", err)
	}
	var links []Link
	for _, e := range netEntries {
		rel := path.Join("net", e.Name())
		if e.Type()&fs.ModeSymlink == 0 || !strings.HasSuffix(e.Name(), ".efi") {
			bad = append(bad, Problem{Client: rel, Reason: "not a <network>.efi symlink"})
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, rel))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("0-bootstrap kernel directory: %w", err)
		}
		kernel := path.Clean(path.Join("net", target))
		if path.IsAbs(target) || strings.Contains(kernel, "/") || !names[kernel] {
			bad = append(bad, Problem{Client: rel, Reason: fmt.Sprintf("points at %q, not at a kernel file at the top of the directory", target)})
			continue
		}
		network, err := Network(strings.TrimSuffix(e.Name(), ".efi"), networks, aliases)
		if err != nil {
			bad = append(bad, Problem{Client: rel, Reason: err.Error()})
			continue
		}
		links = append(links, Link{Network: network, Kernel: kernel, Path: rel})
	}
	// Links that name one network (prod.efi, production.efi) must agree; if they do not,
	// which one 0-bootstrap served is unknown, so the network gets none of them.
	var out []Link
	for _, l := range links {
		agree := true
		for _, o := range links {
			if o.Network == l.Network && o.Kernel != l.Kernel {
				agree = false
				bad = append(bad, Problem{Client: l.Path, Reason: fmt.Sprintf("network %s is also %s, which points at %s", l.Network, o.Path, o.Kernel)})
				break
			}
		}
		if agree && !slices.ContainsFunc(out, func(o Link) bool { return o.Network == l.Network }) {
			out = append(out, l)
		}
	}
	return files, out, bad, nil
}
