// Package migrate reads what 0-bootstrap (bootstrapd's Python predecessor) kept, for
// `bootstrapd migrate`: its SQLite provision table and its kernel directory.
//
// The provision table is CREATE TABLE provision (client varchar(32) primary key, branch
// varchar(256), zerotier varchar(32), kargs text): client is the node's MAC, branch the
// network under a long or short name (production, prod, …), zerotier the farm id, kargs the
// extra kernel arguments. It is read with Debian's sqlite3 program (-readonly -json), so
// bootstrapd links no SQLite library. Row numbers are SQLite's rowid, which the operator can
// look up with sqlite3 too.
//
// The kernel directory holds the kernel files at its top and net/<branch>.efi symlinks
// naming each network's kernel.
//
// Nothing here changes anything: Map and ScanKernels decide, the command applies through
// the daemon's admin API.
package migrate
