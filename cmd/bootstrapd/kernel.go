package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/threefoldtech/bootstrapd/httpd"
	"github.com/threefoldtech/bootstrapd/ipxe"
	"github.com/threefoldtech/bootstrapd/store/kernels"
)

const kernelUsage = `Usage: bootstrapd kernel <command> [flags]

Commands (they talk to the running daemon's admin API):
  list                          kernel files (size, sha256) and the kernels each network boots
  upload FILE [--name NAME]     upload a kernel (sha256 checked by the daemon; atomic)
  rm --name NAME                delete a kernel no network or node boots
  default --network N --name NAME [--arch arm64]
                                point net/<N>.efi (x86-64 nodes) or net/<N>-arm64.efi
                                (arm64 nodes) at a kernel (atomic)
  pull --network N [--arch arm64] [--sha256 HEX] URL
                                the daemon downloads URL, checks it (size, kernel header,
                                sha256), stores it as <N>[-arm64]-<sha256[:12]>.efi and
                                repoints net/<N>.efi (net/<N>-arm64.efi); a failed pull
                                changes nothing
  pulls                         recent pulls, newest first

Connection flags as for bootstrapd node: --config, --socket, --server, --token-file, --json.
`

func cmdKernel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, kernelUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: kernel needs a command", errUsage)
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("kernel "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, kernelUsage) }
	conn := addConnFlags(fs)
	name := fs.String("name", "", "kernel file name in paths.kernels")
	network := fs.String("network", "", "network whose default kernel to set")
	arch := fs.String("arch", "", "architecture of the default to set: x86_64 (the default) or arm64")
	wantSHA := fs.String("sha256", "", "pull: the kernel's expected sha256 (hex)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := conn.client(fs)
	if err != nil {
		return err
	}
	out := printer{w: stdout, json: conn.json}
	switch sub {
	case "list":
		var list kernels.KernelList
		if err := c.do(ctx, http.MethodGet, "/kernels", nil, &list); err != nil {
			return err
		}
		return out.kernels(list)
	case "upload":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: kernel upload needs one FILE", errUsage)
		}
		if *name == "" {
			*name = filepath.Base(fs.Arg(0))
		}
		// Checked here too, before a long upload the daemon would refuse at the end.
		if err := kernels.ValidName(*name); err != nil {
			return fmt.Errorf("%w: kernel name %q: one file name of A-Z a-z 0-9 . _ + -", errUsage, *name)
		}
		return c.uploadKernel(ctx, fs.Arg(0), *name, out)
	case "rm":
		if *name == "" {
			return fmt.Errorf("%w: kernel rm needs --name", errUsage)
		}
		return c.do(ctx, http.MethodDelete, "/kernels/"+url.PathEscape(*name), nil, nil)
	case "default":
		if *name == "" || *network == "" {
			return fmt.Errorf("%w: kernel default needs --network and --name", errUsage)
		}
		a, err := ipxe.ParseArch(*arch)
		if err != nil {
			return fmt.Errorf("%w: --arch: %v", errUsage, err)
		}
		var info httpd.NetworkInfo
		if err := c.do(ctx, http.MethodPut, "/networks/"+url.PathEscape(*network)+"/kernel", map[string]string{"kernel": *name, "arch": a}, &info); err != nil {
			return err
		}
		if out.json {
			return out.encode(info)
		}
		if a == ipxe.ArchARM64 {
			fmt.Fprintf(stdout, "%s boots %s on arm64\n", info.Name, info.KernelArm64)
			return nil
		}
		fmt.Fprintf(stdout, "%s boots %s\n", info.Name, info.Kernel)
		return nil
	case "pull":
		if *network == "" || fs.NArg() != 1 {
			return fmt.Errorf("%w: kernel pull needs --network and one URL", errUsage)
		}
		a, err := ipxe.ParseArch(*arch)
		if err != nil {
			return fmt.Errorf("%w: --arch: %v", errUsage, err)
		}
		return c.pullKernel(ctx, *network, a, fs.Arg(0), *wantSHA, out)
	case "pulls":
		var evs []kernels.PullEvent
		if err := c.do(ctx, http.MethodGet, "/kernels/pulls", nil, &evs); err != nil {
			return err
		}
		return out.pulls(evs)
	}
	fmt.Fprint(stderr, kernelUsage)
	return fmt.Errorf("%w: unknown kernel command %q", errUsage, sub)
}

