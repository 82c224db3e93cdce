package dhcpd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
)

// Flood parameters. The floor is what one host on the LAN sends without trying hard; the
// sender aims above it so that pacing jitter does not take it below.
const (
	// floodFloor is the rate the sender must reach in the soak, or the test fails. The short
	// form (make test, where -race and the other packages' tests share two CPUs) asks for
	// shortFloor: it still floods far beyond any LAN, and cannot fail for a busy machine.
	floodFloor  = 10000
	shortFloor  = 3000
	floodTarget = 12000
	// After a stall (the machine's or the process's) the sender catches up at most this much
	// at once. Sending all it missed in one burst would overflow the server's socket queue
	// with it, real client's request included: a property of UDP, not of the server.
	floodMaxLag = 5 * time.Millisecond
	floodProbe  = time.Second // a real PXE client asks this often and must be answered within it
)

// TestFloodNetns is a reliability test: while a host on the LAN floods ports 67 and 4011 with
// random bytes, cut-off requests, requests whose options overrun the datagram or loop, and
// 64 KiB datagrams, a real PXE client asking once a second gets its proxy offer within a
// second every time, the server keeps running, and every flood datagram is counted under its
// reason. It runs for 5 s, or 60 s with BOOTSTRAPD_SOAK=1, on real sockets in network
// namespaces (root only).
func TestFloodNetns(t *testing.T) {
	if cli := os.Getenv(netnsChildEnv); cli != "" {
		floodChild(t, cli)
		return
	}
	requireNetns(t)
	srvNS, cliNS := netnsLinks(t)
	runInNetns(t, srvNS, cliNS)
}

