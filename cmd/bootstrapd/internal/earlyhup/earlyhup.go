// Package earlyhup takes SIGHUP away from the Go runtime's default action (ending the
// process) as early as a Go program can: in package initialisation, before the larger
// dependencies (gin, prometheus, the templates) spend tens of milliseconds initialising.
// systemd may send a reload (SIGHUP) at any moment once the daemon runs; it must never kill it.
//
// It imports only the standard library's signal support, so the initialisation order puts it
// among the first packages. Signals are process-wide, so this one channel is too.
package earlyhup

import (
	"os"
	"os/signal"
	"syscall"
)

var hup = make(chan os.Signal, 1)

func init() { signal.Notify(hup, syscall.SIGHUP) }

// Signals delivers the SIGHUPs received since start (one is kept while nobody reads).
func Signals() <-chan os.Signal { return hup }

// Release gives SIGHUP back its default action, for commands that are not the daemon: a
// CLI whose terminal hangs up should end.
func Release() { signal.Stop(hup) }
