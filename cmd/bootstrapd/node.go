package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/threefoldtech/bootstrapd/httpd"
	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store"
)

const nodeUsage = `Usage: bootstrapd node <command> [flags]

Commands (they talk to the running daemon's admin API):
  add    --mac M --network N --farm F [--args A] [--kernel K] [--efi-binary B]   create a record
  set    --mac M [--network N] [--farm F] [--args A] [--kernel K] [--efi-binary B] change a record
         (--efi-binary ipxe|snponly: what the node's x86_64 UEFI firmware loads; "" = dhcp.efi_binary)
  show   --mac M                                                print a record and its boot events
  list [filters]                                                print every record (or those matching)
  rm     --mac M                                                delete a record
  import FILE|-                                                 import CSV rows client,branch,zerotier,kargs[,kernel[,efi_binary]]
  export                                                        print every record as CSV
  discovered [filters]                                          print MACs that asked for a script
  forget --mac M                                                drop a MAC's discovered entry and boot events

Filters (list, discovered; the admin API's list parameters):
  --search TEXT      terms that must all match: a MAC (any spelling, or a fragment), a farm id,
                     a network, an IP address or its start
  --state S          known, unknown, stuck, or booted (a kernel sent in the last hour)
  --sort COL         mac, last_seen, first_seen, network, farm, ip, arch, stage, count, updated
  --order asc|desc
  --limit N          print at most N rows (default: every matching row)

Connection flags (every command):
  --config FILE      find admin.socket in FILE (default appliance.yaml, else built-in defaults)
  --socket PATH      admin unix socket (overrides --config)
  --server URL       talk HTTP to URL instead, with --token-file
  --token-file FILE  bearer token for --server
  --json             print JSON
`

// adminClient calls the admin API over the unix socket or over HTTP with a token.
type adminClient struct {
	http  *http.Client
	base  string
	token string
}

func cmdNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, nodeUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: node needs a command", errUsage)
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("node "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, nodeUsage) }
	conn := addConnFlags(fs)
	mac := fs.String("mac", "", "node MAC address")
	network := fs.String("network", "", "network (prod, test, ...)")
	farm := fs.Uint64("farm", 0, "farm id")
	kargs := fs.String("args", "", "extra kernel arguments")
	kernel := fs.String("kernel", "", "kernel file under paths.kernels (default net/<network>.efi)")
	efiBinary := fs.String("efi-binary", "", "ipxe or snponly: the binary the node's x86_64 UEFI firmware loads (default dhcp.efi_binary)")
	filters := addListFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := conn.client(fs)
	if err != nil {
		return err
	}
	set := func(name string) bool { return flagWasSet(fs, name) }
	needMAC := func() error {
		if *mac == "" {
			return fmt.Errorf("%w: node %s needs --mac", errUsage, sub)
		}
		return nil
	}
	out := printer{w: stdout, json: conn.json}
	// given holds the record fields named on the command line; the others stay nil, so an
	// update leaves them as they are.
	given := func() httpd.NodeInput {
		var in httpd.NodeInput
		if set("network") {
			in.Network = network
		}
		if set("farm") {
			in.Farm = farm
		}
		if set("args") {
			in.Args = kargs
		}
		if set("kernel") {
			in.Kernel = kernel
		}
		if set("efi-binary") {
			in.EFIBinary = efiBinary
		}
		return in
	}

	switch sub {
	case "add":
		if err := needMAC(); err != nil {
			return err
		}
		if !set("network") || !set("farm") {
			return fmt.Errorf("%w: node add needs --network and --farm", errUsage)
		}
		in := given()
		in.MAC = *mac
		var n store.Node
		if err := c.do(ctx, http.MethodPost, "/nodes", in, &n); err != nil {
			return err
		}
		return out.node(n, nil)
	case "set":
		if err := needMAC(); err != nil {
			return err
		}
		in := given()
		if in == (httpd.NodeInput{}) {
			return fmt.Errorf("%w: node set needs at least one of --network --farm --args --kernel --efi-binary", errUsage)
		}
		var n store.Node
		if err := c.do(ctx, http.MethodPatch, "/nodes/"+url.PathEscape(*mac), in, &n); err != nil {
			return err
		}
		return out.node(n, nil)
	case "show":
		if err := needMAC(); err != nil {
			return err
		}
		var n store.Node
		if err := c.do(ctx, http.MethodGet, "/nodes/"+url.PathEscape(*mac), nil, &n); err != nil {
			return err
		}
		var evs []store.Event
		if err := c.do(ctx, http.MethodGet, "/nodes/"+url.PathEscape(*mac)+"/events", nil, &evs); err != nil {
			return err
		}
		return out.node(n, evs)
	case "list":
		if q, ok := filters.query(fs); ok {
			rows, err := listPages[httpd.KnownNode](ctx, c, "/nodes", q, *filters.limit)
			if err != nil {
				return err
			}
			nodes := make([]store.Node, len(rows))
			for i, r := range rows {
				nodes[i] = r.Node
			}
			return out.nodes(nodes)
		}
		var nodes []store.Node
		if err := c.do(ctx, http.MethodGet, "/nodes", nil, &nodes); err != nil {
			return err
		}
		return out.nodes(nodes)
	case "rm":
		if err := needMAC(); err != nil {
			return err
		}
		return c.do(ctx, http.MethodDelete, "/nodes/"+url.PathEscape(*mac), nil, nil)
	case "import":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: node import needs one CSV file (or - for stdin)", errUsage)
		}
		return c.importCSV(ctx, fs.Arg(0), out)
	case "export":
		return c.raw(ctx, http.MethodGet, "/export", nil, stdout)
	case "forget":
		if err := needMAC(); err != nil {
			return err
		}
		return c.do(ctx, http.MethodDelete, "/discovered/"+url.PathEscape(*mac), nil, nil)
	case "discovered":
		if q, ok := filters.query(fs); ok {
			ds, err := listPages[httpd.Discovered](ctx, c, "/discovered", q, *filters.limit)
			if err != nil {
				return err
			}
			return out.discovered(ds)
		}
		var ds []httpd.Discovered
		if err := c.do(ctx, http.MethodGet, "/discovered", nil, &ds); err != nil {
			return err
		}
		return out.discovered(ds)
	}
	fmt.Fprint(stderr, nodeUsage)
	return fmt.Errorf("%w: unknown node command %q", errUsage, sub)
}

