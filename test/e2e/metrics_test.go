package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// checkMetrics scrapes the daemon after the boots: the counters real firmware moved must be
// non-zero, and promtool must accept the exposition. boots counts every case; httpBoots
// those started by UEFI HTTP Boot, whose firmware gets the "httpboot" reply, not "binary".
func (l *lab) checkMetrics(t *testing.T, boots, httpBoots int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := exec.CommandContext(ctx, l.env.ip, "netns", "exec", l.srvNS, "curl", "-sf", "http://127.0.0.1:8080/metrics").Output()
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	atLeast := map[string]float64{
		`bootstrapd_dhcp_packets_received_total{arch="efi_x64",type="discover"}`:   1,
		`bootstrapd_dhcp_packets_received_total{arch="bios",type="discover"}`:      1,
		`bootstrapd_dhcp_packets_received_total{arch="efi_arm64",type="discover"}`: 1,
		`bootstrapd_tftp_transfers_total{file="ipxe-arm64.efi",result="ok"}`:       1,
		`bootstrapd_dhcp_packets_received_total{arch="http_x64",type="discover"}`:  float64(httpBoots),
		`bootstrapd_dhcp_replies_total{kind="binary"}`:                             float64(boots - httpBoots),
		`bootstrapd_dhcp_replies_total{kind="httpboot"}`:                           float64(httpBoots),
		`bootstrapd_http_requests_total{code="200",route="/boot/*path"}`:           float64(httpBoots),
		`bootstrapd_dhcp_replies_total{kind="ipxe_script"}`:                        float64(boots),
		`bootstrapd_tftp_transfers_total{file="ipxe-amd64.efi",result="ok"}`:       1,
		`bootstrapd_tftp_transfers_total{file="undionly.kpxe",result="ok"}`:        2,
		`bootstrapd_http_requests_total{code="200",route="/provision/:mac"}`:       float64(boots + 1),
		`bootstrapd_scripts_served_total{kind="wait"}`:                             1,
		`bootstrapd_boot_stages_total{stage="kernel_sent"}`:                        float64(boots),
		`bootstrapd_nodes_known`: float64(boots),
	}
	for series, min := range atLeast {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
		m := re.FindSubmatch(body)
		if m == nil {
			t.Errorf("scrape lacks %s", series)
			continue
		}
		if v, _ := strconv.ParseFloat(string(m[1]), 64); v < min {
			t.Errorf("%s = %v, want at least %v", series, v, min)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Errorf("promtool is missing (Debian package prometheus)")
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}
