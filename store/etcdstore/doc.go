// Package etcdstore keeps bootstrapd's state in etcd, so that several appliances (two on one
// LAN for maintenance, or one per segment or site) share one set of node records, seen MACs
// and boot events. It implements store.Store; the bbolt file (package store) stays the
// default for a single appliance.
//
// # Keys
//
// Under Config.Prefix (default /bootstrapd/):
//
//	nodes/<mac>                        a node record (store.Node as JSON)
//	seen/<mac>/<appliance>             what one appliance saw of a MAC (store.Seen as JSON)
//	events/<mac>/<ns>-<appliance>-<n>  one boot event (store.Event as JSON); <ns> is the
//	                                   event's time in nanoseconds, 16 hex digits, so the
//	                                   keys of a MAC list in time order
//
// Seen entries are per appliance, so appliances never write the same activity key and
// never need a read-modify-write across the network; reads merge them (earliest FirstSeen,
// latest LastSeen, the sum of the counts). Each event names the appliance that saw it.
//
// # Records: written through etcd, read from memory
//
// Record writes are etcd transactions: CreateNode compares the key's create revision with
// 0, so it never overwrites; UpdateNode compares the revision it read; ImportNodes is one
// transaction with a comparison per record, so an import lands whole or not at all (etcd
// refuses a transaction of more than --max-txn-ops operations, 128 by default: an import
// of more records needs the server's limit raised, and says so).
//
// Boots never wait on etcd. GetNode and ListNodes read an in-memory copy of every record,
// loaded at Open and kept current by a watch. A probe reads from etcd every second; when
// it fails, the appliance logs it once, sets bootstrapd_store_etcd_up to 0 and goes on
// booting from the copy, while writes fail with store.ErrUnavailable and change nothing.
// When etcd answers again, the copy is loaded afresh and the watch restarts from it: no
// restart is needed. Config.CacheFile keeps the copy on disk too (replaced atomically), so
// an appliance restarted while etcd is down still boots the nodes it knew.
//
// # Activity: batched and bounded
//
// MarkSeen and AppendEvent only touch memory, as in the bbolt store, under the same bounds:
// at most MaxDiscovered pending MACs without a record, MaxEvents (MaxDiscoveredEvents)
// pending events per MAC. Run writes them every FlushInterval in transactions of at most
// 100 operations, so a MAC flood becomes a bounded number of requests a second, not one
// per packet. A failed flush keeps its activity for the next one.
//
// A sweep (every minute, and at a flush that may have passed the bound) applies the bounds
// to what is in etcd, whichever appliance wrote it: events older than EventTTL, or beyond
// MaxEvents per MAC with a record and MaxDiscoveredEvents per MAC without one, are deleted;
// seen entries of MACs without a record expire after EventTTL; beyond MaxDiscovered MACs
// without a record, the least recently heard of are evicted. Every appliance sweeps; the
// deletes are idempotent. Between two sweeps each appliance can add at most MaxDiscovered
// MACs per flush, and a flush that may pass the bound sweeps at once.
//
// It must not know about HTTP, DHCP or TFTP, and only cmd/bootstrapd imports it: the etcd
// client stays out of every other package.
package etcdstore
