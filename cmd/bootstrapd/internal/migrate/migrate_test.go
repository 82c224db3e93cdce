package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/threefoldtech/bootstrapd/store"
)

var testNetworks = map[string]string{"prod": "production (v3)", "test": "testing (v3)", "dev": "development (v3)", "qa": "qa-network (v3)"}

// FixtureDB builds 0-bootstrap's database from testdata/schema.sql and testdata/rows.sql
// with the sqlite3 program, as 0-bootstrap's README says to.
func fixtureDB(t *testing.T) string {
	t.Helper()
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("BOOTSTRAPD_REQUIRE_TOOLS") != "" {
			t.Fatalf("sqlite3 not installed (packaging/deps.sh installs it): %v", err)
		}
		t.Skipf("sqlite3 not installed: %v", err)
	}
	db := filepath.Join(t.TempDir(), "bootstrap.sqlite3")
	for _, f := range []string{"schema.sql", "rows.sql"} {
		sql, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sqlite3, "-bail", db)
		cmd.Stdin = strings.NewReader(string(sql))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sqlite3 < %s: %v %s", f, err, out)
		}
	}
	return db
}

func TestReadDBAndMap(t *testing.T) {
	db := fixtureDB(t)
	rows, err := ReadDB(context.Background(), "", db)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 11 || rows[2] != (Row{RowID: 3, Client: "525400000003", Branch: "development", Zerotier: "7", Kargs: "zos-debug  console=tty1"}) ||
		rows[3].Kargs != "" || rows[10].Branch != "" {
		t.Fatalf("rows: %+v", rows)
	}
	mapped, bad := Map(rows, testNetworks, DefaultAliases())
	want := []Mapped{
		{1, store.Node{MAC: "52:54:00:00:00:01", Network: "prod", Farm: 1234}},
		{2, store.Node{MAC: "52:54:00:00:00:02", Network: "test", Farm: 42, Args: "console=ttyS0"}},
		{3, store.Node{MAC: "52:54:00:00:00:03", Network: "dev", Farm: 7, Args: "zos-debug console=tty1"}},
		{4, store.Node{MAC: "52:54:00:00:00:04", Network: "qa", Farm: 99}},
	}
	if !reflect.DeepEqual(mapped, want) {
		t.Errorf("mapped:\n%+v\nwant\n%+v", mapped, want)
	}
	wantBad := map[int64]string{
		5:  `farm id (zerotier column) "farm-12" is not a positive integer`,
		6:  "MAC",
		7:  `branch "staging" is not in the alias list (add --alias staging=<network>)`,
		8:  "kargs:",
		9:  "MAC 52:54:00:00:00:01 is also row 1",
		10: `farm id (zerotier column) "0"`,
		11: "no branch",
	}
	if len(bad) != len(wantBad) {
		t.Fatalf("problems: %v", bad)
	}
	for _, p := range bad {
		if w, ok := wantBad[p.RowID]; !ok || !strings.Contains(p.Reason, w) || !strings.HasPrefix(p.String(), "row ") {
			t.Errorf("problem %v, want row %d with %q", p, p.RowID, w)
		}
	}
}

func TestReadDBErrors(t *testing.T) {
	db := fixtureDB(t)
	dir := t.TempDir()
	notDB := filepath.Join(dir, "text.sqlite3")
	if err := os.WriteFile(notDB, []byte("not a database at all, just text that is long enough"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		sqlite3, file string
		path          string // PATH for the lookup
		want          string
	}{
		"no sqlite3":       {"", db, dir, "sqlite3 program is not installed (apt install sqlite3)"},
		"bad sqlite3 path": {filepath.Join(dir, "nope"), db, os.Getenv("PATH"), "read"},
		"missing file":     {"", filepath.Join(dir, "nope.sqlite3"), os.Getenv("PATH"), "0-bootstrap database"},
		"directory":        {"", dir, os.Getenv("PATH"), "not a regular file"},
		"not a database":   {"", notDB, os.Getenv("PATH"), "file is not a database"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			_, err := ReadDB(context.Background(), tc.sqlite3, tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadDB = %v, want %q", err, tc.want)
			}
			if name == "no sqlite3" && !errors.Is(err, ErrNoSQLite) {
				t.Fatalf("%v is not ErrNoSQLite", err)
			}
		})
	}
}

