#!/bin/sh
# test/deb/nspawn.sh [DEB]: install the bootstrapd .deb into a Debian root made by debootstrap
# and boot that root with systemd-nspawn, so real systemd (as PID 1 of the container) starts
# bootstrapd.service from the package's postinst, with every sandboxing option of the unit in
# force; then check it serves, reloads, restarts, stops cleanly, and that remove and purge
# behave. Complements test.sh, which runs on this machine without systemd as PID 1.
#
# DEB defaults to a fresh packaging/build-deb.sh build for this machine's architecture.
# Needs root, debootstrap and systemd-container (apt-get install debootstrap
# systemd-container). The debootstrapped root (Debian bookworm, systemd 252: this host's
# cgroup v1/v2 hybrid is too old for trixie's systemd) is cached in $ROOTFS_CACHE (default
# /var/tmp/bootstrapd-nspawn/bookworm-<hash of the package list>, about 270 MB, 3 minutes to make once); every run boots
# a throw-away copy of it. The container gets a private network (loopback only), so nothing
# it binds is visible to this machine. KEEP=1 keeps the work directory.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
# bootstrapd's Depends (but ipxe, which bookworm has too old) and what the checks use.
include=systemd,systemd-sysv,dbus,adduser,isolinux,syslinux-common,procps,curl,iproute2
cache="${ROOTFS_CACHE:-/var/tmp/bootstrapd-nspawn/bookworm-$(echo "$include" | md5sum | cut -c1-8)}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

