package dhcpd

import (
	"fmt"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's collectors. Every label value is from a fixed list and created up
// front, so a dashboard sees zeros rather than missing series.
type metrics struct {
	received *prometheus.CounterVec // type, arch
	replies  *prometheus.CounterVec // kind
	dropped  *prometheus.CounterVec // reason
}

// Message type label values; anything else is "other", and a datagram that is not a whole
// DHCP message (dropped as oversized, truncated or malformed) is "malformed".
var msgTypes = map[dhcpv4.MessageType]string{
	dhcpv4.MessageTypeDiscover: "discover",
	dhcpv4.MessageTypeRequest:  "request",
	dhcpv4.MessageTypeInform:   "inform",
	dhcpv4.MessageTypeRelease:  "release",
	dhcpv4.MessageTypeDecline:  "decline",
}

const (
	typeOther     = "other"
	typeMalformed = "malformed"
	archNone      = "none"
	archOther     = "other"
)

// Architecture label values (RFC 4578 registry); the rest are "other", no option "none".
var archNames = map[iana.Arch]string{
	iana.INTEL_X86PC:      "bios",
	iana.EFI_IA32:         "efi_ia32",
	iana.EFI_X86_64:       "efi_x64",
	iana.EFI_BC:           "efi_bc",
	iana.EFI_ARM32:        "efi_arm32",
	iana.EFI_ARM64:        "efi_arm64",
	iana.EFI_X86_HTTP:     "http_ia32",
	iana.EFI_X86_64_HTTP:  "http_x64",
	iana.EFI_BC_HTTP:      "http_bc",
	iana.EFI_ARM32_HTTP:   "http_arm32",
	iana.EFI_ARM64_HTTP:   "http_arm64",
	iana.INTEL_X86PC_HTTP: "http_bios",
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_dhcp_packets_received_total",
			Help: "DHCP datagrams received on the ProxyDHCP ports, by message type and client architecture.",
		}, []string{"type", "arch"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_dhcp_replies_total",
			Help: "ProxyDHCP replies sent, by what they point the client to (binary, ipxe_script, httpboot).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_dhcp_dropped_total",
			Help: "DHCP datagrams left unanswered, by reason.",
		}, []string{"reason"}),
	}
	types := []string{typeOther, typeMalformed}
	for _, t := range msgTypes {
		types = append(types, t)
	}
	arches := []string{archNone, archOther}
	for _, a := range archNames {
		arches = append(arches, a)
	}
	for _, t := range types {
		for _, a := range arches {
			m.received.WithLabelValues(t, a)
		}
	}
	for _, k := range replyKinds {
		m.replies.WithLabelValues(k)
	}
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.received, m.replies, m.dropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register dhcpd metrics: %w", err)
			}
		}
	}
	return m, nil
}

// receivedLabels are the received-counter labels for a decision.
func receivedLabels(d decision) (typ, arch string) {
	if undecodable(d.Drop) {
		return typeMalformed, archNone
	}
	typ, ok := msgTypes[d.Client.Type]
	if !ok {
		typ = typeOther
	}
	return typ, archLabel(d.Client)
}

func archLabel(c client) string {
	if !c.HasArch {
		return archNone
	}
	if n, ok := archNames[c.Arch]; ok {
		return n
	}
	return archOther
}
