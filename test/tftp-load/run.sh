#!/bin/sh
# run.sh: time 1 MiB TFTP reads from bootstrapd's tftpd and from dnsmasq's TFTP server,
# serving the same file in the same run, inside a private network namespace (its own
# loopback, so port 69 is free and nothing outside is touched). docs/PERFORMANCE.md quotes it.
#
#   sudo test/tftp-load/run.sh [ROUNDS] [TRANSFERS]
#
# Each round runs TRANSFERS back-to-back reads per case, cases interleaved so that a noisy
# neighbour hits them alike; a line gives the median, 90th percentile and maximum time of
# the complete transfers, and how many failed. The client is curl (lock-step, like firmware).
# Servers run on CPU 0 and the client on CPU 0 ("same") or CPU 1 ("split"), with taskset,
# because lock-step TFTP on small VMs is bimodal (docs/FIRMWARE.md, "TFTP").
#
# Environment: CPUS="0 1" (client CPUs), BLKSIZES="512 1468", CASES (default: all three
# servers, "dnsmasq:69 tftpd:6969 tftpd-anticipate8:6970"), LOSS=1 drops 1 % of UDP
# packets in the namespace, both directions (nftables; this kernel has no sch_netem),
# TIMEOUT=5s sets tftpd's ACK timeout (default 1 s), MAXTIME=600 bounds one curl run (curl
# resends its ACK every MAXTIME/50 s, at least 1 s). Needs root, iproute2, curl, dnsmasq,
# and nftables for LOSS. SYSCALLS=1 then counts, with perf stat on each server (package
# linux-perf), the system calls it makes per DATA block over TRANSFERS more same-CPU reads
# at the first blksize.
set -eu
cd "$(dirname "$0")/../.."
rounds=${1:-5}
n=${2:-20}
cpus=${CPUS:-0 1}
blksizes=${BLKSIZES:-512 1468}
ns=tftpload$$
work=$(mktemp -d)
cleanup() {
	for p in "$work"/*.pid; do [ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/server" ./test/tftp-load/server
mkdir "$work/root"
head -c 1048576 /dev/urandom >"$work/root/file.bin"
ip netns add "$ns"
inns() { ip netns exec "$ns" "$@"; }
inns ip link set lo up
if [ -n "${LOSS:-}" ]; then
	# On loopback every packet crosses the input hook once.
	inns nft add table inet loss
	inns nft add chain inet loss input '{ type filter hook input priority 0; }'
	inns nft add rule inet loss input meta l4proto udp numgen random mod 100 '<' "$LOSS" drop
fi

# start NAME CMD...: run CMD in the namespace on CPU 0, recording its own pid (ip netns exec
# forks, so $! would be ip's).
start() {
	name=$1
	shift
	inns sh -c 'echo $$ >"$0"; exec taskset -c 0 "$@"' "$work/$name.pid" "$@" 2>"$work/$name.log" &
}
start dnsmasq dnsmasq --keep-in-foreground --port=0 --enable-tftp --tftp-root="$work/root" \
	--listen-address=127.0.0.1 --bind-interfaces --user=root --pid-file= --log-facility=-
start tftpd "$work/server" -addr 127.0.0.1:6969 -dir "$work/root" -timeout "${TIMEOUT:-0}"
start tftpd-a8 "$work/server" -addr 127.0.0.1:6970 -dir "$work/root" -timeout "${TIMEOUT:-0}" -anticipate 8
sleep 1

# sample CPU PORT BLKSIZE: TRANSFERS reads in one curl process, "time_total size" per line.
sample() {
	urls=""
	i=0
	while [ $i -lt "$n" ]; do urls="$urls -o /dev/null tftp://127.0.0.1:$2/file.bin"; i=$((i + 1)); done
	# shellcheck disable=SC2086
	inns taskset -c "$1" curl -s --max-time "${MAXTIME:-600}" --tftp-blksize "$3" \
		-w '%{time_total} %{size_download}\n' $urls || true
}

cases=${CASES:-dnsmasq:69 tftpd:6969 tftpd-anticipate8:6970}
r=0
while [ $r -lt "$rounds" ]; do
	for cpu in $cpus; do
		for blk in $blksizes; do
			for c in $cases; do
				sample "$cpu" "${c#*:}" "$blk" | sed "s/^/${c%%:*} cpu$cpu blksize$blk /" >>"$work/samples"
			done
		done
	done
	r=$((r + 1))
done

echo "loss=${LOSS:-0}% tftpd-timeout=${TIMEOUT:-1s} rounds=$rounds transfers=$n; ms per 1 MiB transfer"
printf '%-18s %-5s %-8s %8s %8s %8s %5s\n' server cpus blksize median p90 max fail
for c in $cases; do
	for cpu in $cpus; do
		for blk in $blksizes; do
			grep "^${c%%:*} cpu$cpu blksize$blk " "$work/samples" |
				awk '$5 == 1048576 {print $4 * 1000; next} {print "fail"}' | sort -n |
				awk -v s="${c%%:*}" -v p="$([ "$cpu" = 0 ] && echo same || echo split)" -v b="$blk" '
					$1 == "fail" {f++; next} {v[++k] = $1}
					END {printf "%-18s %-5s %-8s %8.1f %8.1f %8.1f %5d\n", s, p, b, v[int((k+1)/2)], v[int(k*0.9+0.5)], v[k], f}'
		done
	done
done

[ "${SYSCALLS:-0}" = 1 ] || exit 0
blk=${blksizes%% *}
blocks=$((1048576 / blk + 1))
echo "system calls per DATA block, server side, $n reads of $blocks blocks (blksize $blk, same CPU)"
ev=""
for sc in recvfrom recvmsg recvmmsg sendto sendmsg sendmmsg poll ppoll select pselect6 epoll_wait epoll_pwait futex read pread64 nanosleep; do
	ev="$ev${ev:+,}syscalls:sys_enter_$sc"
done
for c in $cases; do
	name=${c%%:*}
	[ "$name" = tftpd-anticipate8 ] && name=tftpd-a8
	perf stat -x, -e "$ev" -p "$(cat "$work/$name.pid")" -o "$work/$name.stat" &
	perf=$!
	sleep 0.5 # perf attaches before the reads begin
	sample 0 "${c#*:}" "$blk" >/dev/null
	kill -INT $perf
	wait $perf || true
	awk -F, -v s="${c%%:*}" -v per=$((n * blocks)) '
		$3 ~ /^syscalls:sys_enter_/ && $1 > 0 {sub("syscalls:sys_enter_", "", $3); line = line sprintf(" %s %.2f", $3, $1 / per); tot += $1}
		END {printf "%-18s total %.2f:%s\n", s, tot / per, line}' "$work/$name.stat"
done