// listFlags are the filters of node list and node discovered.
type listFlags struct {
	search, state, sort, order *string
	limit                      *int
}

func addListFlags(fs *flag.FlagSet) listFlags {
	return listFlags{
		search: fs.String("search", "", "list, discovered: terms that must all match (MAC or fragment, farm id, network, IP)"),
		state:  fs.String("state", "", "list, discovered: known, unknown, stuck or booted"),
		sort:   fs.String("sort", "", "list, discovered: column to sort by"),
		order:  fs.String("order", "", "list, discovered: asc or desc"),
		limit:  fs.Int("limit", 0, "list, discovered: print at most this many rows"),
	}
}

// query is the list parameters named on the command line; ok is false when none is (the
// command then asks for the plain list, as before filters existed). The server validates
// the values and says what is wrong.
func (l listFlags) query(fs *flag.FlagSet) (url.Values, bool) {
	q := url.Values{}
	for name, v := range map[string]*string{"q": l.search, "state": l.state, "sort": l.sort, "order": l.order} {
		if *v != "" {
			q.Set(name, *v)
		}
	}
	if flagWasSet(fs, "limit") {
		q.Set("limit", strconv.Itoa(*l.limit))
	}
	return q, len(q) > 0
}

// listPages fetches the rows matching q page by page: at most limit of them, or all when
// limit is 0.
func listPages[T any](ctx context.Context, c *adminClient, path string, q url.Values, limit int) ([]T, error) {
	var out []T
	if limit == 0 {
		q.Set("limit", strconv.Itoa(httpd.MaxListLimit))
	}
	for {
		var p httpd.ListPage[T]
		if err := c.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &p); err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if p.Next == "" || (limit > 0 && len(out) >= limit) {
			break
		}
		q.Set("cursor", p.Next)
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// connFlags are the flags every command that talks to the daemon takes.
type connFlags struct {
	config, socket, server, tokenFile string
	json                              bool
}

func addConnFlags(fs *flag.FlagSet) *connFlags {
	c := &connFlags{}
	fs.StringVar(&c.config, "config", "appliance.yaml", "configuration `file`")
	fs.StringVar(&c.socket, "socket", "", "admin unix socket `path`")
	fs.StringVar(&c.server, "server", "", "admin API base `URL` (instead of the socket)")
	fs.StringVar(&c.tokenFile, "token-file", "", "bearer token `file` for --server")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	return c
}

// client is the admin API client the flags (parsed in fs) name.
func (c *connFlags) client(fs *flag.FlagSet) (*adminClient, error) {
	return newAdminClient(fs, c.config, c.socket, c.server, c.tokenFile)
}

func newAdminClient(fs *flag.FlagSet, cfgPath, socket, server, tokenFile string) (*adminClient, error) {
	if server != "" {
		base, err := ipxe.ValidateBaseURL(server)
		if err != nil {
			return nil, fmt.Errorf("%w: --server: %w", errUsage, err)
		}
		server = base
		if tokenFile == "" {
			return nil, fmt.Errorf("%w: --server needs --token-file", errUsage)
		}
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		return &adminClient{
			http:  &http.Client{Timeout: 60 * time.Second},
			base:  strings.TrimSuffix(server, "/") + "/api/v1",
			token: strings.TrimSpace(string(b)),
		}, nil
	}
	if socket == "" {
		// Only the socket path is needed: do not validate directories the client never uses.
		cfg := defaultConfig()
		if p := configPath(cfgPath, flagWasSet(fs, "config")); p != "" {
			var err error
			if cfg, err = parseConfigFile(p); err != nil {
				return nil, err
			}
		}
		socket = cfg.Admin.Socket
		if socket == "" {
			return nil, fmt.Errorf("%w: admin.socket is empty in the configuration: use --socket or --server", errUsage)
		}
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	return &adminClient{
		http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: dial}},
		base: "http://bootstrapd/api/v1",
	}, nil
}

