package store

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of bootstrapd_store_expired_total.
const (
	kindSeen  = "seen"
	kindEvent = "event"
)

// ActivityMetrics are what an operator needs to see a flood and a failing store: the
// activity written behind (seen MACs and events) and its bounds. Both backends count with
// them under the same names, so one dashboard fits either.
type ActivityMetrics struct {
	evicted       prometheus.Counter
	expired       *prometheus.CounterVec
	dropped       prometheus.Counter
	flushDuration prometheus.Histogram
	flushErrors   prometheus.Counter
}

// NewActivityMetrics makes the metrics; flushHelp says what one flush does in the backend.
func NewActivityMetrics(flushHelp string) *ActivityMetrics {
	m := &ActivityMetrics{
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
			Help:    flushHelp,
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

// Collectors lists the metrics, to register.
func (m *ActivityMetrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.evicted, m.expired, m.dropped, m.flushDuration, m.flushErrors}
}

// Dropped counts a seen mark or event dropped at the pending activity's bound.
func (m *ActivityMetrics) Dropped() { m.dropped.Inc() }

// FlushFailed counts a flush that failed.
func (m *ActivityMetrics) FlushFailed() { m.flushErrors.Inc() }

// Flushed records how long a successful flush took.
func (m *ActivityMetrics) Flushed(took time.Duration) { m.flushDuration.Observe(took.Seconds()) }

// Swept counts what a sweep removed.
func (m *ActivityMetrics) Swept(evicted, expiredSeen, expiredEvents int) {
	m.evicted.Add(float64(evicted))
	m.expired.WithLabelValues(kindSeen).Add(float64(expiredSeen))
	m.expired.WithLabelValues(kindEvent).Add(float64(expiredEvents))
}

// Register registers every collector or, on error, none, so a failed open can be retried.
func Register(reg prometheus.Registerer, cs []prometheus.Collector) error {
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
