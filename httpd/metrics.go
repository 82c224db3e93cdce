package httpd

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	unauthorized prometheus.Counter
	scripts      *prometheus.CounterVec
	kernelBytes  prometheus.Counter
	// listBuild times the joined view behind the admin list endpoints, rebuilt when the
	// store changed.
	listBuild prometheus.Histogram

	connsEvicted, connsRefused prometheus.Counter
	connsOpen                  prometheus.Gauge
	connsClosed                *prometheus.CounterVec
}

// nodeCounter is the part of the store nodeCollector reads at scrape time.
type nodeCounter interface {
	CountNodes(seenSince time.Time) (known, seen int, err error)
}

func newMetrics(reg prometheus.Registerer, nodes nodeCounter) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_http_requests_total",
			Help: "HTTP requests by route template (never the raw path) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bootstrapd_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route template (kernel downloads included).",
			Buckets: []float64{.0005, .001, .005, .01, .05, .1, .5, 1, 5, 30, 120},
		}, []string{"route"}),
		unauthorized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_http_unauthorized_total",
			Help: "Admin API requests refused for a missing or wrong bearer token.",
		}),
		scripts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_scripts_served_total",
			Help: "Boot scripts served by kind: boot (from /ipxe), node (a record), default (default_node), wait (unknown MAC).",
		}, []string{"kind"}),
		kernelBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_http_kernel_bytes_sent_total",
			Help: "Kernel bytes sent over HTTP.",
		}),
		listBuild: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bootstrapd_admin_list_build_seconds",
			Help:    "Time to join records, seen MACs and timelines for the admin list endpoints (done when the store changed).",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5},
		}),
		connsEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_http_connections_evicted_total",
			Help: "Idle HTTP connections closed to make room at http.max_connections.",
		}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_http_connections_refused_total",
			Help: "HTTP connections closed on accept: http.max_connections reached and none idle.",
		}),
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootstrapd_http_connections_open",
			Help: "Open TCP connections of the HTTP listener.",
		}),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_http_connections_closed_total",
			Help: "HTTP connections ended by a limit: read_timeout (header or idle), write_timeout, header_too_large.",
		}, []string{"reason"}),
	}
	for _, r := range []string{"read_timeout", "write_timeout", "header_too_large"} {
		m.connsClosed.WithLabelValues(r)
	}
	for _, k := range []string{"boot", "node", "default", "wait"} {
		m.scripts.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.unauthorized, m.scripts, m.kernelBytes, m.listBuild,
			m.connsEvicted, m.connsRefused, m.connsOpen, m.connsClosed)
		if nodes != nil {
			reg.MustRegister(newNodeCollector(nodes))
		}
	}
	return m
}

// middleware counts every request under its route template; unmatched paths share one label.
func (m *metrics) middleware(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Inc()
	m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// activeWindow is how recently a MAC must have asked for something to count in
// bootstrapd_nodes_active.
const activeWindow = time.Hour

// nodeCollector reads the node gauges from the store when scraped, so there is nothing to
// keep in sync; both come from one CountNodes call, which is one scan of the store.
//
// They are two metrics rather than one bootstrapd_nodes{state=...}: an active MAC may have a
// record or not, so the two overlap and a sum over state would count some nodes twice.
type nodeCollector struct {
	nodes         nodeCounter
	known, active *prometheus.Desc
}

func newNodeCollector(nodes nodeCounter) *nodeCollector {
	return &nodeCollector{
		nodes: nodes,
		known: prometheus.NewDesc("bootstrapd_nodes_known", "Node records in the store.", nil, nil),
		active: prometheus.NewDesc("bootstrapd_nodes_active",
			"MACs, with a node record or not, that asked the appliance for something in the last hour.", nil, nil),
	}
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.known
	ch <- c.active
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	known, active, err := c.nodes.CountNodes(time.Now().Add(-activeWindow))
	if err != nil {
		// The scrape reports the error; a made-up value such as -1 would be graphed as a count.
		ch <- prometheus.NewInvalidMetric(c.known, err)
		ch <- prometheus.NewInvalidMetric(c.active, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.known, prometheus.GaugeValue, float64(known))
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(active))
}