die() { echo "nspawn.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
for t in debootstrap systemd-nspawn dpkg-deb; do
	command -v "$t" >/dev/null || die "$t is missing (apt-get install debootstrap systemd-container)"
done

work=$(mktemp -d /var/tmp/bootstrapd-nspawn.XXXXXX)
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [ "$#" -ge 1 ]; then
	deb="$1"
else
	deb=$(sh "$top/packaging/build-deb.sh" "$(git -C "$top" describe --tags --always --dirty 2>/dev/null || echo dev)" \
		"$(dpkg --print-architecture)" "$work/out") || die "build-deb.sh failed"
fi
IPXE_KEEP_DEB="$work/ipxe-deb" sh "$top/packaging/fetch-ipxe.sh" "$work/ipxe" >/dev/null || die "fetch-ipxe.sh failed"

if [ ! -x "$cache/usr/bin/systemctl" ]; then
	echo "nspawn.sh: debootstrap bookworm into $cache (once)"
	rm -rf "$cache.tmp"
	mkdir -p "$(dirname "$cache")"
	debootstrap --variant=minbase \
		--include="$include" \
		bookworm "$cache.tmp" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
	mv "$cache.tmp" "$cache"
fi

root="$work/root"
cp -a "$cache" "$root"
mkdir -p "$root/srv/bdtest"
cp "$deb" "$root/srv/bdtest/bootstrapd.deb"
cp "$work"/ipxe-deb/ipxe_*.deb "$root/srv/bdtest/ipxe.deb"
cp "$top/systemd/bootstrapd.service" "$root/srv/bdtest/expected.service"

# The checks run inside the booted container as a oneshot unit, then power it off.
cat >"$root/etc/systemd/system/bdtest.service" <<'EOF'
[Unit]
Description=bootstrapd package test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh /srv/bdtest/inside.sh
ExecStopPost=/bin/systemctl --no-block poweroff
StandardOutput=file:/srv/bdtest/result.log
StandardError=inherit
EOF
ln -s /etc/systemd/system/bdtest.service "$root/etc/systemd/system/multi-user.target.wants/bdtest.service"

cat >"$root/srv/bdtest/inside.sh" <<'EOF'
#!/bin/sh
# Runs inside the container under systemd. One line per check.
set -u
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { d="$1"; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
prop() { systemctl show -P "$1" bootstrapd.service; }
wait_active() {
	for _ in $(seq 100); do
		[ "$(systemctl is-active bootstrapd.service)" = active ] && return 0
		sleep 0.1
	done
	return 1
}

echo "== install (postinst enables and starts the unit: systemd is PID 1 here)"
if dpkg -i /srv/bdtest/ipxe.deb /srv/bdtest/bootstrapd.deb >/srv/bdtest/dpkg.log 2>&1; then
	ok "dpkg -i ipxe bootstrapd"
else
	fail "dpkg -i ipxe bootstrapd"; cat /srv/bdtest/dpkg.log
fi
check "unit enabled" test "$(systemctl is-enabled bootstrapd.service)" = enabled
check "unit started by postinst (active)" wait_active
check "installed unit is systemd/bootstrapd.service" cmp -s /usr/lib/systemd/system/bootstrapd.service /srv/bdtest/expected.service
check "Type=notify and READY=1 seen (SubState running, status text set)" \
	sh -c "[ \"$(prop Type)\" = notify ] && [ \"$(prop SubState)\" = running ] && [ -n \"$(prop StatusText)\" ]"
echo "     status: $(prop StatusText)"
pid=$(prop MainPID)
uid=$(id -u bootstrapd)
check "runs as bootstrapd (uid $uid)" sh -c "grep -q '^Uid:[[:space:]]*$uid[[:space:]]' /proc/$pid/status"
check "capabilities: only cap_net_bind_service" \
	sh -c "grep -q '^CapEff:[[:space:]]*0000000000000400' /proc/$pid/status && grep -q '^CapBnd:[[:space:]]*0000000000000400' /proc/$pid/status"
check "seccomp filter on (Seccomp: 2)" sh -c "grep -q '^Seccomp:[[:space:]]*2' /proc/$pid/status"
check "no_new_privs" sh -c "grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$pid/status"

# A kernel for network test, as an operator would put it.
k=/var/lib/bootstrapd/kernels
head -c 2000000 /dev/urandom >/srv/bdtest/zos-test.efi
install -d -m 0750 -o bootstrapd -g bootstrapd $k/net
install -m 0640 -o bootstrapd -g bootstrapd /srv/bdtest/zos-test.efi $k/zos-test.efi
ln -s ../zos-test.efi $k/net/test.efi
check "systemctl reload (ExecReload: SIGHUP) succeeds" systemctl reload bootstrapd.service
check "systemctl reload: still active, same MainPID" sh -c "[ \"$(systemctl is-active bootstrapd)\" = active ] && [ \"$(prop MainPID)\" = $pid ]"

code=$(curl -s -o /srv/bdtest/script -w '%{http_code}' http://127.0.0.1:8080/ipxe/test/1)
check "GET /ipxe/test/1: 200 (got $code)" test "$code" = 200
check "script has runmode=test" grep -q runmode=test /srv/bdtest/script
check "GET /kernel/net/test.efi" sh -c "curl -fs http://127.0.0.1:8080/kernel/net/test.efi | cmp -s - /srv/bdtest/zos-test.efi"
# Boot media built per request under the service's sandbox (temporary files in /tmp).
code=$(curl -s -o "/srv/bdtest/media.iso" -w '%{http_code}' "http://127.0.0.1:8080/iso/test/1" || true)
check "GET /iso/test/1: 200 and an ISO 9660 image (got $code)" \
	sh -c "[ $code = 200 ] && [ \"\$(dd if='/srv/bdtest/media.iso' bs=1 skip=32769 count=5 2>/dev/null)\" = CD001 ]"
code=$(curl -s -o "/srv/bdtest/media.efi" -w '%{http_code}' "http://127.0.0.1:8080/uefi/test/1" || true)
check "GET /uefi/test/1: 200 and a PE file (got $code)" \
	sh -c "[ $code = 200 ] && [ \"\$(head -c 2 '/srv/bdtest/media.efi')\" = MZ ]"
check "TFTP undionly.kpxe" sh -c "curl -fs tftp://127.0.0.1/undionly.kpxe | cmp -s - /usr/lib/ipxe/undionly.kpxe"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat /etc/bootstrapd/admin.token)" http://127.0.0.1:8080/api/v1/nodes)
check "admin API with the packaged token: 200 (got $code)" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket /run/bootstrapd/admin.sock http://bootstrapd/api/v1/nodes)
check "admin API over the socket in RuntimeDirectory: 200 (got $code)" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/metrics)
check "GET /metrics: 200 (got $code)" test "$code" = 200
# Admin API writes under the sandbox (ProtectSystem=strict, UMask, seccomp): a kernel upload
# (temp file, fsync, rename) and pointing a network at it (symlink replaced by rename).
api() { curl -s -o /srv/bdtest/api.out -w '%{http_code}' --unix-socket /run/bootstrapd/admin.sock "$@"; }
head -c 1500000 /dev/urandom >/srv/bdtest/zos-up.efi
sum=$(sha256sum /srv/bdtest/zos-up.efi | cut -d' ' -f1)
code=$(api -X PUT --data-binary @/srv/bdtest/zos-up.efi -H "X-Checksum-Sha256: $sum" http://bootstrapd/api/v1/kernels/zos-up.efi)
check "admin API kernel upload: 2xx (got $code)" sh -c "case $code in 2??) true;; *) cat /srv/bdtest/api.out; false;; esac"
code=$(api -X PUT -H 'Content-Type: application/json' -d '{"kernel":"zos-up.efi"}' http://bootstrapd/api/v1/networks/prod/kernel)
check "admin API network prod -> zos-up.efi: 2xx (got $code)" sh -c "case $code in 2??) true;; *) cat /srv/bdtest/api.out; false;; esac"
check "GET /kernel/net/prod.efi is the uploaded kernel" sh -c "curl -fs http://127.0.0.1:8080/kernel/net/prod.efi | cmp -s - /srv/bdtest/zos-up.efi"
check "uploaded kernel is owned by bootstrapd" test "$(stat -c %U /var/lib/bootstrapd/kernels/zos-up.efi)" = bootstrapd

journalctl -q -u bootstrapd.service --no-pager >/srv/bdtest/journal.log
check "journal: no service left unstarted" sh -c "! grep -q 'not started' /srv/bdtest/journal.log"
for svc in http tftp dhcp admin; do
	check "journal: $svc listening" grep -q "listening.*service=$svc" /srv/bdtest/journal.log
done
check "journal: no seccomp/permission errors" sh -c "! grep -qi 'operation not permitted\|permission denied\|bad system call' /srv/bdtest/journal.log"

systemctl restart bootstrapd.service
check "systemctl restart: active again" wait_active
check "node records survive a restart (bbolt closed cleanly)" test -s /var/lib/bootstrapd/bootstrapd.db
systemctl stop bootstrapd.service
check "systemctl stop: Result=success, exit status 0" sh -c "[ \"$(prop Result)\" = success ] && [ \"$(prop ExecMainStatus)\" = 0 ]"
check "RuntimeDirectory removed on stop" test ! -e /run/bootstrapd
echo "     $(systemd-analyze security bootstrapd.service 2>/dev/null | tail -n 1)"
check "no restarts happened (NRestarts=0)" test "$(prop NRestarts)" = 0
systemctl start bootstrapd.service

echo "== remove (prerm stops the running service)"
dpkg -r bootstrapd >>/srv/bdtest/dpkg.log 2>&1 || fail "dpkg -r"
check "service stopped" sh -c "! systemctl is-active -q bootstrapd.service"
check "no bootstrapd process left" sh -c "! grep -qx bootstrapd /proc/[0-9]*/comm"
check "unit masked after remove (debhelper behaviour)" test "$(systemctl is-enabled bootstrapd.service 2>/dev/null)" = masked
check "data kept after remove" test -s /var/lib/bootstrapd/bootstrapd.db

echo "== purge"
dpkg --purge bootstrapd >>/srv/bdtest/dpkg.log 2>&1 || fail "dpkg --purge"
check "purge removes /etc/bootstrapd and /var/lib/bootstrapd" test ! -e /etc/bootstrapd -a ! -e /var/lib/bootstrapd
check "purge unmasks the unit" test ! -e /etc/systemd/system/bootstrapd.service -a ! -L /etc/systemd/system/bootstrapd.service
check "purge leaves no enable symlink" test ! -L /etc/systemd/system/multi-user.target.wants/bootstrapd.service

if [ "$fails" = 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL ($fails)"; cat /srv/bdtest/journal.log; fi
EOF

echo "nspawn.sh: booting $(basename "$deb") in a Debian bookworm container"
# --register=no/--keep-unit: this machine has no systemd-machined or system bus.
timeout 300 systemd-nspawn -q --register=no --keep-unit --private-network --console=pipe \
	-D "$root" --boot </dev/null >"$work/console.log" 2>&1 || true
if [ ! -f "$root/srv/bdtest/result.log" ]; then
	tail -40 "$work/console.log" >&2
	die "the container produced no result"
fi
cat "$root/srv/bdtest/result.log"
grep -q '^RESULT: PASS' "$root/srv/bdtest/result.log"
