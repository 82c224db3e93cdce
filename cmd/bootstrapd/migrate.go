package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/threefoldtech/bootstrapd/cmd/bootstrapd/internal/migrate"
	"github.com/threefoldtech/bootstrapd/httpd"
	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/kernels"
)

const migrateUsage = `Usage: bootstrapd migrate [--db FILE] [--kernels DIR] [flags]

Takes over a 0-bootstrap installation through the running daemon's admin API: the node
records of its SQLite provision table (read with the sqlite3 program) and the kernel files
and net/<network>.efi links of its kernel directory. Branch names become networks through
the alias list (production→prod, testing→test, development→dev, qanet→qa, … see the README).
Rows, files and links that cannot be taken over are listed (rows with their rowid) and
nothing changes, unless --skip-unmappable. Running it again changes nothing more.

  --db FILE            0-bootstrap's database (db/bootstrap.sqlite3)
  --kernels DIR        0-bootstrap's kernel directory (its config's kernel-path)
  --alias BRANCH=NET   one more branch name for a network (repeatable)
  --skip-unmappable    take over the rest when some rows, files or links cannot be
  --dry-run            list what would change, change nothing
  --sqlite3 PATH       the sqlite3 program (default: from PATH)

Connection flags as for bootstrapd node: --config, --socket, --server, --token-file, --json.
`

// aliasFlags collects repeated --alias BRANCH=NETWORK.
type aliasFlags map[string]string

func (a aliasFlags) String() string { return fmt.Sprint(map[string]string(a)) }

func (a aliasFlags) Set(v string) error {
	branch, network, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(branch) == "" || strings.TrimSpace(network) == "" {
		return fmt.Errorf("want BRANCH=NETWORK, got %q", v)
	}
	a[strings.ToLower(strings.TrimSpace(branch))] = strings.TrimSpace(network)
	return nil
}

// migrateReport is what the command did (or, with --dry-run, would do); --json prints it.
type migrateReport struct {
	DryRun      bool              `json:"dry_run"`
	Problems    []migrate.Problem `json:"problems"`
	Skipped     int               `json:"skipped"`
	Nodes       int               `json:"nodes"`
	Created     int               `json:"created"`
	Updated     int               `json:"updated"`
	Uploaded    []string          `json:"uploaded"`
	KernelsSame []string          `json:"kernels_unchanged"`
	Links       map[string]string `json:"links_set"`
	LinksSame   []string          `json:"links_unchanged"`
}

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage) }
	conn := addConnFlags(fs)
	dbFile := fs.String("db", "", "0-bootstrap's SQLite database")
	kernelDir := fs.String("kernels", "", "0-bootstrap's kernel directory")
	skip := fs.Bool("skip-unmappable", false, "take over the rest when some rows cannot be")
	dry := fs.Bool("dry-run", false, "change nothing")
	sqlite3 := fs.String("sqlite3", "", "the sqlite3 program")
	aliases := aliasFlags(migrate.DefaultAliases())
	fs.Var(aliases, "alias", "BRANCH=NETWORK (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || (*dbFile == "" && *kernelDir == "") {
		fs.Usage()
		return fmt.Errorf("%w: migrate needs --db FILE, --kernels DIR or both", errUsage)
	}
	c, err := conn.client(fs)
	if err != nil {
		return err
	}
	// The daemon's networks decide what a branch may become.
	var nets []httpd.NetworkInfo
	if err := c.do(ctx, http.MethodGet, "/networks", nil, &nets); err != nil {
		return err
	}
	networks := make(map[string]string, len(nets))
	for _, n := range nets {
		networks[n.Name] = n.Display
	}
	rep := migrateReport{DryRun: *dry, Problems: []migrate.Problem{}, Links: map[string]string{}}

	var mapped []migrate.Mapped
	if *dbFile != "" {
		rows, err := migrate.ReadDB(ctx, *sqlite3, *dbFile)
		if err != nil {
			return err
		}
		var bad []migrate.Problem
		mapped, bad = migrate.Map(rows, networks, aliases)
		rep.Problems = append(rep.Problems, bad...)
		rep.Nodes = len(mapped)
	}
	var uploads []migrate.KernelFile
	var links []migrate.Link
	if *kernelDir != "" {
		files, ls, bad, err := migrate.ScanKernels(*kernelDir, networks, aliases)
		if err != nil {
			return err
		}
		rep.Problems = append(rep.Problems, bad...)
		// A file of the same name that differs is a conflict, found before anything changes.
		var have kernels.KernelList
		if err := c.do(ctx, http.MethodGet, "/kernels", nil, &have); err != nil {
			return err
		}
		existing := map[string]string{}
		for _, k := range have.Kernels {
			existing[k.Name] = k.SHA256
		}
		taken := map[string]bool{}
		for _, f := range files {
			sum, err := fileSHA256(f.Path)
			if err != nil {
				return err
			}
			switch old, ok := existing[f.Name]; {
			case !ok:
				uploads = append(uploads, f)
				taken[f.Name] = true
			case old == sum:
				rep.KernelsSame = append(rep.KernelsSame, f.Name)
				taken[f.Name] = true
			default:
				rep.Problems = append(rep.Problems, migrate.Problem{Client: f.Name,
					Reason: fmt.Sprintf("the appliance has a different kernel of this name (sha256 %s, here %s)", old, sum)})
			}
		}
		for _, l := range ls {
			switch {
			case !taken[l.Kernel]:
				rep.Problems = append(rep.Problems, migrate.Problem{Client: l.Path, Reason: fmt.Sprintf("its kernel %s is not taken over", l.Kernel)})
			case have.Networks[l.Network] == l.Kernel:
				rep.LinksSame = append(rep.LinksSame, l.Network)
			default:
				links = append(links, l)
				rep.Links[l.Network] = l.Kernel
			}
		}
	}
	out := printer{w: stdout, json: conn.json}
	if len(rep.Problems) > 0 && !*skip {
		if out.json {
			out.encode(rep)
		}
		return problemsErr(rep.Problems, "nothing changed: fix them in 0-bootstrap's database or directory, or pass --skip-unmappable to take over the rest")
	}
	rep.Skipped = len(rep.Problems)
	for _, f := range uploads {
		rep.Uploaded = append(rep.Uploaded, f.Name)
	}
	if *dry {
		return rep.print(out)
	}

	// Kernels first, each upload atomic; then the links; then every record in one
	// transaction. A failure part-way leaves kernels that nothing boots yet, and running the
	// command again finishes the work.
	quiet := printer{w: io.Discard}
	for _, f := range uploads {
		if err := c.uploadKernel(ctx, f.Path, f.Name, quiet); err != nil {
			return fmt.Errorf("upload %s: %w", f.Path, err)
		}
	}
	for _, l := range links {
		if err := c.do(ctx, http.MethodPut, "/networks/"+l.Network+"/kernel", map[string]string{"kernel": l.Kernel}, nil); err != nil {
			return fmt.Errorf("%s: %w", l.Path, err)
		}
	}
	if len(mapped) > 0 {
		nodes := make([]store.Node, len(mapped))
		for i, m := range mapped {
			nodes[i] = m.Node
		}
		var csv bytes.Buffer
		if err := httpd.WriteNodesCSV(&csv, nodes); err != nil {
			return err
		}
		res, err := c.importNodes(ctx, &csv)
		if err != nil {
			return err
		}
		if len(res.Errors) > 0 {
			// The daemon refused rows this command let through (the CSV's line 1 is the
			// header): name them by rowid too.
			var bad []migrate.Problem
			for _, e := range res.Errors {
				p := migrate.Problem{Reason: e.Err}
				if i := e.Line - 2; i >= 0 && i < len(mapped) {
					p.RowID, p.Client = mapped[i].RowID, mapped[i].Node.MAC
				}
				bad = append(bad, p)
			}
			return problemsErr(bad, "the daemon refused them; no record was imported")
		}
		rep.Created, rep.Updated = res.Created, res.Updated
	}
	return rep.print(out)
}

