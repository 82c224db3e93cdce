#!/bin/sh
# store.sh: the two store backends side by side, in the same run: /provision/<mac> under
# wrk and a 1,000-record `node import`, against bootstrapd on bbolt and on etcd (Debian's
# etcd-server on loopback), beside nginx serving the same script as a static file.
# docs/PERFORMANCE.md quotes its output.
#
#   test/load/store.sh [DURATION] [CONNECTIONS]
#
# Needs wrk, nginx (nginx-light) and etcd (etcd-server), the iPXE binaries in var/ipxe
# (make ipxe) and a kernel file (the running system's /boot/vmlinuz-*).
set -eu
cd "$(dirname "$0")/../.."
dur=${1:-10s}
conns=${2:-32}
work=$(mktemp -d)
chmod 755 "$work" # nginx's workers run as an unprivileged user
trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT

for kernel in /boot/vmlinuz-*; do break; done
mkdir -p "$work/kernels/net" "$work/www/provision"
cp "$kernel" "$work/kernels/zos.efi" && ln -s ../zos.efi "$work/kernels/net/test.efi"
go build -tags nomsgpack,grpcnotrace -o "$work/bootstrapd" ./cmd/bootstrapd

etcd --name load --data-dir "$work/etcd" \
	--listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 \
	--listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
	--initial-cluster load=http://127.0.0.1:12380 --max-txn-ops 10000 >"$work/etcd.log" 2>&1 &
echo $! >"$work/etcd.pid"
i=0
until curl -sf http://127.0.0.1:12379/health >/dev/null; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { echo "etcd did not start:" >&2; tail "$work/etcd.log" >&2; exit 1; }
	sleep 0.2
done

# One daemon per backend, otherwise the same configuration.
start() {
	backend=$1 port=$2
	mkdir -p "$work/$backend"
	cat >"$work/$backend/appliance.yaml" <<YAML
http: {listen: "127.0.0.1:$port"}
tftp: {listen: "127.0.0.1:$((port + 1))"}
dhcp: {enabled: false}
paths: {data: $work/$backend/data, kernels: $work/kernels, ipxe: $PWD/var/ipxe}
admin: {socket: $work/$backend/admin.sock}
store: {backend: $backend, etcd: {endpoints: ["http://127.0.0.1:12379"], name: load}}
log: {level: warn}
YAML
	"$work/bootstrapd" serve --config "$work/$backend/appliance.yaml" 2>"$work/$backend.log" &
	echo $! >"$work/$backend.pid"
	i=0
	until "$work/bootstrapd" node list --socket "$work/$backend/admin.sock" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { echo "bootstrapd ($backend) did not start:" >&2; cat "$work/$backend.log" >&2; exit 1; }
		sleep 0.2
	done
}
start bbolt 18180
start etcd 18190

# 1,000 records as the predecessor's CSV (client,branch,zerotier): MAC, network, farm.
i=0
while [ "$i" -lt 1000 ]; do
	printf '52:54:00:10:%02x:%02x,test,42\n' $((i / 256)) $((i % 256))
	i=$((i + 1))
done >"$work/nodes.csv"
mac=52:54:00:10:00:07

ms() { echo $(($(date +%s%N) / 1000000)); }
echo "wrk -t2 -c$conns -d$dur, $(nproc) vCPUs, etcd $(etcd --version | awk '/^etcd Version/ {print $3}'), $(date -u +%Y-%m-%d)"
for backend in bbolt etcd; do
	t0=$(ms)
	"$work/bootstrapd" node import --socket "$work/$backend/admin.sock" "$work/nodes.csv" >/dev/null
	t1=$(ms)
	n=$("$work/bootstrapd" node list --socket "$work/$backend/admin.sock" --json | grep -o '"mac"' | wc -l)
	[ "$n" = 1000 ] || { echo "$backend holds $n records after the import, want 1000" >&2; exit 1; }
	printf '%-44s %6d ms\n' "node import, 1,000 new records ($backend)" $((t1 - t0))
	t0=$(ms)
	"$work/bootstrapd" node import --socket "$work/$backend/admin.sock" "$work/nodes.csv" >/dev/null
	t1=$(ms)
	printf '%-44s %6d ms\n' "node import, the same 1,000 again ($backend)" $((t1 - t0))
done

cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
	access_log off;
	server { listen 127.0.0.1:18199; root $work/www; default_type text/plain; }
}
NGINX
nginx -c "$work/nginx.conf"
sleep 1
# Both backends must render the same script for the node, and nginx serve those bytes.
curl -sf "http://127.0.0.1:18180/provision/$mac" | sed 's/18180/PORT/g' >"$work/bbolt.ipxe"
curl -sf "http://127.0.0.1:18190/provision/$mac" | sed 's/18190/PORT/g' >"$work/etcd.ipxe"
cmp -s "$work/bbolt.ipxe" "$work/etcd.ipxe" || { echo "the backends render different scripts" >&2; diff "$work/bbolt.ipxe" "$work/etcd.ipxe" >&2; exit 1; }
grep -q 'farmer_id=42' "$work/bbolt.ipxe" || { echo "the script does not boot the record" >&2; exit 1; }
curl -sf "http://127.0.0.1:18180/provision/$mac" >"$work/www/provision/$mac"

run() {
	name=$1 url=$2
	code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
	[ "$code" = 200 ] || { echo "$url answered $code" >&2; exit 1; }
	out=$(wrk -t2 -c"$conns" -d"$dur" --latency "$url")
	rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	p50=$(echo "$out" | awk '$1=="50%" {print $2}')
	p99=$(echo "$out" | awk '$1=="99%" {print $2}')
	printf '%-44s %10s req/s  p50 %8s  p99 %8s\n' "$name" "$rps" "$p50" "$p99"
}
run "/provision/<mac> (bbolt)" "http://127.0.0.1:18180/provision/$mac"
run "/provision/<mac> (etcd)" "http://127.0.0.1:18190/provision/$mac"
run "nginx, the same script as a static file" "http://127.0.0.1:18199/provision/$mac"
