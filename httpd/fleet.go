package httpd

import (
	"fmt"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// The fleet view: boots per hour and how long each boot stage takes across every node, so an
// operator sees where a rack's boots stall without reading timelines one by one.

// fleetHours is the window of the fleet view.
const fleetHours = 24

// bootSteps are the stages of a boot in order; a step's duration is the time from the
// previous step's event to its own. Other stages (a failed transfer, anything added later)
// are skipped over, and a step that goes backwards (a new offer: a new attempt) starts over.
var bootSteps = []struct {
	name   string
	stages []timeline.Stage
}{
	{"offer", []timeline.Stage{timeline.OfferBinary, timeline.OfferHTTPBoot, timeline.OfferScript}},
	{"tftp", []timeline.Stage{timeline.TFTPSent}},
	{"script", []timeline.Stage{timeline.ScriptServed}},
	{"kernel_requested", []timeline.Stage{timeline.KernelRequested}},
	{"kernel_sent", []timeline.Stage{timeline.KernelSent}},
}

// stepOf is the index of stage in bootSteps, or -1.
func stepOf(stage string) int {
	for i, s := range bootSteps {
		if slices.Contains(s.stages, timeline.Stage(stage)) {
			return i
		}
	}
	return -1
}

// Fleet is the answer of GET /api/v1/fleet. It holds no "generated at" time, so its ETag
// changes only when a figure does (or the window moves on, once an hour).
type Fleet struct {
	// Hours are the boots (kernels sent whole) of each of the last 24 hours, oldest first.
	Hours []FleetHour `json:"hours"`
	// Steps are the duration of each boot step over the same window, in boot order (the
	// first step, the offer, has none and is not listed).
	Steps []FleetStep `json:"steps"`
	// Slowest is the step with the longest median; empty without any.
	Slowest string `json:"slowest,omitempty"`
}

// FleetHour is one hour of the fleet view.
type FleetHour struct {
	Start time.Time `json:"start"`
	Boots int       `json:"boots"`
}

// FleetStep is one boot step's durations: from the previous step's event to this one.
type FleetStep struct {
	Step     string `json:"step"`
	Count    int    `json:"count"`
	MedianMS int64  `json:"median_ms"`
	P90MS    int64  `json:"p90_ms"`
	MaxMS    int64  `json:"max_ms"`
}

type fleetBuilder struct {
	now, from time.Time
	hours     []int
	durations [][]time.Duration // per step
}

func newFleetBuilder(now time.Time) *fleetBuilder {
	end := now.UTC().Truncate(time.Hour).Add(time.Hour)
	return &fleetBuilder{now: now, from: end.Add(-fleetHours * time.Hour),
		hours: make([]int, fleetHours), durations: make([][]time.Duration, len(bootSteps))}
}

// add takes one MAC's timeline, oldest first.
func (b *fleetBuilder) add(evs []store.Event) {
	prev, prevAt := -1, time.Time{}
	for _, ev := range evs {
		step := stepOf(ev.Stage)
		if step < 0 {
			continue
		}
		if ev.Time.After(b.from) && !ev.Time.After(b.now) {
			if step == len(bootSteps)-1 {
				b.hours[int(ev.Time.Sub(b.from)/time.Hour)]++
			}
			if prev >= 0 && step > prev {
				b.durations[step] = append(b.durations[step], ev.Time.Sub(prevAt))
			}
		}
		prev, prevAt = step, ev.Time
	}
}

func (b *fleetBuilder) fleet() Fleet {
	f := Fleet{Hours: make([]FleetHour, fleetHours), Steps: []FleetStep{}}
	for i, n := range b.hours {
		f.Hours[i] = FleetHour{Start: b.from.Add(time.Duration(i) * time.Hour), Boots: n}
	}
	var slowest int64 = -1
	for i := 1; i < len(bootSteps); i++ {
		d := b.durations[i]
		st := FleetStep{Step: bootSteps[i].name, Count: len(d)}
		if len(d) > 0 {
			slices.Sort(d)
			st.MedianMS = d[len(d)/2].Milliseconds()
			st.P90MS = d[(len(d)*9)/10].Milliseconds()
			st.MaxMS = d[len(d)-1].Milliseconds()
			if st.MedianMS > slowest {
				slowest, f.Slowest = st.MedianMS, st.Step
			}
		}
		f.Steps = append(f.Steps, st)
	}
	return f
}

// apiFleet answers the fleet view (no parameters: any is refused).
func (a *api) apiFleet(c *gin.Context) {
	if len(c.Request.URL.RawQuery) > 0 {
		a.apiFail(c, fmt.Errorf("%w: /api/v1/fleet takes no parameters", errBadInput))
		return
	}
	s, err := a.views.get(time.Now(), false)
	if err != nil {
		a.apiFail(c, err)
		return
	}
	writeJSONTagged(c, s.fleet)
}
