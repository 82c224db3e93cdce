// Command storm simulates a rack of nodes PXE-booting at once, each with its own MAC and its
// own leased IPv4 address, through the whole path a real node walks:
//
//  1. firmware DHCP: DISCOVER as UEFI x64 PXE (option 60 PXEClient:Arch:00007, 93 = 7),
//     the lease server's OFFER and the ProxyDHCP's offer, REQUEST/ACK of the lease, and
//     the PXE boot-server request on port 4011 when the proxy offer names no file;
//  2. TFTP: a lock-step read of the offered binary (blksize 1468, as OVMF asks), from the
//     node's leased address;
//  3. iPXE DHCP: the same exchange with option 77 "iPXE" and option 175's HTTP and HTTPS
//     features, which the proxy answers with a script URL;
//  4. the script over HTTP, from the node's address;
//  5. the kernel the script's imgfetch/kernel line names, over HTTP, every byte read.
//
// It runs inside a network namespace that storm.sh builds: the leased addresses are routed
// to it as local (ip route add local PREFIX dev lo), so each node can bind its own. It
// prints what each node took, the failures by stage and what the server processes named by
// -pids cost (CPU time, peak RSS), and exits 1 if any node failed.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Stages, in the order a node walks them; failures are counted under these names.
var stageNames = []string{"dhcp", "tftp", "ipxe-dhcp", "script", "kernel"}

const (
	stDHCP = iota
	stTFTP
	stIPXEDHCP
	stScript
	stKernel
	nStages
)

type config struct {
	n          int
	macPrefix  [3]byte
	label      string
	pids       []int
	kernelSize int64
	blksize    int
	deadline   time.Duration
	spread     time.Duration
}

func main() {
	var c config
	var prefix, pids string
	flag.IntVar(&c.n, "n", 1000, "simulated nodes")
	flag.StringVar(&prefix, "mac-prefix", "02:b5:01", "first three bytes of every node's MAC (the rest is the node's number)")
	flag.StringVar(&c.label, "label", "target", "name printed with the results")
	flag.StringVar(&pids, "pids", "", "comma-separated server PIDs whose CPU time and peak RSS are reported")
	flag.Int64Var(&c.kernelSize, "kernel-size", 0, "expected kernel size in bytes (0: any)")
	flag.IntVar(&c.blksize, "blksize", 1468, "TFTP blksize asked for")
	flag.DurationVar(&c.deadline, "deadline", 10*time.Minute, "time a node may take in all before it counts as failed")
	flag.DurationVar(&c.spread, "spread", 0, "nodes start at random times within this window (0: all at once)")
	flag.Parse()
	if err := parseFlags(&c, prefix, pids); err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(2)
	}
	ok, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func parseFlags(c *config, prefix, pids string) error {
	if c.n < 1 || c.n > 1<<16 {
		return fmt.Errorf("-n %d: between 1 and 65536", c.n)
	}
	hw, err := net.ParseMAC(prefix + ":00:00:00")
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("-mac-prefix %q: three hex bytes, as 02:b5:01", prefix)
	}
	copy(c.macPrefix[:], hw)
	for p := range strings.SplitSeq(pids, ",") {
		if p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("-pids: %q is not a PID", p)
		}
		c.pids = append(c.pids, pid)
	}
	if c.blksize < 8 || c.blksize > 65464 {
		return fmt.Errorf("-blksize %d: between 8 and 65464 (RFC 2348)", c.blksize)
	}
	return nil
}

// result is one node's boot.
type result struct {
	failed int // stage index, or -1
	err    error
	total  time.Duration
	stage  [nStages]time.Duration
}

