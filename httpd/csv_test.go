package httpd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/threefoldtech/bootstrapd/store"
)

func TestParseNodesCSV(t *testing.T) {
	accept := func(*store.Node) error { return nil }
	tests := map[string]struct {
		in    string
		nodes []store.Node
		lines []int
	}{
		"predecessor rows": {
			in:    "client,branch,zerotier,kargs\naa:bb:cc:dd:ee:01,prod,12,\nAA-BB-CC-DD-EE-02,test,34,console=ttyS0 x=1\n",
			nodes: []store.Node{{MAC: "aa:bb:cc:dd:ee:01", Network: "prod", Farm: 12}, {MAC: "aa:bb:cc:dd:ee:02", Network: "test", Farm: 34, Args: "console=ttyS0 x=1"}},
		},
		"no header, kernel column": {
			in:    "aa:bb:cc:dd:ee:01,prod,12,,zos.efi\n",
			nodes: []store.Node{{MAC: "aa:bb:cc:dd:ee:01", Network: "prod", Farm: 12, Kernel: "zos.efi"}},
		},
		"bad rows by line": {
			in:    "client,branch,zerotier,kargs\naa:bb:cc:dd:ee:01,prod,12,\nbad,prod,1,\naa:bb:cc:dd:ee:03,prod,-4,\naa:bb:cc:dd:ee:01,prod,1,\nonly-two,fields\n",
			lines: []int{3, 4, 5, 6},
		},
		"quoted field with newline": {
			in:    "aa:bb:cc:dd:ee:01,prod,12,\"a\nb\"\n",
			nodes: []store.Node{{MAC: "aa:bb:cc:dd:ee:01", Network: "prod", Farm: 12, Args: "a\nb"}},
		},
		"broken quote": {in: "aa:bb:cc:dd:ee:01,prod,12,\"a\n", lines: []int{1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			nodes, bad := ParseNodesCSV(strings.NewReader(tc.in), accept)
			var lines []int
			for _, b := range bad {
				lines = append(lines, b.Line)
			}
			if diff := cmp.Diff(tc.lines, lines); diff != "" {
				t.Fatalf("bad lines (-want +got):\n%s\n%+v", diff, bad)
			}
			if diff := cmp.Diff(tc.nodes, nodes, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("nodes (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzNodesCSVRoundTrip(f *testing.F) {
	f.Add("aa:bb:cc:dd:ee:01,prod,12,console=ttyS0\n")
	f.Add("client,branch,zerotier,kargs\n\"aa-bb-cc-dd-ee-02\",test,3,\"x,y\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		nodes, bad := ParseNodesCSV(strings.NewReader(in), func(*store.Node) error { return nil })
		if len(bad) > 0 {
			return
		}
		var buf bytes.Buffer
		if err := WriteNodesCSV(&buf, nodes); err != nil {
			t.Fatal(err)
		}
		again, bad := ParseNodesCSV(&buf, func(*store.Node) error { return nil })
		if len(bad) > 0 {
			t.Fatalf("export of %q does not parse: %+v", in, bad)
		}
		if diff := cmp.Diff(nodes, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", in, diff)
		}
	})
}
