package tftpd

import (
	"io"
	"testing"
	"time"

	"github.com/threefoldtech/bootstrapd/store/timeline"
)

// A read of "<mac>/<binary>" is a boot stage of that MAC, with the binary's own name; a bare
// name serves the same file but moves no timeline, and neither does a refusal.
func TestTimelineEvents(t *testing.T) {
	events := make(chan timeline.Event, 8)
	ts := startServer(t, Config{Timeline: func(e timeline.Event) { events <- e }})
	c := pinClient(t, ts, 1468, true)
	for _, name := range []string{"52-54-00-12-34-56/undionly.kpxe", "undionly.kpxe", "52-54-00-12-34-56/../x"} {
		if wt, err := c.Receive(name, "octet"); err == nil {
			if _, err := wt.WriteTo(io.Discard); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		ts.next(t)
	}
	select {
	case e := <-events:
		if e.MAC != "52:54:00:12:34:56" || e.Stage != timeline.TFTPSent || e.Detail != "undionly.kpxe" || !e.IP.IsLoopback() {
			t.Errorf("event %+v, want tftp_sent undionly.kpxe for 52:54:00:12:34:56 from loopback", e)
		}
	case <-time.After(time.Second):
		t.Fatal("no timeline event for the <mac>/ read")
	}
	select {
	case e := <-events:
		t.Errorf("a read without a MAC, or a refused one, moved the timeline: %+v", e)
	default:
	}
}
