package ipxelog

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threefoldtech/bootstrapd/store/timeline"
)

func TestParse(t *testing.T) {
	tests := map[string]struct {
		in   string
		want Message
		bad  bool
	}{
		// The exact shapes src/net/udp/syslog.c's syslog_send writes.
		"iPXE, no hostname":   {in: "<6>ipxe: No configuration methods succeeded (https://ipxe.org/040ee186)", want: Message{6, "", "No configuration methods succeeded (https://ipxe.org/040ee186)"}},
		"iPXE, hostname":      {in: "<6>node1 ipxe: Connection timed out", want: Message{6, "node1", "Connection timed out"}},
		"iPXE, host.domain":   {in: "<3>node1.farm.lan ipxe: Exec format error", want: Message{3, "node1.farm.lan", "Exec format error"}},
		"facility kept apart": {in: "<134>ipxe: x", want: Message{6, "", "x"}},
		"control characters":  {in: "<6>ipxe: a\x1b[31mb\tc\r", want: Message{6, "", "a [31mb c"}},
		"invalid UTF-8":       {in: "<6>ipxe: a\xffb", want: Message{6, "", "a b"}},
		"empty line":          {in: "<6>ipxe: ", want: Message{6, "", ""}},
		"long line cut":       {in: "<6>ipxe: " + strings.Repeat("é", 200), want: Message{6, "", strings.Repeat("é", 128)}},
		"another program":     {in: "<13>Nov 30 12:00:00 host sshd[1]: hello", bad: true},
		"no priority":         {in: "ipxe: hello", bad: true},
		"priority too big":    {in: "<192>ipxe: x", bad: true},
		"signed priority":     {in: "<+6>ipxe: x", bad: true},
		"unterminated":        {in: "<6ipxe: x", bad: true},
		"empty":               {in: "", bad: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.bad {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"<6>ipxe: hello", "<6>h.d ipxe: x\x1b[0m", "<191>ipxe: ", "<0>a b ipxe: c"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		for _, s := range []string{m.Line, m.Host} {
			if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("unsafe output %q from %q", s, b)
			}
		}
		if len(m.Line) > MaxLine || m.Severity < 0 || m.Severity > 7 {
			t.Fatalf("out of bounds: %+v", m)
		}
	})
}

func TestNeighbours(t *testing.T) {
	n := NewNeighbours(2)
	a1, a2, a3 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	n.Observe(timeline.Event{MAC: "52:54:00:00:00:01", IP: a1})
	n.Observe(timeline.Event{MAC: "52:54:00:00:00:02", IP: a2})
	n.Observe(timeline.Event{MAC: "52:54:00:00:00:09"}) // no address: ignored
	n.Observe(timeline.Event{MAC: "52:54:00:00:00:03", IP: netip.AddrFrom16(a3.As16())})
	for ip, want := range map[netip.Addr]string{a1: "", a2: "52:54:00:00:00:02", a3: "52:54:00:00:00:03"} {
		if got, ok := n.Lookup(ip); got != want || ok != (want != "") {
			t.Errorf("Lookup(%s) = %q, %v; want %q (the oldest is forgotten at the bound)", ip, got, ok, want)
		}
	}
}

// receiver starts a Receiver on loopback whose timeline is a channel.
func receiver(t *testing.T, cfg Config) (*Receiver, chan timeline.Event, net.Conn) {
	t.Helper()
	events := make(chan timeline.Event, 100)
	cfg.Addr = "127.0.0.1:0"
	cfg.Timeline = func(e timeline.Event) { events <- e }
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c, err := net.Dial("udp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return r, events, c
}

func TestReceiver(t *testing.T) {
	nb := NewNeighbours(10)
	r, events, c := receiver(t, Config{Neighbours: nb, Burst: 3, Rate: 0.001})
	send := func(s string) {
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	// Before the node fetched its script the address is unknown: the line is dropped.
	send("<6>ipxe: too early")
	waitCount(t, r, resultUnknownSource, 1)
	nb.Observe(timeline.Event{MAC: "52:54:00:12:34:56", Stage: timeline.ScriptServed, IP: netip.MustParseAddr("127.0.0.1")})
	send("<6>ipxe: Connection timed out (https://ipxe.org/4c0a6092)")
	select {
	case e := <-events:
		if e.MAC != "52:54:00:12:34:56" || e.Stage != timeline.IPXELog || e.Detail != "Connection timed out (https://ipxe.org/4c0a6092)" || e.IP.String() != "127.0.0.1" {
			t.Errorf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no timeline event")
	}
	send("garbage")
	waitCount(t, r, resultMalformed, 1)
	// The burst of 3 is spent (too early, the line, garbage): the next is rate-limited.
	send("<6>ipxe: flood")
	waitCount(t, r, resultRateLimited, 1)
	if n := testutil.ToFloat64(r.lines.WithLabelValues(resultRecorded)); n != 1 {
		t.Errorf("recorded %v, want 1", n)
	}
}

func waitCount(t *testing.T, r *Receiver, result string, want float64) {
	t.Helper()
	for i := 0; testutil.ToFloat64(r.lines.WithLabelValues(result)) != want; i++ {
		if i == 500 {
			t.Fatalf("%s = %v, want %v", result, testutil.ToFloat64(r.lines.WithLabelValues(result)), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The limiter's table is bounded: a new source takes an idle source's place, and is refused
// while every tracked source is busy.
func TestRateLimiterBound(t *testing.T) {
	now := time.Unix(1000, 0)
	r := &Receiver{cfg: Config{MaxSources: 2, Rate: 1, Burst: 2, Now: func() time.Time { return now }}, buckets: map[netip.Addr]*bucket{}}
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	steps := []struct {
		src     netip.Addr
		advance time.Duration
		want    bool
	}{
		{a, 0, true}, {b, 0, true}, // two sources, each one token left
		{c, 0, false},               // table full, nobody idle
		{a, 0, true}, {a, 0, false}, // a's burst is spent
		{c, 2 * time.Second, true}, // a and b refilled: c takes a place
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := r.allow(s.src); got != s.want {
			t.Errorf("step %d (%s): allow = %v, want %v", i, s.src, got, s.want)
		}
		if len(r.buckets) > 2 {
			t.Fatalf("step %d: %d buckets", i, len(r.buckets))
		}
	}
}