func run(c config) (bool, error) {
	d, err := newDHCP()
	if err != nil {
		return false, err
	}
	defer d.close()
	cpu0 := cpuTime(c.pids)

	results := make([]result, c.n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range c.n {
		mac := net.HardwareAddr{c.macPrefix[0], c.macPrefix[1], c.macPrefix[2], byte(i >> 16), byte(i >> 8), byte(i)}
		wg.Go(func() {
			if c.spread > 0 {
				time.Sleep(time.Duration(randUint64() % uint64(c.spread)))
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.deadline)
			defer cancel()
			results[i] = boot(ctx, c, d, mac)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	cpu := cpuTime(c.pids) - cpu0
	report(c, results, wall, cpu, peakRSS(c.pids))
	for _, r := range results {
		if r.failed >= 0 {
			return false, nil
		}
	}
	return true, nil
}

// boot walks one node through the five stages and says where it stopped.
func boot(ctx context.Context, c config, d *dhcpClient, mac net.HardwareAddr) result {
	r := result{failed: -1}
	t0 := time.Now()
	mark := func(st int, t time.Time) { r.stage[st] = time.Since(t) }
	fail := func(st int, err error) result {
		r.failed, r.err, r.total = st, err, time.Since(t0)
		return r
	}

	t := time.Now()
	lease, file, server, err := d.exchange(ctx, mac, false)
	if err != nil {
		return fail(stDHCP, err)
	}
	mark(stDHCP, t)

	t = time.Now()
	if _, err := tftpRead(ctx, lease, server, file, c.blksize); err != nil {
		return fail(stTFTP, fmt.Errorf("%s from %s: %w", file, server, err))
	}
	mark(stTFTP, t)

	t = time.Now()
	lease, scriptURL, _, err := d.exchange(ctx, mac, true)
	if err != nil {
		return fail(stIPXEDHCP, err)
	}
	if !strings.HasPrefix(scriptURL, "http://") {
		return fail(stIPXEDHCP, fmt.Errorf("the proxy offered iPXE %q, not an http:// script", scriptURL))
	}
	mark(stIPXEDHCP, t)

	hc := httpClient(lease)
	defer hc.CloseIdleConnections()
	t = time.Now()
	script, err := get(ctx, hc, scriptURL, 64<<10)
	if err != nil {
		return fail(stScript, err)
	}
	kernelURL, err := kernelFrom(script, mac)
	if err != nil {
		return fail(stScript, fmt.Errorf("%s: %w", scriptURL, err))
	}
	mark(stScript, t)

	t = time.Now()
	n, err := getCount(ctx, hc, kernelURL)
	if err != nil {
		return fail(stKernel, err)
	}
	if c.kernelSize > 0 && n != c.kernelSize {
		return fail(stKernel, fmt.Errorf("%s: %d bytes, want %d", kernelURL, n, c.kernelSize))
	}
	mark(stKernel, t)
	r.total = time.Since(t0)
	return r
}

func randUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// dhcpClient is the one socket on port 68 every simulated node shares, as they share the
// wire; replies go to the node by transaction ID.
type dhcpClient struct {
	conn *net.UDPConn
	mu   sync.Mutex
	wait map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	done chan struct{}
}

func newDHCP() (*dhcpClient, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{Port: dhcpv4.ClientPort})
	if err != nil {
		return nil, fmt.Errorf("listen on port 68 (run in the storm's client namespace, as root): %w", err)
	}
	// Every server answers the whole rack at once: a default-sized buffer would drop most of
	// the burst, and the nodes' retries would measure the simulator, not the server.
	if err := forceRcvbuf(conn, 32<<20); err != nil {
		conn.Close()
		return nil, err
	}
	d := &dhcpClient{conn: conn, wait: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}, done: make(chan struct{})}
	go d.read()
	return d, nil
}

func forceRcvbuf(conn *net.UDPConn, size int) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_RCVBUFFORCE: %w", serr)
	}
	return nil
}

func (d *dhcpClient) close() {
	d.conn.Close()
	<-d.done
}

func (d *dhcpClient) read() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, err := d.conn.Read(buf)
		if err != nil {
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		d.mu.Lock()
		ch := d.wait[m.TransactionID]
		d.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default: // a node that stopped listening
			}
		}
	}
}

func (d *dhcpClient) register(xid dhcpv4.TransactionID) chan *dhcpv4.DHCPv4 {
	ch := make(chan *dhcpv4.DHCPv4, 16)
	d.mu.Lock()
	d.wait[xid] = ch
	d.mu.Unlock()
	return ch
}

func (d *dhcpClient) unregister(xid dhcpv4.TransactionID) {
	d.mu.Lock()
	delete(d.wait, xid)
	d.mu.Unlock()
}

var broadcast = &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}

// Firmware waits 4, 8, 16 and 32 s for offers (PXE 2.1 spec); a node that has no lease or no
// proxy offer after the last has failed.
var dhcpWaits = []time.Duration{4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second}

