#!/bin/sh
# storm.sh: a boot storm. N simulated nodes (test/load/storm), each with its own MAC and
# leased address, walk the whole boot path at once (firmware DHCP, TFTP of the offered
# binary, iPXE DHCP, the script, a 32 MiB kernel over HTTP), first against bootstrapd, then
# against the stand-in a farm would otherwise run (dnsmasq as ProxyDHCP and TFTP server, nginx
# serving a static copy of the script and the kernel), in the same run. Root.
#
#   test/load/storm.sh [N]          (N = 1000 by default; make storm)
#   TARGETS=bootstrapd test/load/storm.sh 200   (make storm-check: the zero-failure check)
#
# The LAN is the e2e test's: netns <lan> holds the bridge and dnsmasq giving the leases (no
# PXE), bootstrapd or the stand-in runs in netns <srv>, the simulator in netns <cli>. The
# leases (10.P.128.0/17) are routed to <cli> as local addresses, so every node sends from its
# own. Exits 1 if any node failed against any target. Needs dnsmasq-base, nginx-light and the
# iPXE binaries in var/ipxe (make ipxe). KEEP=1 keeps the work directory (logs).
set -eu
cd "$(dirname "$0")/../.."
n=${1:-1000}
case "$n" in '' | *[!0-9]*) echo "storm.sh: N must be a number (at most 16384)" >&2; exit 1 ;; esac
if [ "$n" -lt 1 ] || [ "$n" -gt 16384 ]; then echo "storm.sh: N must be 1 to 16384" >&2; exit 1; fi
targets=${TARGETS:-bootstrapd standin}
[ "$(id -u)" = 0 ] || { echo "storm.sh: network namespaces need root" >&2; exit 1; }
[ -s var/ipxe/ipxe-amd64.efi ] || { echo "storm.sh: no var/ipxe/ipxe-amd64.efi (make ipxe)" >&2; exit 1; }
for c in dnsmasq ip; do
	command -v "$c" >/dev/null || { echo "storm.sh: $c not found (make deps)" >&2; exit 1; }
done
case "$targets" in *standin*) command -v nginx >/dev/null || { echo "storm.sh: nginx not found (make deps)" >&2; exit 1; } ;; esac

ns=bsdstorm$$
p=10.$((100 + $$ % 100))
work=$(mktemp -d)
chmod 755 "$work" # nginx's workers run as an unprivileged user
# stop ends the daemons whose pid files are named.
stop() {
	for f in "$@"; do
		[ -s "$work/$f" ] && kill "$(cat "$work/$f")" 2>/dev/null
		rm -f "$work/$f"
	done
	sleep 0.5
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	stop bootstrapd.pid dnsmasq.pid nginx.pid leases.pid
	for r in cli srv lan; do ip netns del "$ns$r" 2>/dev/null || true; done
	if [ "${KEEP:-}" = 1 ]; then echo "storm.sh: logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for r in lan srv cli; do
	ip netns add "$ns$r"
	ip -n "$ns$r" link set lo up
done
ip -n "${ns}lan" link add br0 type bridge
ip -n "${ns}lan" addr add "$p.0.1/16" dev br0
ip -n "${ns}lan" link set br0 up
for r in srv cli; do
	ip -n "${ns}lan" link add "v$r" type veth peer name "${r}0" netns "$ns$r"
	ip -n "${ns}lan" link set "v$r" master br0 up
	ip -n "$ns$r" link set "${r}0" up
done
ip -n "${ns}srv" addr add "$p.0.2/16" dev srv0
ip -n "${ns}cli" addr add "$p.0.3/16" dev cli0
# The nodes' leases are local addresses of <cli>; the others reach them through <cli>'s one
# address, so no neighbour table holds a thousand entries.
ip -n "${ns}cli" route add local "$p.128.0/17" dev lo
ip -n "${ns}srv" route add "$p.128.0/17" via "$p.0.3"
ip -n "${ns}lan" route add "$p.128.0/17" via "$p.0.3"
ip -n "${ns}cli" route add 255.255.255.255/32 dev cli0

# The lease server gives every node a fixed address (dhcp-host), as a farm's DHCP server
# often does, and keeps its leases in memory (--leasefile-ro). With a dynamic range, dnsmasq
# offers the same free address to the many nodes that ask at the same moment and NAKs all but
# one, over and over; rewriting the lease file per lease would be the storm's bottleneck too.
# Nodes of the bootstrapd run (02:b5:01:…) get 10.P.128.0 up, the stand-in's (02:b5:02:…)
# 10.P.192.0 up.
awk -v n="$n" -v p="$p" 'BEGIN {
	for (t = 1; t <= 2; t++)
		for (i = 0; i < n; i++)
			printf "02:b5:%02x:%02x:%02x:%02x,%s.%d.%d\n", t, int(i / 65536), int(i / 256) % 256, i % 256,
				p, 64 + 64 * t + int(i / 256), i % 256
}' >"$work/hosts"
ip netns exec "${ns}lan" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
	--user=root --interface=br0 --bind-interfaces --dhcp-authoritative --no-ping \
	--dhcp-range="$p.128.0,static,255.255.0.0,1h" --dhcp-hostsfile="$work/hosts" --dhcp-lease-max=65536 \
	--leasefile-ro --log-facility="$work/leases.log" --pid-file="$work/leases.pid" &

go build -trimpath -tags nomsgpack,grpcnotrace -o "$work/bootstrapd" ./cmd/bootstrapd
go build -o "$work/storm" ./test/load/storm

