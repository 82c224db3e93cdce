package httpd

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeNodes is a nodeCounter that records its calls.
type fakeNodes struct {
	mu            sync.Mutex
	known, active int
	err           error
	calls         int
	since         time.Time
}

func (f *fakeNodes) CountNodes(seenSince time.Time) (int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.since = seenSince
	if f.err != nil {
		return 0, 0, f.err
	}
	return f.known, f.active, nil
}

func TestNodeCollector(t *testing.T) {
	nodes := &fakeNodes{known: 3, active: 5}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newNodeCollector(nodes))

	before := time.Now()
	want := `
# HELP bootstrapd_nodes_active MACs, with a node record or not, that asked the appliance for something in the last hour.
# TYPE bootstrapd_nodes_active gauge
bootstrapd_nodes_active 5
# HELP bootstrapd_nodes_known Node records in the store.
# TYPE bootstrapd_nodes_known gauge
bootstrapd_nodes_known 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	after := time.Now()
	if nodes.calls != 1 {
		t.Errorf("CountNodes called %d times for one scrape, want 1", nodes.calls)
	}
	if nodes.since.Before(before.Add(-activeWindow)) || nodes.since.After(after.Add(-activeWindow)) {
		t.Errorf("CountNodes(%v), want %v before the scrape (%v)", nodes.since, activeWindow, before)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestNodeCollectorStoreError: a store that cannot count fails the scrape with its error
// rather than exporting a number that is not a count.
func TestNodeCollectorStoreError(t *testing.T) {
	storeErr := errors.New("count nodes: decode seen 52:54:00:aa:bb:cc: unexpected end of JSON input")
	reg := prometheus.NewRegistry()
	reg.MustRegister(newNodeCollector(&fakeNodes{err: storeErr}))
	mfs, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), storeErr.Error()) {
		t.Errorf("Gather error = %v, want one containing %q", err, storeErr)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "bootstrapd_nodes_") {
			t.Errorf("%s exported despite the store error: %v", mf.GetName(), mf.GetMetric())
		}
	}
}

// TestLabelValuesSnakeCase: every label value created up front follows the naming guide.
// Routes and codes, created on use, are templates and numbers.
func TestLabelValuesSnakeCase(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetrics(reg, &fakeNodes{})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				n++
				if !snake.MatchString(l.GetValue()) {
					t.Errorf("%s{%s=%q}: label value not snake_case", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	if n == 0 {
		t.Error("no label values created up front")
	}
}