// exchange is one node's DHCP: DISCOVER until both a lease offer and a ProxyDHCP offer came,
// REQUEST/ACK of the lease, and, when the proxy offer names no file, the PXE boot-server
// request on port 4011 that EDK2 sends for it. It returns the leased address and the boot
// file and server the proxy named.
func (d *dhcpClient) exchange(ctx context.Context, mac net.HardwareAddr, asIPXE bool) (lease netip.Addr, file string, server netip.Addr, err error) {
	// A lease server offers the same free address to clients that ask at the same moment
	// and NAKs all but the first REQUEST; a client starts over with a DISCOVER then (RFC
	// 2131 3.1), as firmware does.
	for range 4 {
		lease, file, server, err = d.dora(ctx, mac, asIPXE)
		if !errors.Is(err, errLease) {
			break
		}
	}
	return lease, file, server, err
}

// errLease is a REQUEST the lease server refused (NAK) or left unanswered.
var errLease = errors.New("lease")

func (d *dhcpClient) dora(ctx context.Context, mac net.HardwareAddr, asIPXE bool) (lease netip.Addr, file string, server netip.Addr, err error) {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 0}),
		// What EDK2's PXE DISCOVER asks for (PxeBcDhcp4.c): dnsmasq sends its PXE menu
		// (option 43) only to a client that asks for it.
		dhcpv4.WithRequestedOptions(
			dhcpv4.OptionSubnetMask, dhcpv4.OptionTimeOffset, dhcpv4.OptionRouter, dhcpv4.OptionTimeServer,
			dhcpv4.OptionNameServer, dhcpv4.OptionDomainNameServer, dhcpv4.OptionHostName, dhcpv4.OptionBootFileSize,
			dhcpv4.OptionDomainName, dhcpv4.OptionRootPath, dhcpv4.OptionExtensionsPath, dhcpv4.OptionMaximumDatagramAssemblySize,
			dhcpv4.OptionDefaultIPTTL, dhcpv4.OptionBroadcastAddress, dhcpv4.OptionNetworkInformationServiceDomain,
			dhcpv4.OptionNetworkInformationServers, dhcpv4.OptionNTPServers, dhcpv4.OptionVendorSpecificInformation,
			dhcpv4.OptionRequestedIPAddress, dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionServerIdentifier,
			dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue, dhcpv4.OptionClassIdentifier,
			dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName, dhcpv4.OptionClientMachineIdentifier),
		dhcpv4.WithGeneric(dhcpv4.OptionMaximumDHCPMessageSize, []byte{0x05, 0xc0}),
		// The machine's UUID (option 97, type 0): firmware sends its SMBIOS UUID; the MAC
		// makes one per node.
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append(make([]byte, 11), mac...)),
	}
	if asIPXE {
		mods = append(mods,
			dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")),
			// iPXE's feature list (option 175): HTTP (0x13) and HTTPS (0x14), version 1 each.
			dhcpv4.WithGeneric(dhcpv4.OptionEtherboot, []byte{0x13, 1, 1, 0x14, 1, 1}))
	}
	disc, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		return lease, "", server, err
	}
	ch := d.register(disc.TransactionID)
	defer d.unregister(disc.TransactionID)

	var offer, proxy *dhcpv4.DHCPv4
	for _, wait := range dhcpWaits {
		if _, err := d.conn.WriteTo(disc.ToBytes(), broadcast); err != nil {
			return lease, "", server, fmt.Errorf("send DISCOVER: %w", err)
		}
		timer := time.NewTimer(wait)
	collect:
		for offer == nil || proxy == nil {
			select {
			case m := <-ch:
				if m.MessageType() != dhcpv4.MessageTypeOffer {
					continue
				}
				if !isZero(m.YourIPAddr) {
					offer = m
				} else if strings.HasPrefix(string(m.Options.Get(dhcpv4.OptionClassIdentifier)), "PXEClient") {
					proxy = m
				}
			case <-timer.C:
				break collect
			case <-ctx.Done():
				timer.Stop()
				return lease, "", server, ctx.Err()
			}
		}
		timer.Stop()
		if offer != nil && proxy != nil {
			break
		}
	}
	switch {
	case offer == nil && proxy == nil:
		return lease, "", server, errors.New("no offer after 4 DISCOVERs")
	case offer == nil:
		return lease, "", server, errors.New("no lease offer after 4 DISCOVERs (the lease server)")
	case proxy == nil:
		return lease, "", server, errors.New("no ProxyDHCP offer after 4 DISCOVERs")
	}

	req, err := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithBroadcast(true))
	if err != nil {
		return lease, "", server, err
	}
	ack, err := d.request(ctx, ch, req)
	if err != nil {
		return lease, "", server, fmt.Errorf("%w: %w", errLease, err)
	}
	lease, _ = netip.AddrFromSlice(ack.YourIPAddr.To4())

	server = proxyServer(proxy)
	file = bootFile(proxy)
	if file == "" {
		// dnsmasq's proxy offer leaves the file to the boot-server request (PXE 2.1 spec,
		// "boot server discovery"): a REQUEST to port 4011 from the leased address.
		if file, err = bootServer(ctx, lease, server, proxy, mods); err != nil {
			return lease, "", server, fmt.Errorf("boot server %s:4011: %w", server, err)
		}
	}
	return lease, file, server, nil
}

