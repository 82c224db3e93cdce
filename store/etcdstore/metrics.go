package etcdstore

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bbolt store's (same names, so one dashboard fits both) and etcd's own.
type metrics struct {
	evicted       prometheus.Counter
	expired       *prometheus.CounterVec
	dropped       prometheus.Counter
	flushDuration prometheus.Histogram
	flushErrors   prometheus.Counter
	up            prometheus.Gauge
	records       prometheus.Gauge
	loads         prometheus.Counter
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
			Help:    "Time to write pending activity to etcd, sweep included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_store_flush_errors_total",
			Help: "Flushes of pending activity that failed; the activity is kept for the next one.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootstrapd_store_etcd_up",
			Help: "1 while etcd answers; 0 while it does not and boots go on from the last known copy of the records.",
		}),
		records: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootstrapd_store_etcd_copy_records",
			Help: "Node records in this appliance's in-memory copy of etcd.",
		}),
		loads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_store_etcd_loads_total",
			Help: "Times the copy of the records was loaded whole from etcd (start, and after each lost watch).",
		}),
	}
	m.expired.WithLabelValues("seen")
	m.expired.WithLabelValues("event")
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{m.evicted, m.expired, m.dropped, m.flushDuration, m.flushErrors, m.up, m.records, m.loads}
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
