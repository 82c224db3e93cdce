package store

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of bootstrapd_store_expired_total.
const (
	kindSeen  = "seen"
	kindEvent = "event"
)

// metrics are what an operator needs to see a flood and a failing disk.
type metrics struct {
	evicted       prometheus.Counter
	expired       *prometheus.CounterVec
	dropped       prometheus.Counter
	flushDuration prometheus.Histogram
	flushErrors   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_store_discovered_evicted_total",
			Help: "MACs without a node record evicted, with their events, to keep at most max_discovered of them.",
		}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_store_expired_total",
			Help: "Seen entries of MACs without a record, and events, removed for being older than the TTL, by kind.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_store_activity_dropped_total",
			Help: "Seen marks and events dropped because the activity waiting for the next flush was at its bound.",
		}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bootstrapd_store_flush_duration_seconds",
			Help:    "Time to write pending activity to disk (one transaction and its fsync), expiry and eviction included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_store_flush_errors_total",
			Help: "Flushes of pending activity that failed; the activity is kept for the next one.",
		}),
	}
	// Both kinds exist from the start, so a rate() over them works before the first expiry.
	m.expired.WithLabelValues(kindSeen)
	m.expired.WithLabelValues(kindEvent)
	return m
}

// register registers all the metrics or, on error, none.
func (m *metrics) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{m.evicted, m.expired, m.dropped, m.flushDuration, m.flushErrors}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("register store metrics: %w", err)
		}
	}
	return nil
}
