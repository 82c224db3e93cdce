// Command seed writes a node that stopped booting long ago into a bootstrapd database, before
// the daemon opens it: the web test needs a "stuck" node without waiting for events.stuck_after
// (at least a minute) to pass. The events are the ones the daemon's timeline writes for a UEFI
// node that got its iPXE binary over TFTP and was never heard of again.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/threefoldtech/bootstrapd/store"
	"github.com/threefoldtech/bootstrapd/store/timeline"
)

func main() {
	db := flag.String("db", "", "bootstrapd database `file` (paths.data/bootstrapd.db), not in use by a daemon")
	mac := flag.String("mac", "", "MAC address of the node")
	ago := flag.Duration("ago", 20*time.Minute, "how long ago the node stopped")
	flag.Parse()
	if err := seed(*db, *mac, time.Now().Add(-*ago)); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func seed(path, mac string, at time.Time) error {
	now := at
	s, err := store.Open(path, store.Options{Now: func() time.Time { return now }})
	if err != nil {
		return fmt.Errorf("open %q: %w", path, err)
	}
	if err := s.MarkSeen(mac, "EFI x86-64", "192.0.2.23"); err != nil {
		s.Close()
		return fmt.Errorf("mark %s seen: %w", mac, err)
	}
	for i, ev := range []store.Event{
		{Stage: string(timeline.OfferBinary), Detail: "EFI x86-64 ipxe-amd64.efi"},
		{Stage: string(timeline.TFTPSent), Detail: "ipxe-amd64.efi"},
	} {
		ev.Time = at.Add(time.Duration(i) * 1300 * time.Millisecond)
		if err := s.AppendEvent(mac, ev); err != nil {
			s.Close()
			return fmt.Errorf("event %s for %s: %w", ev.Stage, mac, err)
		}
	}
	return s.Close()
}
