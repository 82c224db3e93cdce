// Package store keeps bootstrapd's state in one bbolt file: node records (MAC → network, farm
// id, kernel arguments, kernel override), the MACs that asked for something (seen), and each
// MAC's recent boot events.
//
// Store is the interface the rest of bootstrapd uses; *DB (this file format, the default)
// and store/etcdstore (several appliances sharing one etcd) implement it, and
// store/storetest is the suite both pass.
//
// # Records and activity
//
// Records are an authenticated operator's: every record write (CreateNode, UpdateNode,
// ImportNodes, DeleteNode) is one durable bbolt transaction, so a crash never leaves half a
// record or half an import.
//
// Activity (MarkSeen, AppendEvent) comes from unauthenticated network requests, so it is
// written behind: it goes to memory under a mutex held for a map update, and Run writes all
// of it in one transaction every FlushInterval (1 s). A request never waits on the disk.
// kill -9 loses at most one FlushInterval of activity; Close (SIGTERM) flushes first and
// loses nothing. A flush that fails (disk full) keeps its activity for the next one.
//
// Reads (ListSeen, GetSeen, Events, CountNodes) merge the pending activity into what is on
// disk instead of flushing: an operator's read or a /metrics scrape never writes. A flush
// is atomic for them, so every mark and event shows exactly once. MaxDiscovered is applied
// at the flush, so between two flushes a read can list up to MaxDiscovered pending MACs
// more.
//
// Only the daemon opens the file: bbolt takes an exclusive flock, and a second process gets
// ErrLocked instead of waiting forever.
//
// # Bounds
//
// Everything the network can make the store hold is bounded, here rather than in the
// callers, since the store is the last line:
//
//   - strings: Event.Stage 32 bytes, Event.Detail 256 (cut on a character), Seen.Arch 40 and
//     Seen.IP 45 (longer ones dropped); control characters and invalid UTF-8 never stored.
//   - MACs without a record ("discovered": a seen entry, events, or both): at most
//     MaxDiscovered (10000) on disk, the least recently heard of evicted with their events
//     (bootstrapd_store_discovered_evicted_total). MACs with a record are bounded by the
//     records and never evicted.
//   - events: MaxEvents (50) per MAC with a record, MaxDiscoveredEvents (10) per MAC without
//     one (anyone can invent those); older than EventTTL (7 days) they expire, and so do seen
//     entries of MACs without a record (bootstrapd_store_expired_total).
//   - memory: at most MaxDiscovered pending MACs without a record, plus one per record, each
//     with at most MaxEvents (MaxDiscoveredEvents without a record) pending events; beyond
//     that new activity is dropped
//     (bootstrapd_store_activity_dropped_total). A pending event takes about 350 bytes
//     (288 of strings), so with the defaults and no records the pending activity stays
//     under 10000 × 10 × 350 B ≈ 35 MB even if every MAC sends 10 events within one
//     FlushInterval; short of that it is the activity of one interval.
//
// # Size of the file
//
// On disk (JSON as putJSON writes it, where no character costs more than two bytes) and in
// bbolt's pages (16-byte element header per key):
//
//   - a seen entry: at most 368 B (335 of JSON with a 40-byte arch and a 45-byte IP of
//     escaped characters, a 17-byte key, a 16-byte header);
//   - an event: at most 664 B (640 of JSON with a 32-byte stage and a 256-byte detail of
//     escaped characters, an 8-byte sequence key, a 16-byte header).
//
// With N = MaxDiscovered, P = 4096-byte pages and E = MaxDiscoveredEvents (what the network
// alone can fill; each record adds one more MAC with E = MaxEvents):
//
//	per MAC = 2 × (368 + 49)                      seen entry and timeline key, pages ≥ half full
//	        + (⌈E × 664 / P⌉ + 2) × P             timeline: full pages, a part-empty one at each end
//	file   ≤ 2 × N × per MAC + 32 MiB             copy-on-write high-water mark, bbolt's 16 MiB growth
//
// For the defaults (N = 10000, E = 10): per MAC = 834 + 4 × 4096 = 17218 B, so the file
// stays under 377914432 B (360.4 MiB) whatever the network sends; TestSizeBoundOfDefaults
// keeps these figures equal to the code, and TestSpoofedMACFlood holds a flood to the bound
// (docs/RELIABILITY.md has what it measured). A file that grew
// before these bounds existed keeps its size (bbolt never shrinks a file; `bbolt compact`
// does, offline) but reuses the freed pages.
//
// It owns the bbolt file and everything in it. It must not know about HTTP, DHCP or TFTP:
// callers pass MACs and strings, and it bounds them itself.
package store
