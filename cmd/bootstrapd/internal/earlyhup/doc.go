// Package earlyhup takes SIGHUP away from the Go runtime's default action (ending the
// process) as early as a Go program can: in package initialisation, before the larger
// dependencies (gin, prometheus, the templates) spend tens of milliseconds initialising.
// systemd may send a reload (SIGHUP) at any moment once the daemon runs; it must never kill it.
//
// It imports only the standard library's signal support, so the initialisation order puts it
// among the first packages. Signals are process-wide, so this one channel is too.
package earlyhup