func problemsErr(ps []migrate.Problem, tail string) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d cannot be taken over; %s:", len(ps), tail)
	for _, p := range ps {
		sb.WriteString("\n  " + term(p.String()))
	}
	return errors.New(sb.String())
}

func (r migrateReport) print(out printer) error {
	if out.json {
		return out.encode(r)
	}
	verb := ""
	if r.DryRun {
		verb = "would be "
	}
	for _, p := range r.Problems {
		fmt.Fprintf(out.w, "skipped %s\n", term(p.String()))
	}
	for _, n := range r.Uploaded {
		fmt.Fprintf(out.w, "kernel %s %suploaded\n", term(n), verb)
	}
	for net, k := range r.Links {
		fmt.Fprintf(out.w, "network %s %sset to %s\n", net, verb, term(k))
	}
	if r.DryRun {
		fmt.Fprintf(out.w, "%d node records would be imported in one transaction; %d skipped\n", r.Nodes, r.Skipped)
		return nil
	}
	fmt.Fprintf(out.w, "%d node records imported (%d new, %d updated), %d kernels uploaded (%d already there), %d network links set (%d already), %d skipped\n",
		r.Nodes, r.Created, r.Updated, len(r.Uploaded), len(r.KernelsSame), len(r.Links), len(r.LinksSame), r.Skipped)
	return nil
}

// importNodes posts CSV rows to the import endpoint: one transaction, all or nothing.
func (c *adminClient) importNodes(ctx context.Context, csv io.Reader) (httpd.ImportResult, error) {
	var res httpd.ImportResult
	resp, err := c.send(ctx, http.MethodPost, "/import", csv, "text/csv")
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if json.Unmarshal(b, &res) != nil || (resp.StatusCode >= 300 && len(res.Errors) == 0) {
		return res, decodeErr(&http.Response{StatusCode: resp.StatusCode, Body: io.NopCloser(bytes.NewReader(b))})
	}
	return res, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
