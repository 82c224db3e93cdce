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
