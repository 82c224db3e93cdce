package tftpd

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a read request that was not refused; the values of the transfers metric's result
// label. Refused requests are counted by the refused metric alone, by reason: a request
// counted in both would be counted twice by any sum over the two.
const (
	resultOK       = "ok"
	resultError    = "error"     // read or network error, timeout, client abort
	resultNotFound = "not_found" // valid name, no such regular file
)

var results = []string{resultOK, resultError, resultNotFound}

// otherFile labels every name outside the served file set, so that clients cannot grow the
// label set.
const otherFile = "other"

// maxFileLabels bounds the file label when Config.Files is a directory rather than the catalogue.
const maxFileLabels = 32

type metrics struct {
	transfers *prometheus.CounterVec // file, result
	bytes     prometheus.Counter
	duration  prometheus.Histogram
	refused   *prometheus.CounterVec // reason
	files     []string               // file label values besides otherFile
}

func newMetrics(reg prometheus.Registerer, files []string) (*metrics, error) {
	m := &metrics{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_tftp_transfers_total",
			Help: `TFTP read requests that were not refused, by file ("other" for names outside the served set) and result (ok, error, not_found).`,
		}, []string{"file", "result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bootstrapd_tftp_bytes_sent_total",
			Help: "File bytes sent over TFTP, including those of failed transfers.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bootstrapd_tftp_transfer_duration_seconds",
			Help: "Duration of successful TFTP transfers, from the request to the last ACK.",
			// 1 ms (a small file on a LAN) to about a minute (a big one over a lossy link).
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrapd_tftp_refused_total",
			Help: "TFTP requests refused before any file was opened (every write request among them), by reason; packets on the server port that are no valid request have reason malformed.",
		}, []string{"reason"}),
		files: files,
	}
	for _, f := range append(slices.Clone(files), otherFile) {
		for _, r := range results {
			m.transfers.WithLabelValues(f, r)
		}
	}
	for _, r := range refuseReasons {
		m.refused.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.transfers, m.bytes, m.duration, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register TFTP metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) fileLabel(name string) string {
	if slices.Contains(m.files, name) {
		return name
	}
	return otherFile
}

// fileLister is what *ipxe.Catalogue offers to name its files, since it cannot list a directory.
type fileLister interface {
	Files() []string
}

// servedNames lists the names fsys can serve, for the file label: the catalogue's own list,
// or else the regular files at the root of fsys, at most maxFileLabels of them.
func servedNames(fsys fs.FS) []string {
	var names []string
	if l, ok := fsys.(fileLister); ok {
		names = l.Files()
	} else if entries, err := fs.ReadDir(fsys, "."); err == nil {
		for _, e := range entries {
			if e.Type().IsRegular() {
				names = append(names, e.Name())
			}
		}
	}
	names = slices.DeleteFunc(names, func(n string) bool {
		_, err := parseFile(n)
		return err != nil || n == otherFile
	})
	slices.Sort(names)
	names = slices.Compact(names)
	return names[:min(len(names), maxFileLabels)]
}

// refuseReason is the reason label of an error from parsePath or of a refused write.
func refuseReason(err error) string {
	if re, ok := errors.AsType[*refusedError](err); ok {
		return re.reason
	}
	return reasonInvalid
}
