// Package crasher holds a fuzz target with a bug the fuzzer finds in a second: the check
// that test/fuzz/run.sh still fails on a real finding.
package crasher

import "testing"

func FuzzCrash(f *testing.F) {
	f.Add([]byte("seed"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 2 && b[0] == 'b' && b[1] == 'u' && b[2] == 'g' {
			t.Fatal("found the bug")
		}
	})
}
