package store

import "errors"

var (
	// ErrNotFound means no record exists for the MAC.
	ErrNotFound = errors.New("node not found")
	// ErrExists means a record already exists for the MAC (create refuses to overwrite).
	ErrExists = errors.New("node already exists")
	// ErrBadMAC means a string is not an Ethernet MAC address.
	ErrBadMAC = errors.New("not an Ethernet MAC address")
	// ErrLocked means another process holds the database file open.
	ErrLocked = errors.New("database is locked by another process (is bootstrapd already running?)")
	// ErrClosed means the store was closed (Flush after Close).
	ErrClosed = errors.New("store is closed")
)
