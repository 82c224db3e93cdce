package httpd

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/threefoldtech/bootstrapd/store"
)

// csvHeader is the predecessor's provisioning table (client, branch, zerotier, kargs) plus
// optional kernel and efi_binary columns.
var csvHeader = []string{"client", "branch", "zerotier", "kargs", "kernel", "efi_binary"}

// LineError is a bad CSV row.
type LineError struct {
	Line int    `json:"line"`
	Err  string `json:"error"`
}

// ParseNodesCSV reads provisioning rows: MAC, network, farm id, kernel args[, kernel[,
// efi_binary]]. A first
// row starting with "client" is a header. Every row is checked with validate; the rows come
// back only if all are good, otherwise every bad row is reported with its line number.
func ParseNodesCSV(r io.Reader, validate func(*store.Node) error) ([]store.Node, []LineError) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	var nodes []store.Node
	var bad []LineError
	seen := map[string]int{}
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// FieldPos is only defined after a successful Read: take the line from the error.
			var pe *csv.ParseError
			line := 0
			if errors.As(err, &pe) {
				line = pe.Line
			}
			bad = append(bad, LineError{Line: line, Err: err.Error()})
			if pe == nil {
				break
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if first && strings.EqualFold(strings.TrimSpace(rec[0]), "client") {
			continue
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		n, err := nodeFromRecord(rec)
		if err == nil {
			err = validate(&n)
		}
		if err == nil {
			if prev, dup := seen[n.MAC]; dup {
				err = fmt.Errorf("MAC %s is also on line %d", n.MAC, prev)
			}
		}
		if err != nil {
			bad = append(bad, LineError{Line: line, Err: err.Error()})
			continue
		}
		seen[n.MAC] = line
		nodes = append(nodes, n)
	}
	if len(bad) > 0 {
		return nil, bad
	}
	return nodes, nil
}

func nodeFromRecord(rec []string) (store.Node, error) {
	if len(rec) < 3 || len(rec) > 6 {
		return store.Node{}, fmt.Errorf("%d fields, want client,branch,zerotier[,kargs[,kernel[,efi_binary]]]", len(rec))
	}
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	mac, err := store.ParseMAC(rec[0])
	if err != nil {
		return store.Node{}, err
	}
	farm, err := strconv.ParseUint(rec[2], 10, 64)
	if err != nil || farm == 0 {
		return store.Node{}, fmt.Errorf("farm id %q: want a positive integer", rec[2])
	}
	n := store.Node{MAC: mac, Network: rec[1], Farm: farm}
	if len(rec) > 3 {
		n.Args = rec[3]
	}
	if len(rec) > 4 {
		n.Kernel = rec[4]
	}
	if len(rec) > 5 {
		n.EFIBinary = rec[5]
	}
	return n, nil
}

// WriteNodesCSV writes nodes in the form ParseNodesCSV reads.
func WriteNodesCSV(w io.Writer, nodes []store.Node) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, n := range nodes {
		if err := cw.Write([]string{n.MAC, n.Network, strconv.FormatUint(n.Farm, 10), n.Args, n.Kernel, n.EFIBinary}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