// openKernels opens paths.kernels for the daemon and removes what interrupted uploads left
// there: nothing else can be writing to it before the daemon serves.
func openKernels(dir string, log *slog.Logger) (*kernels.Dir, error) {
	d, err := kernels.Open(dir)
	if err != nil {
		return nil, err
	}
	if removed, err := d.RemoveTemps(); err != nil {
		log.Warn("cleaning interrupted uploads", "err", err)
	} else if len(removed) > 0 {
		log.Info("removed files of interrupted kernel uploads", "files", removed)
	}
	return d, nil
}

// uploadKernel hashes the file first and sends the digest, so the daemon refuses a transfer
// that arrives damaged instead of installing it.
func (c *adminClient) uploadKernel(ctx context.Context, path, name string, out printer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return fmt.Errorf("hash %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+"/kernels/"+url.PathEscape(name), f)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Checksum-Sha256", hex.EncodeToString(sum.Sum(nil)))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// A kernel over a slow link takes longer than the client's usual timeout.
	hc := *c.http
	hc.Timeout = 30 * time.Minute
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach bootstrapd (is `bootstrapd serve` running?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeErr(resp)
	}
	var info kernels.KernelInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if out.json {
		return out.encode(info)
	}
	fmt.Fprintf(out.w, "uploaded %s: %d bytes, sha256 %s\n", info.Name, info.Size, info.SHA256)
	return nil
}

func (p printer) kernels(list kernels.KernelList) error {
	if p.json {
		return p.encode(list)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tSIZE\tMODIFIED\tSHA256")
	for _, k := range list.Kernels {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", k.Name, k.Size, k.MTime.Format(time.RFC3339), k.SHA256)
	}
	fmt.Fprintln(tw, "\nNETWORK\tBOOTS (x86-64)\tARM64")
	nets := make([]string, 0, len(list.Networks))
	for n := range list.Networks {
		nets = append(nets, n)
	}
	slices.Sort(nets)
	for _, n := range nets {
		k, arm := list.Networks[n], list.NetworksArm64[n]
		if k == "" {
			k = "(none: net/" + n + ".efi is missing)"
		}
		if arm == "" {
			arm = "(none: net/" + n + "-arm64.efi is missing)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n, k, arm)
	}
	return tw.Flush()
}

// pullKernel asks the daemon to pull; a download can outlast the client's usual timeout.
func (c *adminClient) pullKernel(ctx context.Context, network, arch, rawURL, sha string, out printer) error {
	b, err := json.Marshal(httpd.PullInput{URL: rawURL, SHA256: sha, Arch: arch})
	if err != nil {
		return err
	}
	long := *c
	hc := *c.http
	hc.Timeout = 30 * time.Minute
	long.http = &hc
	resp, err := long.send(ctx, http.MethodPost, "/networks/"+url.PathEscape(network)+"/pull", bytes.NewReader(b), "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeErr(resp)
	}
	var ev kernels.PullEvent
	if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if out.json {
		return out.encode(ev)
	}
	switch ev.Result {
	case kernels.PullUpdated:
		fmt.Fprintf(out.w, "%s boots %s (%d bytes, sha256 %s); previous: %s\n", network, ev.Kernel, ev.Size, ev.SHA256, orNone(ev.Previous))
	default:
		fmt.Fprintf(out.w, "%s: unchanged, boots %s\n", network, ev.Kernel)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (p printer) pulls(evs []kernels.PullEvent) error {
	if p.json {
		return p.encode(evs)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tNETWORK\tARCH\tRESULT\tKERNEL\tURL\tERROR")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Network, e.Arch, e.Result,
			term(e.Kernel), term(e.URL), term(e.Error))
	}
	return tw.Flush()
}
