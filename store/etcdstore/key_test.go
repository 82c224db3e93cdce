package etcdstore

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzEventTime: the sweep reads an event's time from its key, which any appliance with
// access to etcd wrote. Whatever the key, it never panics, and a time it accepts is the
// one the key's first 16 hex digits spell.
func FuzzEventTime(f *testing.F) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 5, time.UTC)
	for _, s := range []string{
		fmt.Sprintf("%016x-a-1", uint64(at.UnixNano())), "", "0", "ffffffffffffffff", "zzzzzzzzzzzzzzzz-a",
		"+000000000000000", "0000000000000000000000", "18_c2d0e1b2a3f40",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		got, ok := eventTime(rest)
		if !ok {
			return
		}
		if back := fmt.Sprintf("%016x", uint64(got.UnixNano())); !strings.EqualFold(back, rest[:16]) {
			t.Fatalf("eventTime(%q) = %v, which writes back as %s", rest, got, back)
		}
	})
}

func TestEventTime(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 5, time.UTC)
	for name, tc := range map[string]struct {
		rest string
		want time.Time
		ok   bool
	}{
		"written": {fmt.Sprintf("%016x-a-1", uint64(at.UnixNano())), at, true},
		"short":   {"00ff", time.Time{}, false},
		"not hex": {"zzzzzzzzzzzzzzzz-a", time.Time{}, false},
		"signed":  {"+000000000000000-a", time.Time{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := eventTime(tc.rest)
			if ok != tc.ok || !got.Equal(tc.want) {
				t.Fatalf("eventTime(%q) = %v, %v; want %v, %v", tc.rest, got, ok, tc.want, tc.ok)
			}
		})
	}
}
