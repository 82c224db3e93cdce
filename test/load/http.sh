#!/bin/sh
# http.sh: load bootstrapd's HTTP side with wrk, beside nginx serving the same bytes as static
# files, in the same run. Prints one line per case; docs/PERFORMANCE.md quotes its output.
#
#   test/load/http.sh [DURATION] [CONNECTIONS]
#
# Both servers share the machine with wrk. SPLIT=1 gives the servers CPU 1 and wrk (one
# thread) CPU 0, so the tail latency is the server's, not the three of them queueing for two
# CPUs; NGINX_WORKERS (default 1) sets nginx's worker_processes.
#
# Needs wrk and nginx (Debian packages wrk, nginx-light), the iPXE binaries in var/ipxe
# (make ipxe) and a kernel file (the running system's /boot/vmlinuz-*).
set -eu
cd "$(dirname "$0")/../.."
dur=${1:-10s}
conns=${2:-32}
work=$(mktemp -d)
chmod 755 "$work" # nginx's workers run as an unprivileged user
trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT

for kernel in /boot/vmlinuz-*; do break; done
mkdir -p "$work/kernels/net" "$work/www/kernel/net" "$work/www/ipxe/test/42" "$work/data"
cp "$kernel" "$work/kernels/zos.efi" && ln -s ../zos.efi "$work/kernels/net/test.efi"
cp "$kernel" "$work/www/kernel/net/test.efi"

go build -tags nomsgpack,grpcnotrace -o "$work/bootstrapd" ./cmd/bootstrapd
cat >"$work/appliance.yaml" <<YAML
http: {listen: "127.0.0.1:18080"}
tftp: {listen: "127.0.0.1:18069"}
dhcp: {enabled: false}
paths: {data: $work/data, kernels: $work/kernels, ipxe: $PWD/var/ipxe}
admin: {socket: $work/admin.sock}
log: {level: warn}
YAML
srvcpu="" cli="wrk -t2"
if [ "${SPLIT:-0}" = 1 ]; then
	srvcpu="taskset -c 1" cli="taskset -c 0 wrk -t1"
fi
$srvcpu "$work/bootstrapd" serve --config "$work/appliance.yaml" 2>"$work/bootstrapd.log" &
echo $! >"$work/bootstrapd.pid"

cat >"$work/nginx.conf" <<NGINX
worker_processes ${NGINX_WORKERS:-1};
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	server { listen 127.0.0.1:18081; root $work/www; default_type text/plain; }
}
NGINX
$srvcpu nginx -c "$work/nginx.conf"
# Ready when it answers; a fixed sleep lost the race on a busy machine.
i=0
until curl -sf -o /dev/null http://127.0.0.1:18080/healthz; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { echo "bootstrapd did not start:" >&2; cat "$work/bootstrapd.log" >&2; exit 1; }
	sleep 0.1
done
# nginx serves the exact script bootstrapd renders, as a static file.
curl -sf http://127.0.0.1:18080/ipxe/test/42/console=ttyS0 >"$work/www/ipxe/test/42/console=ttyS0"
"$work/bootstrapd" node add --socket "$work/admin.sock" --mac 52:54:00:12:34:56 --network test --farm 42 >/dev/null

run() {
	name=$1 url=$2
	# Both servers must answer 200 with the same bytes, or the comparison means nothing.
	code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
	[ "$code" = 200 ] || { echo "$url answered $code" >&2; exit 1; }
	out=$($cli -c"$conns" -d"$dur" --latency "$url")
	rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	p50=$(echo "$out" | awk '$1=="50%" {print $2}')
	p99=$(echo "$out" | awk '$1=="99%" {print $2}')
	tr=$(echo "$out" | awk '/Transfer\/sec/ {print $2}')
	printf '%-34s %10s req/s  p50 %8s  p99 %8s  %10s/s\n' "$name" "$rps" "$p50" "$p99" "$tr"
}
for p in ipxe/test/42/console=ttyS0 kernel/net/test.efi; do
	[ "$(curl -s http://127.0.0.1:18080/$p | sha256sum)" = "$(curl -s http://127.0.0.1:18081/$p | sha256sum)" ] ||
		{ echo "bootstrapd and nginx serve different bytes for /$p" >&2; exit 1; }
done
echo "$cli -c$conns -d$dur, servers: ${srvcpu:-any CPU}, nginx workers ${NGINX_WORKERS:-1}, $(nproc) vCPUs, $(date -u +%Y-%m-%d)"
run "bootstrapd /ipxe/test/42/console=ttyS0" "http://127.0.0.1:18080/ipxe/test/42/console=ttyS0"
run "nginx     same script, static file" "http://127.0.0.1:18081/ipxe/test/42/console=ttyS0"
run "bootstrapd /provision/<mac> (bbolt)" "http://127.0.0.1:18080/provision/52:54:00:12:34:56"
run "bootstrapd /kernel/net/test.efi" "http://127.0.0.1:18080/kernel/net/test.efi"
run "nginx     same kernel, sendfile" "http://127.0.0.1:18081/kernel/net/test.efi"