func floodChild(t *testing.T, cliNS string) {
	dur := 5 * time.Second
	if os.Getenv("BOOTSTRAPD_SOAK") == "1" {
		dur = time.Minute
	}
	cs := openClientSockets(cliNS)
	if cs.setupErr != nil {
		t.Fatal(cs.setupErr)
	}
	defer cs.c0.Close()
	defer cs.c1.Close()
	defer cs.pxe.Close()
	var flood net.PacketConn
	if err := inNamespace(cliNS, func() (err error) {
		flood, err = net.ListenPacket("udp4", "10.77.0.50:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer flood.Close()

	// Info and above, the default level: Debug would log every flood datagram, and what
	// reaches Info is what must not grow with the flood.
	reg := prometheus.NewRegistry()
	log, records := newRecordLog(t, slog.LevelInfo)
	srv, err := New(Config{Files: testCatalogue(t), Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()

	// The server is up once it answers; the flood starts from there.
	if lat, err := probe(cs.c0, 0); err != nil {
		t.Fatalf("no offer before the flood: %v", err)
	} else {
		t.Logf("offer before the flood in %v", lat)
	}
	before := settle(t, reg, 1)

	seed := uint64(time.Now().UnixNano())
	t.Logf("flood seed %d, %v at %d datagrams/s (floor %d/s)", seed, dur, floodTarget, floodFloor)
	packets := floodPackets(t, rand.New(rand.NewPCG(seed, seed>>1)))
	res := make(chan floodResult, 1)
	start := time.Now()
	go func() { res <- sendFlood(flood, packets, start, dur) }()

	// The real client, once a second while the flood runs.
	var lats []time.Duration
	var missed []string
	time.Sleep(floodProbe / 2)
	for xid := byte(1); time.Since(start) < dur-floodProbe/2; xid++ {
		next := time.Now().Add(floodProbe)
		lat, err := probe(cs.c0, xid)
		if err != nil {
			missed = append(missed, fmt.Sprintf("probe %d at %v: %v", xid, time.Since(start).Round(time.Millisecond), err))
		} else {
			lats = append(lats, lat)
		}
		time.Sleep(time.Until(next))
	}
	r := <-res

	select {
	case err := <-served:
		t.Fatalf("Serve returned during the flood: %v", err)
	default:
	}
	// Still answering once the flood has gone through the queues.
	if lat, err := probe(cs.c0, 0xff); err != nil {
		missed = append(missed, fmt.Sprintf("probe after the flood: %v", err))
	} else {
		lats = append(lats, lat)
	}
	after := settle(t, reg, 1+len(lats))

	rate := float64(r.sent) / r.elapsed.Seconds()
	d := func(k string) float64 { return after[k] - before[k] }
	drops := map[string]float64{}
	for k := range after {
		if reason, ok := strings.CutPrefix(k, "dropped "); ok && d(k) > 0 {
			drops[reason] = d(k)
		}
	}
	read, dropped, answered := d("read"), d("dropped"), d("replies binary")
	worst := slices.Max(append([]time.Duration{0}, lats...))
	t.Logf("flood: %d datagrams (%d MB) in %v = %.0f/s sent; %d send errors (first: %v)",
		r.sent, r.bytes>>20, r.elapsed.Round(time.Millisecond), rate, r.failed, r.firstErr)
	t.Logf("server read %.0f datagrams (%.0f/s), %.0f more were lost to a full socket queue; answered %.0f, "+
		"dropped %.0f; by reason: %s", read, read/r.elapsed.Seconds(), d("kernel queue full"), answered, dropped, formatDrops(drops))
	t.Logf("real client: %d offers, worst latency %v, median %v; missed %d",
		len(lats), worst, median(lats), len(missed))
	loud := 0
	for _, rec := range records() {
		if rec != "INFO proxy dhcp reply sent" {
			loud++
			t.Errorf("logged during the flood: %s", rec)
		}
	}
	t.Logf("log lines at Info or above: %d, all of them the client's offers", len(records())-loud)

	floor := shortFloor
	if os.Getenv("BOOTSTRAPD_SOAK") == "1" {
		floor = floodFloor
	}
	if rate < float64(floor) {
		t.Errorf("flood reached %.0f datagrams/s, below the %d/s floor: the test proves nothing at this rate", rate, floor)
	}
	for _, m := range missed {
		t.Errorf("real client without an offer within %v: %s", floodProbe, m)
	}
	if worst > floodProbe {
		t.Errorf("worst offer latency %v, want at most %v", worst, floodProbe)
	}
	if want := int(dur/floodProbe) - 1; len(lats) < want {
		t.Errorf("%d offers, want at least %d", len(lats), want)
	}
	if answered != float64(len(lats)) {
		t.Errorf("%v offers sent, want %d: something in the flood was answered", answered, len(lats))
	}
	if dropped != read-answered {
		t.Errorf("read %v, answered %v, but dropped %v: some datagrams were not counted", read, answered, dropped)
	}
	for _, reason := range []string{dropOversized, dropTruncated, dropMalformed, dropNotPXE} {
		if drops[reason] == 0 {
			t.Errorf("dropped{reason=%q} did not grow", reason)
		}
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return after cancel")
	}
}

type floodResult struct {
	sent, failed int
	bytes        int64
	elapsed      time.Duration
	firstErr     error
}

// sendFlood sends packets in turn, alternately to the server's ports 67 and 4011, at
// floodTarget datagrams a second from start until dur has passed.
func sendFlood(c net.PacketConn, packets [][]byte, start time.Time, dur time.Duration) floodResult {
	var r floodResult
	dst := []net.Addr{
		&net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 67},
		&net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 4011},
	}
	interval := time.Second / floodTarget
	// Paced against the clock rather than by sleeping per datagram: the scheduler wakes us
	// late and in bursts, and each wake-up sends what is due.
	for next := start; ; {
		now := time.Now()
		if r.elapsed = now.Sub(start); r.elapsed >= dur {
			return r
		}
		if now.Before(next) {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if now.Sub(next) > floodMaxLag {
			next = now.Add(-floodMaxLag)
		}
		next = next.Add(interval)
		i := r.sent + r.failed
		p := packets[i%len(packets)]
		if _, err := c.WriteTo(p, dst[i%2]); err != nil {
			r.failed++
			if r.firstErr == nil {
				r.firstErr = err
			}
			continue
		}
		r.sent++
		r.bytes += int64(len(p))
	}
}

// probe sends a PXE DISCOVER as OVMF's firmware would (option 60
// PXEClient:Arch:00007:UNDI:003000, option 93 = 7) by broadcast from port 68 on c, and waits
// up to floodProbe for the proxy offer to it.
func probe(c *ipv4.PacketConn, xid byte) (time.Duration, error) {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0xf1, 0x00, xid}
	req, err := dhcpv4.NewDiscovery(mac,
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{0xf1, 0, 0, xid}),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, byte(iana.EFI_X86_64)}))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := c.WriteTo(req.ToBytes(), nil, &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(start.Add(floodProbe))
	buf := make([]byte, 1500)
	for {
		n, _, _, err := c.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		rep, err := dhcpv4.FromBytes(buf[:n])
		if err == nil && rep.TransactionID == req.TransactionID && rep.MessageType() == dhcpv4.MessageTypeOffer {
			return time.Since(start), nil
		}
	}
}

// floodPackets builds the flood: every datagram is one the server must drop.
func floodPackets(t testing.TB, rnd *rand.Rand) [][]byte {
	pxe, err := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 0xee, 0, 1},
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}))
	if err != nil {
		t.Fatal(err)
	}
	discover := pxe.ToBytes()
	end := headerLen // index of the end option: a cut before it leaves a valid-looking prefix
	for end < len(discover) && discover[end] != 255 {
		if discover[end] == 0 {
			end++
			continue
		}
		end += 2 + int(discover[end+1])
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	kinds := []func() []byte{
		// Random bytes, short (truncated) and long (malformed: no magic cookie).
		func() []byte { return random(rnd.IntN(headerLen)) },
		func() []byte { return random(headerLen + rnd.IntN(maxRequestLen-headerLen)) },
		// A real PXE request cut anywhere before its end option.
		func() []byte { return bytes.Clone(discover[:rnd.IntN(end)]) },
		// An option whose length runs past the end of the datagram.
		func() []byte {
			b := append(bytes.Clone(discover[:end]), byte(rnd.IntN(254)+1), 255)
			return append(b, random(rnd.IntN(200))...)
		},
		// Option overload (52) pointing into sname and file that hold only option 52 again,
		// and a vendor class split over many option 60s: a parser that follows either loops
		// or grows. It decodes, and is dropped as no PXE client.
		func() []byte {
			b := bytes.Clone(discover[:headerLen])
			for i := 44; i+3 <= 236; i += 3 {
				copy(b[i:], []byte{52, 1, 3})
			}
			b = append(b, 53, 1, 1, 52, 1, 3)
			for range 1 + rnd.IntN(4) {
				b = append(append(b, 60, 255), bytes.Repeat([]byte("MSFT 5.0 "), 29)[:255]...)
			}
			return append(b, 255)
		},
	}
	out := make([][]byte, 0, 4096)
	for i := range cap(out) {
		if i%256 == 0 {
			// A whole request inside a 64 KiB datagram: cut to the read buffer it would
			// look valid, so it must be refused for its size.
			out = append(out, append(bytes.Clone(discover), make([]byte, 65507-len(discover))...))
			continue
		}
		out = append(out, kinds[rnd.IntN(len(kinds))]())
	}
	return out
}