// apiErr is an error answered by the daemon.
type apiErr struct {
	status int
	msg    string
}

func (e *apiErr) Error() string { return e.msg }

func (c *adminClient) send(ctx context.Context, method, path string, body io.Reader, ctype string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach bootstrapd (is `bootstrapd serve` running?): %w", err)
	}
	return resp, nil
}

func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	resp, err := c.send(ctx, method, path, body, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeErr(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

func (c *adminClient) raw(ctx context.Context, method, path string, body io.Reader, w io.Writer) error {
	resp, err := c.send(ctx, method, path, body, "text/csv")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeErr(resp)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

func decodeErr(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return &apiErr{status: resp.StatusCode, msg: fmt.Sprintf("%s (HTTP %d)", msg, resp.StatusCode)}
}

func (c *adminClient) importCSV(ctx context.Context, file string, out printer) error {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	resp, err := c.send(ctx, http.MethodPost, "/import", r, "text/csv")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res httpd.ImportResult
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if json.Unmarshal(b, &res) != nil || (resp.StatusCode >= 300 && len(res.Errors) == 0) {
		return decodeErr(&http.Response{StatusCode: resp.StatusCode, Body: io.NopCloser(bytes.NewReader(b))})
	}
	if out.json {
		if err := json.NewEncoder(out.w).Encode(res); err != nil {
			return err
		}
	}
	if len(res.Errors) > 0 {
		var sb strings.Builder
		fmt.Fprintf(&sb, "%s: nothing imported, %d bad rows:", file, len(res.Errors))
		for _, e := range res.Errors {
			fmt.Fprintf(&sb, "\n  line %d: %s", e.Line, e.Err)
		}
		return errors.New(sb.String())
	}
	if !out.json {
		fmt.Fprintf(out.w, "imported %d new and %d updated nodes\n", res.Created, res.Updated)
	}
	return nil
}

type printer struct {
	w    io.Writer
	json bool
}

func (p printer) encode(v any) error {
	enc := json.NewEncoder(p.w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (p printer) node(n store.Node, evs []store.Event) error {
	if p.json {
		if evs == nil {
			return p.encode(n)
		}
		return p.encode(struct {
			store.Node
			Events []store.Event `json:"events"`
		}{n, evs})
	}
	kernel := n.Kernel
	if kernel == "" {
		kernel = "net/" + n.Network + ".efi, arm64: net/" + n.Network + "-arm64.efi (network defaults)"
	}
	efi := n.EFIBinary
	if efi == "" {
		efi = "dhcp.efi_binary"
	}
	fmt.Fprintf(p.w, "mac:      %s\nnetwork:  %s\nfarm:     %d\nargs:     %s\nkernel:   %s\nefi:      %s\ncreated:  %s\nupdated:  %s\n",
		term(n.MAC), term(n.Network), n.Farm, term(n.Args), term(kernel), term(efi), n.Created.Format(time.RFC3339), n.Updated.Format(time.RFC3339))
	if len(evs) > 0 {
		fmt.Fprintln(p.w, "events:")
		for _, e := range evs {
			// With a shared store (etcd), the appliance that saw it.
			by := ""
			if e.Appliance != "" {
				by = "  [" + term(e.Appliance) + "]"
			}
			fmt.Fprintf(p.w, "  %s  %-18s %s%s\n", e.Time.Format(time.RFC3339), term(e.Stage), term(e.Detail), by)
		}
	}
	return nil
}

func (p printer) nodes(nodes []store.Node) error {
	if p.json {
		return p.encode(nodes)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tNETWORK\tFARM\tKERNEL\tARGS")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", term(n.MAC), term(n.Network), n.Farm, term(n.Kernel), term(n.Args))
	}
	return tw.Flush()
}

func (p printer) discovered(ds []httpd.Discovered) error {
	if p.json {
		return p.encode(ds)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tKNOWN\tARCH\tIP\tFIRST SEEN\tLAST SEEN\tCOUNT\tLAST STAGE\tSTUCK")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\t%d\t%s\t%v\n", term(d.MAC), d.Known, term(d.Arch), term(d.IP),
			d.FirstSeen.Format(time.RFC3339), d.LastSeen.Format(time.RFC3339), d.Count, term(d.LastStage), d.Stuck)
	}
	return tw.Flush()
}

// term makes a value safe to print on the operator's terminal. Discovered entries and events
// come from the network: an escape sequence or a tab in them must not reach the terminal
// (it could recolour it or forge a table row), so anything but printable ASCII is shown
// quoted, with Go escapes.
func term(s string) string {
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}