func TestParseRows(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []Row
		err  string
	}{
		"empty table": {"", nil, ""},
		"numbers":     {`[{"rowid":7,"client":"a","branch":"prod","zerotier":12,"kargs":null}]`, []Row{{7, "a", "prod", "12", ""}}, ""},
		"missing col": {`[{"rowid":1}]`, []Row{{RowID: 1}}, ""},
		"no rowid":    {`[{"client":"a"}]`, nil, "rowid"},
		"bad rowid":   {`[{"rowid":1.5}]`, nil, "rowid"},
		"object col":  {`[{"rowid":1,"client":{"x":1}}]`, nil, "client"},
		"trailing":    {`[] []`, nil, "data after"},
		"not json":    {`Error: no such table`, nil, "sqlite3 output"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseRows([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRows = %v, want error %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseRows = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// FuzzParseRows: any input parses or fails cleanly, and what parses survives a round trip
// through the form sqlite3 writes.
func FuzzParseRows(f *testing.F) {
	f.Add([]byte(`[{"rowid":1,"client":"52:54:00:00:00:01","branch":"production","zerotier":"1234","kargs":""}]`))
	f.Add([]byte(`[{"rowid":2,"client":null,"branch":"qa","zerotier":7,"kargs":"a b"}]`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := ParseRows(b)
		if err != nil {
			return
		}
		objs := make([]map[string]any, len(rows))
		for i, r := range rows {
			objs[i] = map[string]any{"rowid": r.RowID, "client": r.Client, "branch": r.Branch, "zerotier": r.Zerotier, "kargs": r.Kargs}
		}
		again, err := json.Marshal(objs)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseRows(again)
		if err != nil || (len(rows) > 0 && !reflect.DeepEqual(back, rows)) {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", rows, again, back, err)
		}
	})
}

func TestScanKernels(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, "net", name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("zero-os-a.efi", "MZ a")
	write("zero-os-b.efi", "MZ b")
	write("empty.efi", "")
	write(".hidden", "x")
	if err := os.Symlink("zero-os-a.efi", filepath.Join(dir, "top-link.efi")); err != nil {
		t.Fatal(err)
	}
	link("../zero-os-a.efi", "production.efi")
	link("../zero-os-a.efi", "prod.efi")    // prod too, the same kernel (but see mainnet.efi)
	link("../zero-os-b.efi", "testing.efi") // test
	link("../zero-os-b.efi", "staging.efi") // no alias
	link("/boot/vmlinuz", "dev.efi")        // absolute
	link("../../etc/passwd", "qa.efi")      // outside
	link("../zero-os-b.efi", "mainnet.efi") // prod again, another kernel: prod gets no link
	link("../zero-os-a.efi", "devnet.efi")  // dev, and both dev links agree
	link("../zero-os-a.efi", "development.efi")
	write("net/readme.txt", "not a link")

	files, links, bad, err := ScanKernels(dir, testNetworks, DefaultAliases())
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []KernelFile{{"zero-os-a.efi", filepath.Join(dir, "zero-os-a.efi")}, {"zero-os-b.efi", filepath.Join(dir, "zero-os-b.efi")}}
	if !reflect.DeepEqual(files, wantFiles) {
		t.Errorf("files %+v", files)
	}
	wantLinks := []Link{{"dev", "zero-os-a.efi", "net/development.efi"}, {"test", "zero-os-b.efi", "net/testing.efi"}}
	if !reflect.DeepEqual(links, wantLinks) {
		t.Errorf("links %+v", links)
	}
	wantBad := map[string]string{
		"empty.efi":          "empty file",
		"net/staging.efi":    "alias list",
		"net/dev.efi":        "not at a kernel file",
		"net/qa.efi":         "not at a kernel file",
		"net/mainnet.efi":    "network prod is also net/prod.efi",
		"net/prod.efi":       "network prod is also net/mainnet.efi",
		"net/production.efi": "network prod is also net/mainnet.efi",
		"net/readme.txt":     "not a <network>.efi symlink",
	}
	if len(bad) != len(wantBad) {
		t.Fatalf("problems: %v", bad)
	}
	for _, p := range bad {
		if !strings.Contains(p.Reason, wantBad[p.Client]) || wantBad[p.Client] == "" {
			t.Errorf("problem %v, want %q", p, wantBad[p.Client])
		}
	}
}
