// Package store keeps bootstrapd's state in one bbolt file: node records (MAC → network, farm
// id, kernel arguments, kernel override), the nodes that asked for a script (seen), and each
// node's recent boot events.
//
// Every write is one bbolt transaction, so a crash never leaves half a record or half an
// import. Only the daemon opens the file: bbolt takes an exclusive flock, and a second process
// gets ErrLocked instead of waiting forever.
package store