# The kernel: 32 MiB, the size of a Zero-OS kernel with its initramfs.
mkdir -p "$work/kernels/net" "$work/data" "$work/www/kernel/net"
head -c 33554432 /dev/urandom >"$work/kernels/zos-storm.efi"
ln -s ../zos-storm.efi "$work/kernels/net/test.efi"
cp "$work/kernels/zos-storm.efi" "$work/www/kernel/net/test.efi"
ksize=$(wc -c <"$work/kernels/zos-storm.efi")

cat >"$work/appliance.yaml" <<YAML
http: {listen: ":8080"}
tftp: {listen: ":69"}
dhcp: {enabled: true, interfaces: [srv0]}
paths: {data: $work/data, kernels: $work/kernels, ipxe: $PWD/var/ipxe}
networks: {test: "testing (v3)"}
default_node: {network: test, farm: 42}
admin: {socket: $work/admin.sock}
boot: {ntp: ""}
YAML

echo "storm: $n nodes, $(nproc) vCPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
status=0
results=""
for target in $targets; do
	case "$target" in
	bootstrapd)
		ip netns exec "${ns}srv" "$work/bootstrapd" serve --config "$work/appliance.yaml" 2>"$work/bootstrapd.log" &
		echo $! >"$work/bootstrapd.pid"
		i=0
		until grep -q 'service=dhcp' "$work/bootstrapd.log" && grep -q 'service=tftp' "$work/bootstrapd.log" &&
			ip netns exec "${ns}srv" curl -sf -o /dev/null "http://$p.0.2:8080/healthz"; do
			i=$((i + 1))
			[ $i -lt 100 ] || { echo "storm.sh: bootstrapd did not start:" >&2; tail -20 "$work/bootstrapd.log" >&2; exit 1; }
			sleep 0.2
		done
		# The stand-in's static script: the one bootstrapd renders for a node of default_node,
		# with nginx as its base.
		ip netns exec "${ns}srv" curl -sf "http://$p.0.2:8080/provision/02:b5:ff:00:00:00" |
			sed "s#http://$p.0.2:8080/#http://$p.0.2:8081/#g" >"$work/www/script.ipxe"
		pids=$(cat "$work/bootstrapd.pid")
		prefix=02:b5:01
		;;
	standin)
		[ -s "$work/www/script.ipxe" ] || { echo "storm.sh: the stand-in's script comes from the bootstrapd run: TARGETS=\"bootstrapd standin\"" >&2; exit 1; }
		cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 8192; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	server {
		listen $p.0.2:8081;
		root $work/www;
		default_type text/plain;
		location /provision/ { try_files /script.ipxe =404; }
	}
}
NGINX
		# Firmware gets the binary over TFTP, iPXE (option 175) the script over HTTP, both
		# named in the proxy offer as bootstrapd does. --tftp-max: dnsmasq's default is 50.
		ip netns exec "${ns}srv" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
			--user=root --interface=srv0 --bind-interfaces --dhcp-range="$p.0.0,proxy,255.255.0.0" \
			--dhcp-match=set:ipxe,175 \
			--pxe-service="tag:ipxe,x86-64_EFI,script,http://$p.0.2:8081/provision/script.ipxe" \
			--pxe-service=tag:!ipxe,x86-64_EFI,boot,ipxe-amd64.efi \
			--enable-tftp --tftp-root="$PWD/var/ipxe" --tftp-max=4096 \
			--log-facility="$work/dnsmasq.log" --pid-file="$work/dnsmasq.pid" &
		ip netns exec "${ns}srv" nginx -c "$work/nginx.conf"
		i=0
		until [ -s "$work/dnsmasq.pid" ] && [ -s "$work/nginx.pid" ] &&
			ip netns exec "${ns}srv" curl -sf -o /dev/null "http://$p.0.2:8081/provision/x"; do
			i=$((i + 1))
			[ $i -lt 100 ] || { echo "storm.sh: the stand-in did not start" >&2; cat "$work/nginx.err" >&2; exit 1; }
			sleep 0.2
		done
		master=$(cat "$work/nginx.pid")
		pids="$(cat "$work/dnsmasq.pid"),$master$(pgrep -P "$master" | sed 's/^/,/' | tr -d '\n')"
		prefix=02:b5:02
		;;
	*)
		echo "storm.sh: unknown target $target (bootstrapd, standin)" >&2
		exit 1
		;;
	esac
	out=$(ip netns exec "${ns}cli" "$work/storm" -n "$n" -label "$target" -mac-prefix "$prefix" \
		-pids "$pids" -kernel-size "$ksize") || status=1
	echo "$out" | grep -v '^RESULT'
	results="$results
$(echo "$out" | grep '^RESULT')"
	stop bootstrapd.pid dnsmasq.pid nginx.pid
done

# The ratio: bootstrapd's figure over the stand-in's (below 1 is faster, or lighter).
echo "$results" | awk '
	/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[$2, kv[1]] = kv[2] } ; t[++k] = $2 }
	END {
		if (k < 2) exit
		a = t[1]; b = t[2]
		printf "ratio %s / %s:", substr(a, 7), substr(b, 7)
		split("wall_s p50_ms p99_ms max_ms cpu_s rss_mib", keys, " ")
		for (j = 1; j <= 6; j++) {
			x = v[a, keys[j]]; y = v[b, keys[j]]
			printf "  %s %s", keys[j], (y > 0 ? sprintf("%.2f", x / y) : "-")
		}
		printf "\n"
	}'
exit $status
