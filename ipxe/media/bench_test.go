package media

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// benchInputs prefers the real Debian inputs (sizes as served), else synthetic ones.
func benchInputs(b *testing.B) inputSet {
	if in, ok := debianInputs(b); ok {
		return in
	}
	b.Log("Debian inputs missing: benchmarking synthetic inputs")
	return syntheticInputs(b)
}

// BenchmarkBuild: per kind, a cache miss (a new script each time, the cache off) and a
// cache hit (the same script).
//
//	go test -run '^$' -bench . -benchmem ./ipxe/media/
func BenchmarkBuild(b *testing.B) {
	in := benchInputs(b)
	for _, cached := range []bool{false, true} {
		cfg := in.cfg
		if !cached {
			cfg.CacheBytes = -1
		}
		bl, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range Kinds() {
			name := fmt.Sprintf("%s/uncached", k)
			if cached {
				name = fmt.Sprintf("%s/cached", k)
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				script := []byte(testScript)
				if _, err := bl.Build(ctx, k, script, Options{}); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := bl.Build(ctx, k, script, Options{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBuildAndRead: an uncached build plus reading every byte of the medium once
// (into a reused buffer), the work of serving it once.
func BenchmarkBuildAndRead(b *testing.B) {
	in := benchInputs(b)
	in.cfg.CacheBytes = -1
	bl, err := New(in.cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range Kinds() {
		b.Run(string(k), func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				m, err := bl.Build(context.Background(), k, []byte(testScript), Options{})
				if err != nil {
					b.Fatal(err)
				}
				if int64(cap(buf)) < m.Size() {
					buf = make([]byte, m.Size())
				}
				if _, err := m.ReadAt(buf[:m.Size()], 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExternal builds the same ISO and ESP with xorriso and mtools
// (testdata/xorriso-mtools.sh), for comparison in the same run.
func BenchmarkExternal(b *testing.B) {
	in := benchInputs(b)
	for _, tool := range []string{"xorriso", "mformat"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed", tool)
		}
	}
	dir := b.TempDir()
	script := filepath.Join(dir, "autoexec.ipxe")
	if err := os.WriteFile(script, []byte(testScript), 0o644); err != nil {
		b.Fatal(err)
	}
	isolinux, bios := in.cfg.IsolinuxDir, in.cfg.SyslinuxBIOSDir
	if isolinux == "" {
		isolinux = DefaultIsolinuxDir
	}
	if bios == "" {
		bios = DefaultSyslinuxBIOS
	}
	for _, kind := range []string{"iso", "uefimg"} {
		b.Run(kind, func(b *testing.B) {
			out := filepath.Join(dir, "out."+kind)
			for i := 0; i < b.N; i++ {
				cmd := exec.Command("testdata/xorriso-mtools.sh", kind, out, in.cfg.IPXEDir, isolinux, bios, script)
				if o, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v\n%s", err, o)
				}
			}
		})
	}
}

// BenchmarkNew: the one-time cost at start (every template built and checked).
func BenchmarkNew(b *testing.B) {
	in := benchInputs(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := New(in.cfg); err != nil {
			b.Fatal(err)
		}
	}
}