// request sends a REQUEST and waits for its ACK, retrying like a DISCOVER.
func (d *dhcpClient) request(ctx context.Context, ch chan *dhcpv4.DHCPv4, req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	for _, wait := range dhcpWaits {
		if _, err := d.conn.WriteTo(req.ToBytes(), broadcast); err != nil {
			return nil, fmt.Errorf("send REQUEST: %w", err)
		}
		timer := time.NewTimer(wait)
	collect:
		for {
			select {
			case m := <-ch:
				switch m.MessageType() {
				case dhcpv4.MessageTypeAck:
					timer.Stop()
					return m, nil
				case dhcpv4.MessageTypeNak:
					timer.Stop()
					return nil, fmt.Errorf("NAK for %s: %q", req.RequestedIPAddress(), m.Message())
				}
			case <-timer.C:
				break collect
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			}
		}
	}
	return nil, errors.New("no ACK after 4 REQUESTs")
}

func proxyServer(m *dhcpv4.DHCPv4) netip.Addr {
	if a, ok := netip.AddrFromSlice(m.ServerIPAddr.To4()); ok && !isZero(m.ServerIPAddr) {
		return a
	}
	a, _ := netip.AddrFromSlice(m.ServerIdentifier().To4())
	return a
}

func bootFile(m *dhcpv4.DHCPv4) string {
	if f := m.BootFileNameOption(); f != "" {
		return f
	}
	return strings.TrimRight(m.BootFileName, "\x00")
}

func bootServer(ctx context.Context, lease, server netip.Addr, proxy *dhcpv4.DHCPv4, mods []dhcpv4.Modifier) (string, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lease, 0)))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	mods = append(mods,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(lease.AsSlice()),
		dhcpv4.WithBroadcast(false))
	// With a boot menu, the PXE boot item (71) of its first entry, layer 0, as firmware
	// picks it without a prompt. Without one (dnsmasq's offer to UEFI clients), the request
	// goes to the proxy as a BINL server, as EDK2 sends it.
	if item, ok := firstMenuItem(proxy.Options.Get(dhcpv4.OptionVendorSpecificInformation)); ok {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation,
			[]byte{71, 4, byte(item >> 8), byte(item), 0, 0, 255})))
	}
	req, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(proxy.ClientHWAddr)}, mods...)...)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	for _, wait := range dhcpWaits {
		if _, err := conn.WriteToUDPAddrPort(req.ToBytes(), netip.AddrPortFrom(server, 4011)); err != nil {
			return "", err
		}
		dl := time.Now().Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(dl) {
			dl = d
		}
		_ = conn.SetReadDeadline(dl)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if ctx.Err() != nil {
					return "", ctx.Err()
				}
				break
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || m.TransactionID != req.TransactionID || m.MessageType() != dhcpv4.MessageTypeAck {
				continue
			}
			if f := bootFile(m); f != "" {
				return f, nil
			}
			return "", errors.New("ACK names no boot file")
		}
	}
	return "", errors.New("no ACK after 4 REQUESTs")
}

