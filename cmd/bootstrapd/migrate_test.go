package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// predecessorDB builds 0-bootstrap's database from the migrate package's testdata with the
// sqlite3 program.
func predecessorDB(t *testing.T) string {
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
		sql, err := os.ReadFile(filepath.Join("internal", "migrate", "testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sqlite3, "-bail", db)
		cmd.Stdin = bytes.NewReader(sql)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sqlite3 < %s: %v %s", f, err, out)
		}
	}
	return db
}

func TestMigrate(t *testing.T) {
	db := predecessorDB(t)
	d := startDaemon(t)
	old := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(old, "net"), 0o755))
	must(os.WriteFile(filepath.Join(old, "zero-os-v3.4.efi"), []byte("MZ v3.4"), 0o644))
	must(os.WriteFile(filepath.Join(old, "zero-os-v3.5.efi"), []byte("MZ v3.5"), 0o644))
	must(os.Symlink("../zero-os-v3.4.efi", filepath.Join(old, "net", "production.efi")))
	must(os.Symlink("../zero-os-v3.5.efi", filepath.Join(old, "net", "testing.efi")))
	must(os.Symlink("../zero-os-v3.5.efi", filepath.Join(old, "net", "staging.efi")))

	migrate := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"migrate", "--config", d.cfgFile, "--db", db, "--kernels", old}, args...), &out, &out)
		return out.String(), err
	}
	export := func() string {
		t.Helper()
		out, err := d.cli(t, "node", "export")
		must(err)
		return out
	}
	before := export()

	// Unmappable rows: every one listed with its row number, and nothing changes.
	out, err := migrate()
	if err == nil {
		t.Fatalf("migrate with unmappable rows succeeded:\n%s", out)
	}
	for _, want := range []string{"8 cannot be taken over", "--skip-unmappable", `row 5 (client "52:54:00:00:00:05"): farm id`, `row 6 (client "not-a-mac")`,
		`row 7 (client "52:54:00:00:00:07"): branch "staging"`, "row 8 ", "row 9 ", "row 10 ", "row 11 ", "net/staging.efi"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if got := export(); got != before {
		t.Fatalf("records changed although migrate refused:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "kernels", "zero-os-v3.4.efi")); !os.IsNotExist(err) {
		t.Fatalf("a kernel was uploaded although migrate refused: %v", err)
	}

	// A dry run lists, changes nothing.
	out, err = migrate("--skip-unmappable", "--dry-run")
	if err != nil || !strings.Contains(out, "4 node records would be imported") || !strings.Contains(out, "kernel zero-os-v3.4.efi would be uploaded") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if got := export(); got != before {
		t.Fatalf("records changed by a dry run:\n%s", got)
	}

	out, err = migrate("--skip-unmappable")
	if err != nil || !strings.Contains(out, "4 node records imported (4 new, 0 updated), 2 kernels uploaded (0 already there), 2 network links set (0 already), 8 skipped") {
		t.Fatalf("migrate --skip-unmappable: %v\n%s", err, out)
	}
	after := export()
	for _, want := range []string{
		"52:54:00:00:00:01,prod,1234,,", "52:54:00:00:00:02,test,42,console=ttyS0,",
		"52:54:00:00:00:03,dev,7,zos-debug console=tty1,", "52:54:00:00:00:04,qa,99,,",
	} {
		if !strings.Contains(after, want) {
			t.Errorf("export lacks %q:\n%s", want, after)
		}
	}
	if strings.Count(after, "\n") != 5 {
		t.Errorf("export holds other records:\n%s", after)
	}
	for link, want := range map[string]string{"prod.efi": "../zero-os-v3.4.efi", "test.efi": "../zero-os-v3.5.efi"} {
		if got, _ := os.Readlink(filepath.Join(d.dir, "kernels", "net", link)); got != want {
			t.Errorf("net/%s -> %q, want %q", link, got, want)
		}
	}
	// The migrated node boots: its script carries its farm and arguments, and its kernel.
	resp, err := http.Get(d.base + "/provision/52:54:00:00:00:02")
	must(err)
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(script), "/kernel/net/test.efi\n") ||
		!strings.Contains(string(script), "${kernel}?mac=${net${netidx}/mac:hexhyp} nomodeset panic=7200 version=v3 runmode=test farmer_id=42 console=ttyS0 ||") {
		t.Fatalf("migrated node's script:\n%s", script)
	}
	resp, err = http.Get(d.base + "/kernel/net/test.efi")
	must(err)
	kernel, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(kernel) != "MZ v3.5" {
		t.Fatalf("net/test.efi serves %q", kernel)
	}

	// Again: nothing more changes.
	out, err = migrate("--skip-unmappable")
	if err != nil || !strings.Contains(out, "4 node records imported (0 new, 4 updated), 0 kernels uploaded (2 already there), 0 network links set (2 already)") {
		t.Fatalf("second migrate: %v\n%s", err, out)
	}
	if got := export(); got != after {
		t.Fatalf("the second run changed the records:\n%s\nwas\n%s", got, after)
	}

	// A kernel of the same name with other bytes is a conflict found before anything changes.
	must(os.WriteFile(filepath.Join(old, "zero-os-v3.5.efi"), []byte("MZ v3.5 rebuilt"), 0o644))
	if out, err := migrate("--alias", "staging=test"); err == nil || !strings.Contains(err.Error(), "the appliance has a different kernel of this name") {
		t.Fatalf("conflicting kernel: %v\n%s", err, out)
	}
}

func TestMigrateUsage(t *testing.T) {
	tests := map[string][]string{
		"nothing to read": {"migrate"},
		"bad alias":       {"migrate", "--db", "x", "--alias", "staging"},
		"extra argument":  {"migrate", "--db", "x", "y"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), args, &out, &out); err == nil {
				t.Fatalf("%v succeeded:\n%s", args, out.String())
			}
		})
	}
}
