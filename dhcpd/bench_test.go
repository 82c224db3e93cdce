package dhcpd

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// BenchmarkDecide is the pure decision for real captured requests: parse, classify, build
// and serialise the reply.
func BenchmarkDecide(b *testing.B) {
	pol := testPolicy(b)
	for _, bc := range []struct {
		name, file string
		nth        int
	}{
		{"ovmf-discover", "ovmf.pcap", 0},
		{"ipxe-discover", "ovmf.pcap", 1},
	} {
		d := fromCapture(b, bc.file, 67, dhcpv4.MessageTypeDiscover, bc.nth)
		at := capArrival(roleDHCP, d)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if dec := decide(d.Data, at, pol); dec.Reply == nil {
					b.Fatalf("no reply: %+v", dec.Drop)
				}
			}
		})
	}
}

// BenchmarkServeLoopback is the whole serve loop over real sockets: OVMF's captured port
// 4011 REQUEST sent to a running Server on 127.0.0.1 and its ACK read back, with the
// timeline sink and metrics of the daemon. "lockstep" waits for each answer (one client's
// latency); "window-N" keeps N requests in flight (the loop's throughput, as in a storm).
func BenchmarkServeLoopback(b *testing.B) {
	req := fromCapture(b, "ovmf-4011.pcap", 4011, dhcpv4.MessageTypeRequest, 0).Data
	for _, window := range []int{1, 64} {
		name := "lockstep"
		if window > 1 {
			name = fmt.Sprintf("window-%d", window)
		}
		b.Run(name, func(b *testing.B) {
			var events atomic.Int64
			_, port := loopbackServer(b, Config{HTTPPort: 8080, Logger: slog.New(slog.DiscardHandler),
				Registerer: prometheus.NewRegistry(), Timeline: func(timeline.Event) { events.Add(1) }})
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if uc, ok := c.(*net.UDPConn); ok {
				_ = uc.SetReadBuffer(4 << 20)
			}
			to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(port+2)))
			buf := make([]byte, 1500)
			sent, got := 0, 0
			b.ReportAllocs()
			b.ResetTimer()
			for got < b.N {
				for sent < b.N && sent-got < window {
					if _, err := c.WriteTo(req, to); err != nil {
						b.Fatal(err)
					}
					sent++
				}
				// A reply lost to a full queue is sent again after a short wait.
				_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, _, err := c.ReadFrom(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						sent = got
						continue
					}
					b.Fatal(err)
				}
				got++
			}
			b.StopTimer()
			// The sink is called after the reply is sent.
			for deadline := time.Now().Add(2 * time.Second); events.Load() < int64(b.N) && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if events.Load() < int64(b.N) {
				b.Fatalf("%d timeline events for %d answers", events.Load(), b.N)
			}
		})
	}
}