// settle waits until the server's socket queues are empty, every datagram it read is counted,
// and it has counted replies binary offers (the counter follows the send, so a client can
// hold its offer before it moves), and returns the counters then: "dropped <reason>",
// "dropped" (all reasons), "read" (all received), "replies <kind>", and from the kernel
// "kernel read" (datagrams read from UDP sockets in this namespace, which are only the
// server's) and "kernel queue full" (datagrams lost to a full socket queue).
func settle(t *testing.T, reg *prometheus.Registry, replies int) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		queued := udpQueued(t)
		c := gatherCounters(t, reg)
		k := kernelStats(t)
		c["kernel read"] = float64(k["Udp InDatagrams"])
		c["kernel queue full"] = float64(k["Udp RcvbufErrors"])
		done := queued == 0 && c["read"] == c["kernel read"] && c["replies binary"] >= float64(replies)
		if done || time.Now().After(deadline) {
			if !done {
				t.Errorf("server not settled: %d bytes queued, read %v of %v datagrams, %v of %d offers counted",
					queued, c["read"], c["kernel read"], c["replies binary"], replies)
			}
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// udpQueued is the number of bytes waiting in the receive queues of this namespace's UDP
// sockets (/proc/net/udp, rx_queue); see kernelStats for why thread-self.
func udpQueued(t *testing.T) int64 {
	t.Helper()
	runtime.LockOSThread()
	b, err := os.ReadFile("/proc/thread-self/net/udp")
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for line := range strings.Lines(string(b)) {
		// sl local_address rem_address st tx_queue:rx_queue ...
		f := strings.Fields(line)
		if len(f) < 5 || f[0] == "sl" {
			continue
		}
		_, rx, _ := strings.Cut(f[4], ":")
		q, err := strconv.ParseInt(rx, 16, 64)
		if err != nil {
			t.Fatalf("/proc/net/udp: %q: %v", line, err)
		}
		n += q
	}
	return n
}

// gatherCounters reads the dhcpd counters from reg.
func gatherCounters(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			switch mf.GetName() {
			case "bootstrapd_dhcp_packets_received_total":
				out["read"] += v
			case "bootstrapd_dhcp_dropped_total":
				out["dropped"] += v
				out["dropped "+m.GetLabel()[0].GetValue()] = v
			case "bootstrapd_dhcp_replies_total":
				out["replies "+m.GetLabel()[0].GetValue()] = v
			}
		}
	}
	return out
}

func formatDrops(d map[string]float64) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%.0f", k, d[k]))
	}
	return strings.Join(parts, " ")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// kernelStats reads the IP and UDP counters of the server's namespace, as "Udp RcvbufErrors"
// and so on. It reads them for this thread: /proc/net is the main thread's view, and the main
// thread may be one that inNamespace moved into the client namespace (Go keeps it, wedged,
// rather than end the main thread).
func kernelStats(t *testing.T) map[string]int64 {
	t.Helper()
	runtime.LockOSThread()
	b, err := os.ReadFile("/proc/thread-self/net/snmp")
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string][]string{}
	out := map[string]int64{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		proto := strings.TrimSuffix(f[0], ":")
		if names[proto] == nil {
			names[proto] = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(names[proto]) {
				out[proto+" "+names[proto][i]], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}