// firstMenuItem is the type of the first entry of a PXE boot menu (option 43, sub-option 9:
// type, description length, description, repeated; PXE 2.1 spec).
func firstMenuItem(opt43 []byte) (uint16, bool) {
	for len(opt43) >= 2 && opt43[0] != 255 {
		code, l := opt43[0], int(opt43[1])
		if len(opt43) < 2+l {
			return 0, false
		}
		if code == 9 && l >= 3 {
			return binary.BigEndian.Uint16(opt43[2:4]), true
		}
		opt43 = opt43[2+l:]
	}
	return 0, false
}

func isZero(ip net.IP) bool { return ip == nil || ip.Equal(net.IPv4zero) }

// TFTP opcodes (RFC 1350) and the lock-step client's patience: firmware resends after about
// a second and gives up after a handful of tries.
const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6

	tftpTimeout = time.Second
	tftpTries   = 6
)

// tftpRead reads file from server:69 from the node's address in lock-step, as firmware does:
// RRQ with blksize and tsize (RFC 2347-2349), ACK 0 for an OACK, one ACK per DATA. It
// returns the bytes read.
func tftpRead(ctx context.Context, from, server netip.Addr, file string, blksize int) (int64, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	rrq := fmt.Appendf([]byte{0, opRRQ}, "%s\x00octet\x00blksize\x00%d\x00tsize\x000\x00", file, blksize)
	to := netip.AddrPortFrom(server, 69)
	last := rrq // what a timeout resends
	size := 512 // until an OACK says otherwise
	var total int64
	var want uint16 = 1
	buf := make([]byte, 65536)
	for tries := 0; ; {
		if _, err := conn.WriteToUDPAddrPort(last, to); err != nil {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(tftpTimeout))
		n, peer, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if tries++; tries >= tftpTries {
					return total, fmt.Errorf("timed out waiting for block %d after %d tries", want, tries)
				}
				continue
			}
			return total, err
		}
		if n < 4 || peer.Addr() != server {
			continue
		}
		tries = 0
		if &last[0] == &rrq[0] {
			to = peer // the transfer's own port (RFC 1350 TID)
		} else if peer != to {
			continue
		}
		block := binary.BigEndian.Uint16(buf[2:4])
		switch binary.BigEndian.Uint16(buf[:2]) {
		case opERROR:
			return total, fmt.Errorf("error %d: %s", block, bytes.TrimRight(buf[4:n], "\x00"))
		case opOACK:
			for opts := bytes.Split(bytes.TrimRight(buf[2:n], "\x00"), []byte{0}); len(opts) >= 2; opts = opts[2:] {
				if strings.EqualFold(string(opts[0]), "blksize") {
					if v, err := strconv.Atoi(string(opts[1])); err == nil {
						size = v
					}
				}
			}
			last = []byte{0, opACK, 0, 0}
		case opDATA:
			if block != want {
				continue // a duplicate: the ACK already sent answers it
			}
			total += int64(n - 4)
			last = []byte{0, opACK, buf[2], buf[3]}
			if n-4 < size {
				_, err := conn.WriteToUDPAddrPort(last, to)
				return total, err
			}
			want++
		}
	}
}

// httpClient is one node's HTTP: its own connections, from its own address, kept alive from
// the script to the kernel as iPXE does.
func httpClient(from netip.Addr) *http.Client {
	dialer := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), Timeout: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext:           dialer.DialContext,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   1,
		ResponseHeaderTimeout: time.Minute,
	}}
}

// get fetches url into a buffer of at most limit bytes.
func get(ctx context.Context, hc *http.Client, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", u, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// getCount fetches url and counts its bytes; a body shorter than its Content-Length fails.
func getCount(ctx context.Context, hc *http.Client, u string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", u, resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, fmt.Errorf("%s: after %d bytes: %w", u, n, err)
	}
	return n, nil
}

