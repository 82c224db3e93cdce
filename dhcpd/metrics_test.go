package dhcpd

import (
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLabelValuesSnakeCase: the naming guide's snake_case holds for every series the
// server creates up front, which is every label value it can use.
func TestLabelValuesSnakeCase(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !snake.MatchString(l.GetValue()) {
					t.Errorf("%s{%s=%q}: label value not snake_case", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}
