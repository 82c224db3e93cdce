#!/bin/sh
# run.sh: time 1 MiB TFTP reads from bootstrapd's tftpd and from dnsmasq's TFTP server,
# serving the same file in the same run, inside a private network namespace (its own
# loopback, so port 69 is free and nothing outside is touched). docs/PERFORMANCE.md quotes it.
#
#   sudo test/tftp-load/run.sh [ROUNDS] [TRANSFERS]
#
# Each round runs TRANSFERS back-to-back reads per case, cases interleaved so that a noisy
# neighbour hits them alike; a line is the median and the 90th percentile per transfer.
# The client is curl (lock-step, like firmware). Server and client are pinned with taskset,
# on the same CPU and on two CPUs, because lock-step TFTP on small VMs is bimodal (DESIGN.md).
# LOSS=1% adds netem packet loss on the namespace's loopback (both directions);
# TIMEOUT=1s sets tftpd's ACK timeout (default 5 s). Needs root, iproute2, curl, dnsmasq.
set -eu
cd "$(dirname "$0")/../.."
rounds=${1:-5}
n=${2:-20}
ns=tftpload$$
work=$(mktemp -d)
cleanup() {
	for p in "$work"/*.pid; do [ -e "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/server" ./test/tftp-load/server
mkdir "$work/root"
head -c 1048576 /dev/urandom >"$work/root/file.bin"
ip netns add "$ns"
ip -n "$ns" link set lo up
[ -n "${LOSS:-}" ] && ip netns exec "$ns" tc qdisc add dev lo root netem loss "$LOSS"
inns() { ip netns exec "$ns" "$@"; }

# Servers are pinned to CPU 0; the client to CPU 0 (same) or 1 (split).
inns taskset -c 0 dnsmasq --keep-in-foreground --port=0 --enable-tftp --tftp-root="$work/root" \
	--listen-address=127.0.0.1 --bind-interfaces --user=root --pid-file= --log-facility=- \
	2>"$work/dnsmasq.log" &
echo $! >"$work/dnsmasq.pid"
inns taskset -c 0 "$work/server" -addr 127.0.0.1:6969 -dir "$work/root" -timeout "${TIMEOUT:-0}" &
echo $! >"$work/tftpd.pid"
inns taskset -c 0 "$work/server" -addr 127.0.0.1:6970 -dir "$work/root" -timeout "${TIMEOUT:-0}" -anticipate 8 &
echo $! >"$work/tftpd-a8.pid"
sleep 1

# sample CPU PORT BLKSIZE: TRANSFERS reads in one curl process, one time_total per line.
sample() {
	urls=""
	i=0
	while [ $i -lt "$n" ]; do urls="$urls -o /dev/null tftp://127.0.0.1:$2/file.bin"; i=$((i + 1)); done
	# shellcheck disable=SC2086
	inns taskset -c "$1" curl -sS --max-time 600 --tftp-blksize "$3" -w '%{time_total} %{size_download}\n' $urls
}

cases="dnsmasq:69 tftpd:6969 tftpd-anticipate8:6970"
r=0
while [ $r -lt "$rounds" ]; do
	for cpu in 0 1; do
		for blk in 512 1468; do
			for c in $cases; do
				sample $cpu "${c#*:}" $blk | sed "s/^/${c%%:*} cpu$cpu blksize$blk /" >>"$work/samples"
			done
		done
	done
	r=$((r + 1))
done

grep -v ' 1048576$' "$work/samples" | sed 's/^/short transfer: /' >&2 || true
echo "loss=${LOSS:-0} tftpd-timeout=${TIMEOUT:-5s} rounds=$rounds transfers=$n; ms per 1 MiB transfer"
printf '%-18s %-5s %-9s %8s %8s %8s\n' server pin blksize median p90 max
for c in $cases; do
	for cpu in 0 1; do
		for blk in 512 1468; do
			grep "^${c%%:*} cpu$cpu blksize$blk " "$work/samples" | awk '{print $4 * 1000}' | sort -n |
				awk -v s="${c%%:*}" -v p="$([ $cpu = 0 ] && echo same || echo split)" -v b=$blk \
					'{v[NR]=$1} END {printf "%-18s %-5s %-9s %8.1f %8.1f %8.1f\n", s, p, b, v[int((NR+1)/2)], v[int(NR*0.9+0.5)], v[NR]}'
		done
	done
done
