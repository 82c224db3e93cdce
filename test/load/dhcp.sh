#!/bin/sh
# dhcp.sh: ProxyDHCP load with Kea's perfdhcp, against bootstrapd and against dnsmasq in
# proxy mode (dhcp-range=…,proxy + pxe-service), in the same run, on one veth pair between
# two network namespaces this script creates (and removes). Root.
#
#   test/load/dhcp.sh [RATE] [SECONDS]
#
# perfdhcp sends DISCOVERs from RATE/s simulated clients carrying UEFI x64 PXE options
# (60 PXEClient:Arch:00007:UNDI:003000, 93 = 7) and counts the offers (-i: DISCOVER/OFFER
# only). Needs kea-admin (perfdhcp), dnsmasq-base, and the iPXE binaries in var/ipxe.
# CLIENTS (default 100,000) is how many MACs perfdhcp simulates. SPLIT=1 gives the servers CPU 1 and perfdhcp CPU 0: otherwise perfdhcp and the server share
# the two CPUs, and past a few thousand requests a second the delays measure that sharing.
# bootstrapd runs at its default log level (info: boot stages within its log budget), and
# dnsmasq at its own (a line per transaction, to a file).
set -eu
cd "$(dirname "$0")/../.."
rate=${1:-2000}
secs=${2:-10}
ns=bsdload$$
work=$(mktemp -d)
cleanup() {
	[ -f "$work/pid" ] && kill "$(cat "$work/pid")" 2>/dev/null
	ip netns del "${ns}c" 2>/dev/null || true
	ip netns del "${ns}s" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

ip netns add "${ns}c"
ip netns add "${ns}s"
ip link add v0 netns "${ns}c" type veth peer name v1 netns "${ns}s"
ip -n "${ns}c" addr add 10.77.0.1/24 dev v0
ip -n "${ns}s" addr add 10.77.0.2/24 dev v1
for n in c s; do ip -n "$ns$n" link set lo up; done
ip -n "${ns}c" link set v0 up
ip -n "${ns}s" link set v1 up

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
vendor=$(hex "PXEClient:Arch:00007:UNDI:003000")

run() {
	name=$1
	out=$(ip netns exec "${ns}c" taskset -c "$clicpu" perfdhcp -4 -l v0 -i -r "$rate" -p "$secs" -R "${CLIENTS:-100000}" \
		-o "60,$vendor" -o 93,0007 -o 94,010300 2>&1 || true)
	sent=$(echo "$out" | awk '/sent packets:/ {print $3; exit}')
	recv=$(echo "$out" | awk '/received packets:/ {print $3; exit}')
	drops=$(echo "$out" | awk '/drops:/ {print $2; exit}')
	avg=$(echo "$out" | awk '/avg delay:/ {print $3, $4; exit}')
	printf '%-28s offered rate %5s/s  sent %7s  offers %7s  lost %6s  avg delay %s\n' "$name" "$rate" "$sent" "$recv" "$drops" "$avg"
}

srvcpu=0-$(($(nproc) - 1)) clicpu=$srvcpu
if [ "${SPLIT:-0}" = 1 ]; then
	srvcpu=1 clicpu=0
fi
echo "perfdhcp -r $rate -p $secs -R ${CLIENTS:-100000}, servers on CPUs $srvcpu, perfdhcp on CPUs $clicpu, $(nproc) vCPUs, $(date -u +%Y-%m-%d)"

go build -tags nomsgpack,grpcnotrace -o "$work/bootstrapd" ./cmd/bootstrapd
mkdir -p "$work/kernels" "$work/data"
cat >"$work/appliance.yaml" <<YAML
http: {listen: "10.77.0.2:18080"}
tftp: {listen: "10.77.0.2:18069"}
dhcp: {enabled: true, interfaces: [v1]}
paths: {data: $work/data, kernels: $work/kernels, ipxe: $PWD/var/ipxe}
admin: {socket: $work/admin.sock}
YAML
ip netns exec "${ns}s" taskset -c "$srvcpu" "$work/bootstrapd" serve --config "$work/appliance.yaml" 2>"$work/bootstrapd.log" &
echo $! >"$work/pid"
sleep 2
run "bootstrapd"
# What the run cost the store: the flushes of the seen MACs and events, and the evictions
# of MACs without a record past store.max_discovered.
ip netns exec "${ns}s" curl -sf http://10.77.0.2:18080/metrics | awk '
	/^bootstrapd_store_flush_duration_seconds_sum/ {sum=$2}
	/^bootstrapd_store_flush_duration_seconds_count/ {n=$2}
	/^bootstrapd_store_discovered_evicted_total/ {ev=$2}
	END {if (n > 0) printf "%-28s store flushes %d, mean %.1f ms, total %.2f s; MACs evicted %d\n", "", n, 1000*sum/n, sum, ev}'
kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true

ip netns exec "${ns}s" taskset -c "$srvcpu" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --interface=v1 \
	--bind-interfaces --dhcp-range=10.77.0.0,proxy --pxe-service=x86-64_EFI,"boot",ipxe-amd64.efi \
	--log-facility="$work/dnsmasq.log" --pid-file="$work/dnsmasq.pid" &
echo $! >"$work/pid"
sleep 2
run "dnsmasq (proxy mode)"
