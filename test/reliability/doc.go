// Package reliability is bootstrapd's reliability suite: it builds the real binary
// (go build ./cmd/bootstrapd), runs it as a separate process on loopback with a configuration
// written for each test (ProxyDHCP off, HTTP and TFTP on 127.0.0.1 ports the kernel picks),
// and treats it the way a hostile network and a careless operator would. It proves that:
//
//   - kill -9 during node adds: every node the admin API acknowledged with 201 is still there
//     after SIGKILL at a random point and a restart on the same data directory, also after
//     three such crashes in a row (TestKillDuringNodeAdds);
//   - an interrupted kernel upload (SIGKILL or SIGTERM mid-body) never leaves a kernel under
//     its name, and the next start removes the temporary .upload-* file and logs what it
//     removed (TestUploadInterrupted);
//   - many concurrent kernel downloads, each on its own connection, next to as many silent
//     connections, are all served whole; with http.max_connections below the connection
//     count, silent connections are closed to make room, counted in
//     bootstrapd_http_connections_evicted_total, and the downloads still succeed
//     (TestConcurrentClientsAndIdleConnections);
//   - a flood of /provision requests from random MACs with a 4 KiB arch answers 200 every
//     time, keeps GET /api/v1/discovered within events.max_discovered with the arch dropped
//     (it is no architecture name), counts evictions in bootstrapd_store_discovered_evicted_total and keeps
//     bootstrapd.db small (TestSpoofedMACFlood);
//   - SIGTERM with a TFTP client that stopped acknowledging and an HTTP client that stopped
//     reading ends the daemon within http.shutdown_grace + 1 s (TestSIGTERMWithTransfersInFlight);
//   - SIGHUP while the daemon is still starting, from its first log line until its listeners
//     are up (one, and a storm of them), does not kill it (TestSIGHUPAtStart; before package
//     initialisation no Go program can catch it, see the test).
//
// Each test logs its figures (counts, sizes, times, the daemon's resident memory) on one
// line starting with "SOAK:", which docs/RELIABILITY.md collects. No test asserts a speed
// beyond the bounds above.
//
// The short form runs with every other test (go test ./..., make test) in about a minute on
// two CPUs:
//
//	go test -count=1 ./test/reliability/
//
// The long form (5,000 node adds, 1,000 downloads next to 1,000 silent connections, 50,000
// spoofed MACs) runs with BOOTSTRAPD_SOAK=1:
//
//	test/reliability/soak.sh
//	BOOTSTRAPD_SOAK=1 go test -v -count=1 -timeout 60m ./test/reliability/
//
// BOOTSTRAPD_IPXE_DIR names real iPXE binaries; without it each test writes small fake ones.
// BOOTSTRAPD_BIN runs a bootstrapd built elsewhere instead of building this tree's.
package reliability
