package etcdstore

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threefoldtech/bootstrapd/store"
)

// metrics are the bbolt store's (same names, so one dashboard fits both) and etcd's own.
type metrics struct {
	*store.ActivityMetrics
	up      prometheus.Gauge
	records prometheus.Gauge
	loads   prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		ActivityMetrics: store.NewActivityMetrics("Time to write pending activity to etcd, sweep included."),
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
}

func (m *metrics) register(reg prometheus.Registerer) error {
	return store.Register(reg, append(m.Collectors(), m.up, m.records, m.loads))
}