// kernelFrom finds the kernel URL in an iPXE script as iPXE on an x86_64 node would: the
// first URL argument of its first kernel or imgfetch line, with the variables the script set
// before it (the x86_64 branch of "iseq ${buildarch} arm64 && A || B" lines) and the MAC
// variables expanded.
func kernelFrom(script []byte, mac net.HardwareAddr) (string, error) {
	hyp := strings.ReplaceAll(mac.String(), ":", "-")
	vars := map[string]string{}
	for _, v := range []string{"net${netidx}/mac:hexhyp", "net0/mac:hexhyp", "mac:hexhyp"} {
		vars[v] = hyp
	}
	for _, v := range []string{"net${netidx}/mac", "net0/mac", "mac"} {
		vars[v] = mac.String()
	}
	expand := func(a string) string {
		for k, v := range vars {
			a = strings.ReplaceAll(a, "${"+k+"}", v)
		}
		return a
	}
	sc := bufio.NewScanner(bytes.NewReader(script))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "iseq ${buildarch} arm64 && "); ok {
			_, line, _ = strings.Cut(rest, "|| ")
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "set":
			if len(f) == 3 {
				vars[f[1]] = expand(f[2])
			}
			continue
		case "kernel", "imgfetch":
		default:
			continue
		}
		for _, a := range f[1:] {
			a = expand(a)
			if !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") {
				continue
			}
			if strings.Contains(a, "${") {
				return "", fmt.Errorf("kernel URL %q has a variable the storm does not know", a)
			}
			if _, err := url.Parse(a); err != nil {
				return "", err
			}
			return a, nil
		}
	}
	return "", errors.New("no kernel line in the script (a wait script?)")
}

// cpuTime is the user+system CPU time of the processes so far (/proc/PID/stat, fields 14 and
// 15, in clock ticks of 1/100 s on Linux).
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name (field 2) may hold spaces: count fields after its closing ")".
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// peakRSS sums the processes' VmHWM (their resident-set high-water marks), in bytes.
func peakRSS(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}

func report(c config, rs []result, wall, cpu time.Duration, rss int64) {
	var ok []time.Duration
	var perStage [nStages][]time.Duration
	var failed [nStages]int
	var examples []string
	for _, r := range rs {
		for st := range nStages {
			if r.failed < 0 || st < r.failed {
				perStage[st] = append(perStage[st], r.stage[st])
			}
		}
		if r.failed < 0 {
			ok = append(ok, r.total)
			continue
		}
		failed[r.failed]++
		if len(examples) < 5 {
			examples = append(examples, fmt.Sprintf("%s: %v", stageNames[r.failed], r.err))
		}
	}
	slices.Sort(ok)
	nfail := len(rs) - len(ok)
	fmt.Printf("%s: %d nodes, %d booted, %d failed, wall %.2f s\n", c.label, len(rs), len(ok), nfail, wall.Seconds())
	fmt.Printf("  per node (DISCOVER to last kernel byte): p50 %s  p99 %s  max %s\n",
		ms(pct(ok, 50)), ms(pct(ok, 99)), ms(pct(ok, 100)))
	var sb strings.Builder
	for st := range nStages {
		slices.Sort(perStage[st])
		fmt.Fprintf(&sb, "  %s p50 %s p99 %s", stageNames[st], ms(pct(perStage[st], 50)), ms(pct(perStage[st], 99)))
	}
	fmt.Printf("  stages:%s\n", sb.String())
	fmt.Printf("  failed by stage:")
	for st := range nStages {
		fmt.Printf(" %s %d", stageNames[st], failed[st])
	}
	fmt.Println()
	for _, e := range examples {
		fmt.Printf("  failure: %s\n", e)
	}
	if len(c.pids) > 0 {
		fmt.Printf("  server: CPU %.2f s (user+sys, %d processes), peak RSS %.1f MiB\n", cpu.Seconds(), len(c.pids), float64(rss)/(1<<20))
	}
	// One line for storm.sh to read.
	fmt.Printf("RESULT label=%s nodes=%d ok=%d failed=%d wall_s=%.2f p50_ms=%.0f p99_ms=%.0f max_ms=%.0f cpu_s=%.2f rss_mib=%.1f fail_dhcp=%d fail_tftp=%d fail_ipxe_dhcp=%d fail_script=%d fail_kernel=%d\n",
		c.label, len(rs), len(ok), nfail, wall.Seconds(), msf(pct(ok, 50)), msf(pct(ok, 99)), msf(pct(ok, 100)),
		cpu.Seconds(), float64(rss)/(1<<20), failed[stDHCP], failed[stTFTP], failed[stIPXEDHCP], failed[stScript], failed[stKernel])
}

// pct is the p-th percentile of sorted durations (nearest rank), 0 if there are none.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", msf(d)) }

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
