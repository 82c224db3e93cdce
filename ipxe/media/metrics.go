package media

import "github.com/prometheus/client_golang/prometheus"

// Results of a Build call counted in bootstrapd_media_builds_total.
const (
	resultOK       = "ok"
	resultTooLong  = "too_long"
	resultBad      = "bad_script"
	resultError    = "error"
	resultCanceled = "canceled"
)

type metrics struct {
	builds   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	hits     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_media_builds_total",
			Help: "Media build requests that were not answered from the cache, by kind and result.",
		}, []string{"kind", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bootstrapd_media_build_duration_seconds",
			Help:    "Time to build one medium from its template (cache misses only).",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1},
		}, []string{"kind"}),
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_media_cache_hits_total",
			Help: "Media requests answered from the cache, by kind.",
		}, []string{"kind"}),
	}
	for _, k := range Kinds() {
		for _, r := range []string{resultOK, resultTooLong, resultBad, resultError, resultCanceled} {
			m.builds.WithLabelValues(string(k), r)
		}
		m.duration.WithLabelValues(string(k))
		m.hits.WithLabelValues(string(k))
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.builds, m.duration, m.hits} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
