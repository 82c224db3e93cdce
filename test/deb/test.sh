#!/bin/sh
# test/deb/test.sh: build the bootstrapd .deb, lint it, install it on this machine with dpkg,
# check what it created, run the daemon exactly as bootstrapd.service would (systemd need not
# be PID 1: the unit's ExecStart runs as the bootstrapd user with the unit's ambient
# capabilities, in a network namespace of its own), talk to it over HTTP, TFTP, ProxyDHCP and
# the admin API, stop it, then remove and purge the package and check what is left.
#
# Needs root, dpkg, lintian, curl, setpriv, ip (network namespaces) and go; python3 for the
# sd_notify and DHCP checks (skipped without it). Installs Debian trixie's ipxe .deb
# (packaging/fetch-ipxe.sh) when the installed ipxe is older than bootstrapd's Depends, and
# removes it again at the end; removes the bootstrapd user if this run created it.
#
# Environment: VERSION (default: git describe), ARCHES to build and lint (default
# "amd64 arm64"; the machine's own architecture is the one installed), KEEP=1 keeps the
# work directory, BOOTSTRAPD_BIN packages a prebuilt binary (see build-deb.sh; ARCHES then
# defaults to this machine's and the version check is skipped).
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
version="${VERSION:-$(git -C "$top" describe --tags --always --dirty 2>/dev/null || echo dev)}"
hostarch=$(dpkg --print-architecture)
if [ -n "${BOOTSTRAPD_BIN:-}" ]; then arches="${ARCHES:-$hostarch}"; else arches="${ARCHES:-amd64 arm64}"; fi
ipxe_min=1.21.1+git20250501
unit=/usr/lib/systemd/system/bootstrapd.service

fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
skip() { echo "skip $*"; }
die() { echo "FAIL $*" >&2; exit 1; }
check() { # check DESCRIPTION COMMAND...: one line per check, the run goes on after a failure.
	d="$1"; shift
	if "$@"; then ok "$d"; else fail "$d"; fi
}

[ "$(id -u)" = 0 ] || die "run as root (dpkg -i, users, network namespaces)"
for t in dpkg dpkg-deb lintian curl setpriv ip go; do
	command -v "$t" >/dev/null || die "$t is missing"
done
if dpkg-query -W -f='${Status}' bootstrapd 2>/dev/null | grep -q 'installed\|config-files'; then
	die "bootstrapd is already installed here; purge it first (dpkg --purge bootstrapd)"
fi
py=$(command -v python3 || true)
if [ -z "$py" ] && [ "${BOOTSTRAPD_REQUIRE_TOOLS:-0}" = 1 ]; then
	die "python3 is missing (BOOTSTRAPD_REQUIRE_TOOLS=1: no skipped checks)"
fi

work=$(mktemp -d /tmp/bootstrapd-debtest.XXXXXX)
chmod 0755 "$work" # lintian runs as nobody; the daemon writes to the notify socket in here
ns="bdtest$$"
cns="bdcli$$"
daemon=""
notifier=""
made_user=0
installed_ipxe=0
getent passwd bootstrapd >/dev/null || made_user=1

cleanup() {
	set +e
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
	[ -n "$notifier" ] && kill "$notifier" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	ip netns del "$cns" 2>/dev/null
	if dpkg-query -W -f='${Status}' bootstrapd 2>/dev/null | grep -q 'installed\|config-files'; then
		dpkg --purge bootstrapd >/dev/null 2>&1
	fi
	rm -rf /run/bootstrapd
	if [ "$installed_ipxe" = 1 ]; then dpkg --purge ipxe >/dev/null 2>&1; fi
	if [ "$made_user" = 1 ] && getent passwd bootstrapd >/dev/null; then
		deluser --quiet --system bootstrapd >/dev/null 2>&1
		getent group bootstrapd >/dev/null && delgroup --quiet --system bootstrapd >/dev/null 2>&1
	fi
	if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build ($version: $arches)"
for arch in $arches; do
	deb=$(sh "$top/packaging/build-deb.sh" "$version" "$arch" "$work/out") || die "build-deb.sh $version $arch"
	ok "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"
	case "$(dpkg-deb -f "$deb" Architecture)" in "$arch") ;; *) fail "$deb: Architecture is not $arch" ;; esac
done
debversion=$(dpkg-deb -f "$work/out"/bootstrapd_*_"$hostarch".deb Version)
deb="$work/out/bootstrapd_${debversion}_$hostarch.deb"
[ -f "$deb" ] || die "no package for $hostarch in $work/out"

echo "== lintian"
# As an ordinary user (lintian warns against root); errors and warnings fail, overrides are
# in packaging/deb/lintian-overrides with their reasons.
chmod -R a+rX "$work/out"
for f in "$work/out"/*.deb; do
	if out=$(cd / && setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$work" \
		lintian -EIL +pedantic --fail-on error,warning "$f" 2>&1); then
		ok "lintian $(basename "$f")${out:+: $(echo "$out" | grep -c .) info/pedantic tags}"
		[ -n "$out" ] && echo "$out" | sed 's/^/     /'
	else
		fail "lintian $(basename "$f")"
		echo "$out" | sed 's/^/     /'
	fi
done

echo "== dependencies"
have=$(dpkg-query -W -f='${Status} ${Version}' ipxe 2>/dev/null | sed -n 's/^install ok installed //p')
if [ -z "$have" ] || ! dpkg --compare-versions "$have" ge "$ipxe_min"; then
	IPXE_KEEP_DEB="$work/ipxe-deb" sh "$top/packaging/fetch-ipxe.sh" "$work/ipxe" >/dev/null ||
		die "fetch-ipxe.sh could not get the ipxe .deb"
	dpkg -i "$work"/ipxe-deb/ipxe_*.deb >"$work/ipxe-install.log" 2>&1 || { cat "$work/ipxe-install.log"; die "dpkg -i ipxe"; }
	installed_ipxe=1
	ok "installed ipxe $(dpkg-query -W -f='${Version}' ipxe) for this test (was: ${have:-none})"
else
	ok "ipxe $have already installed"
fi
for p in isolinux syslinux-common adduser; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		die "$p is not installed (apt-get install $p)"
done

echo "== install"
dpkg -i "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log"; die "dpkg -i $(basename "$deb")"; }
ok "dpkg -i $(basename "$deb")"
check "dpkg status is 'install ok installed'" \
	test "$(dpkg-query -W -f='${Status}' bootstrapd)" = "install ok installed"
check "dpkg --verify bootstrapd (md5sums)" dpkg --verify bootstrapd

mode() { stat -c '%a %U:%G' "$1" 2>/dev/null; }
check "/usr/bin/bootstrapd is 755 root:root" test "$(mode /usr/bin/bootstrapd)" = "755 root:root"
if [ -z "${BOOTSTRAPD_BIN:-}" ]; then
	# "bootstrapd <version> (revision …, go…)": the version the build set comes first.
	got=$(/usr/bin/bootstrapd version)
	check "bootstrapd version prints $version ($got)" test "${got%% (*}" = "bootstrapd $version"
else
	skip "bootstrapd version (prebuilt BOOTSTRAPD_BIN: $(/usr/bin/bootstrapd version))"
fi
check "/etc/bootstrapd/appliance.yaml is a conffile" \
	sh -c "dpkg-query -W -f='\${Conffiles}' bootstrapd | grep -q '^ /etc/bootstrapd/appliance.yaml [0-9a-f]\{32\}\$'"
check "appliance.yaml is packaging/deb/appliance.yaml" cmp -s /etc/bootstrapd/appliance.yaml "$top/packaging/deb/appliance.yaml"
check "unit is systemd/bootstrapd.service" cmp -s "$unit" "$top/systemd/bootstrapd.service"
# deb-systemd-helper links to /lib/systemd/system/... on bookworm: the same file on merged-/usr.
check "unit enabled (multi-user.target.wants symlink by deb-systemd-helper)" \
	test "$(readlink -f /etc/systemd/system/multi-user.target.wants/bootstrapd.service)" = "$(readlink -f "$unit")"

pw=$(getent passwd bootstrapd || true)
uid=$(echo "$pw" | cut -d: -f3)
check "user bootstrapd exists" test -n "$pw"
check "bootstrapd is a system user (uid $uid < 1000)" test "${uid:-1000}" -lt 1000
check "bootstrapd home /var/lib/bootstrapd, shell /usr/sbin/nologin" \
	test "$(echo "$pw" | cut -d: -f6,7)" = "/var/lib/bootstrapd:/usr/sbin/nologin"
check "bootstrapd's primary group is group bootstrapd" \
	test "$(id -gn bootstrapd 2>/dev/null)" = bootstrapd
check "/var/lib/bootstrapd is 750 bootstrapd:bootstrapd" test "$(mode /var/lib/bootstrapd)" = "750 bootstrapd:bootstrapd"
check "/var/lib/bootstrapd/kernels is 750 bootstrapd:bootstrapd" \
	test "$(mode /var/lib/bootstrapd/kernels)" = "750 bootstrapd:bootstrapd"
check "/etc/bootstrapd/admin.token is 600 bootstrapd:bootstrapd" \
	test "$(mode /etc/bootstrapd/admin.token)" = "600 bootstrapd:bootstrapd"
check "admin token is 32 random bytes in hex" grep -qx '[0-9a-f]\{64\}' /etc/bootstrapd/admin.token
token=$(cat /etc/bootstrapd/admin.token)

if command -v systemd-analyze >/dev/null; then
	# The binary is installed now, so the installed unit verifies against the real system.
	if out=$(systemd-analyze verify --man=no "$unit" 2>&1) && [ -z "$out" ]; then
		ok "systemd-analyze verify $unit"
	else
		fail "systemd-analyze verify $unit"; echo "$out" | sed 's/^/     /'
	fi
fi

# Reinstalling (what an upgrade does to the maintainer scripts) keeps the token and an
# operator's edits to the conffile.
echo "# edited by the operator" >>/etc/bootstrapd/appliance.yaml
dpkg -i "$deb" >"$work/reinstall.log" 2>&1 || { cat "$work/reinstall.log"; die "dpkg -i (again)"; }
check "reinstall keeps the admin token" test "$(cat /etc/bootstrapd/admin.token)" = "$token"
check "reinstall keeps the operator's appliance.yaml" grep -qx '# edited by the operator' /etc/bootstrapd/appliance.yaml
check "reinstall keeps the token 600 bootstrapd:bootstrapd" test "$(mode /etc/bootstrapd/admin.token)" = "600 bootstrapd:bootstrapd"

# A kernel for network "test", put in place the way an operator would without the API: a
# versioned file and the net/<network>.efi symlink to it (random bytes: only the transfer
# is checked, nothing boots it).
kernels=/var/lib/bootstrapd/kernels
head -c 3000000 /dev/urandom >"$work/zos-test.efi"
install -d -m 0750 -o bootstrapd -g bootstrapd "$kernels/net"
install -m 0640 -o bootstrapd -g bootstrapd "$work/zos-test.efi" "$kernels/zos-test.efi"
ln -s ../zos-test.efi "$kernels/net/test.efi"
chown -h bootstrapd:bootstrapd "$kernels/net/test.efi"

echo "== run as bootstrapd.service would"
# The unit's own settings, not copies of them.
execstart=$(sed -n 's/^ExecStart=//p' "$unit")
svc_user=$(sed -n 's/^User=//p' "$unit")
svc_group=$(sed -n 's/^Group=//p' "$unit")
svc_umask=$(sed -n 's/^UMask=//p' "$unit")
caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr 'A-Z ' 'a-z\n' | sed -n 's/^cap_\(.*\)/+\1/p' | paste -sd, -)
if [ -z "$execstart" ] || [ -z "$caps" ]; then die "could not read ExecStart/AmbientCapabilities from $unit"; fi

# Two namespaces joined by a veth pair: the daemon's side and a PXE client's side. Addresses
# are from 198.18.0.0/15 (benchmarking) and exist only inside these namespaces.
srv=198.18.77.1
ip netns add "$ns"
ip netns add "$cns"
ip -n "$ns" link set lo up
ip -n "$cns" link set lo up
ip link add bdsrv$$ netns "$ns" type veth peer name bdcli$$ netns "$cns"
ip -n "$ns" link set bdsrv$$ name lan0
ip -n "$cns" link set bdcli$$ name lan0
ip -n "$ns" addr add "$srv/24" dev lan0
ip -n "$cns" addr add 198.18.77.2/24 dev lan0
ip -n "$ns" link set lan0 up
ip -n "$cns" link set lan0 up

# RuntimeDirectory=bootstrapd with RuntimeDirectoryMode=0750, as systemd makes it.
install -d -m 0750 -o "$svc_user" -g "$svc_group" /run/bootstrapd

# Type=notify: a socket standing in for systemd's, recording what the daemon sends.
notify_env=""
if [ -n "$py" ]; then
	"$py" - "$work/notify.sock" "$work/notify.log" <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "a") as log:
    while True:
        msg = s.recv(4096).decode(errors="replace")
        log.write(msg.replace("\n", " ") + "\n")
        log.flush()
EOF
	notifier=$!
	for _ in $(seq 50); do [ -S "$work/notify.sock" ] && break; sleep 0.1; done
	notify_env="NOTIFY_SOCKET=$work/notify.sock"
fi

# The environment systemd gives a service with User= and State/RuntimeDirectory=.
# shellcheck disable=SC2086
ip netns exec "$ns" sh -c "umask ${svc_umask:-0022}; cd /; exec \"\$@\"" sh \
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
	HOME=/var/lib/bootstrapd USER="$svc_user" LOGNAME="$svc_user" SHELL=/usr/sbin/nologin \
	STATE_DIRECTORY=/var/lib/bootstrapd RUNTIME_DIRECTORY=/run/bootstrapd $notify_env \
	setpriv --reuid="$svc_user" --regid="$svc_group" --init-groups --inh-caps="$caps" \
	--ambient-caps="$caps" --bounding-set=-all,"$caps" --no-new-privs -- \
	$execstart >"$work/daemon.log" 2>&1 &
daemon=$!

ready=0
for _ in $(seq 200); do
	kill -0 "$daemon" 2>/dev/null || break
	if [ -n "$py" ]; then
		grep -q 'READY=1' "$work/notify.log" 2>/dev/null && { ready=1; break; }
	elif ip netns exec "$ns" curl -fs -o /dev/null "http://$srv:8080/healthz"; then
		ready=1; break
	fi
	sleep 0.1
done
if [ "$ready" = 1 ]; then
	if [ -n "$py" ]; then ok "daemon ready (sd_notify READY=1 received)"; else ok "daemon ready (HTTP answering)"; fi
else
	fail "daemon did not become ready"
	sed 's/^/     /' "$work/daemon.log"
	exit 1
fi

status=/proc/$daemon/status
check "daemon process is /usr/bin/bootstrapd" test "$(readlink "/proc/$daemon/exe")" = /usr/bin/bootstrapd
check "daemon runs as uid $uid" sh -c "grep -q '^Uid:[[:space:]]*${uid}[[:space:]]*${uid}' $status"
# CAP_NET_BIND_SERVICE is bit 10: 0x400. Nothing else effective, permitted or boundable.
check "daemon capabilities: only cap_net_bind_service (CapEff/CapPrm/CapBnd 0x400)" \
	sh -c "grep -q '^CapEff:[[:space:]]*0000000000000400' $status && grep -q '^CapPrm:[[:space:]]*0000000000000400' $status && grep -q '^CapBnd:[[:space:]]*0000000000000400' $status"
check "daemon has no_new_privs" sh -c "grep -q '^NoNewPrivs:[[:space:]]*1' $status"
check "no service left unstarted for lack of privilege" sh -c "! grep -q 'not started' '$work/daemon.log'"
for svc in http tftp dhcp admin; do
	check "log: $svc listening" grep -q "listening.*service=$svc" "$work/daemon.log"
done
check "admin socket /run/bootstrapd/admin.sock is 600 bootstrapd:bootstrapd" \
	test "$(mode /run/bootstrapd/admin.sock)" = "600 bootstrapd:bootstrapd"

# HTTP: the boot script for network test, farm 1.
code=$(ip netns exec "$cns" curl -s -o "$work/ipxe-test-1" -w '%{http_code}' "http://$srv:8080/ipxe/test/1" || true)
check "GET /ipxe/test/1 is 200 (got $code)" test "$code" = 200
check "GET /ipxe/test/1 is an iPXE script with runmode=test" \
	sh -c "head -n 1 '$work/ipxe-test-1' | grep -q '^#!ipxe' && grep -q 'runmode=test' '$work/ipxe-test-1'"

if ip netns exec "$cns" curl -fs -o "$work/kernel" "http://$srv:8080/kernel/net/test.efi" &&
	cmp -s "$work/kernel" "$work/zos-test.efi"; then
	ok "GET /kernel/net/test.efi returns the kernel net/test.efi points to"
else
	fail "GET /kernel/net/test.efi"
fi

# Boot media built per request under the service's sandbox (temporary files in /tmp).
code=$(ip netns exec "$cns" curl -s -o "$work/media.iso" -w '%{http_code}' "http://$srv:8080/iso/test/1" || true)
check "GET /iso/test/1: 200 and an ISO 9660 image (got $code)" \
	sh -c "[ $code = 200 ] && [ \"\$(dd if='$work/media.iso' bs=1 skip=32769 count=5 2>/dev/null)\" = CD001 ]"
code=$(ip netns exec "$cns" curl -s -o "$work/media.efi" -w '%{http_code}' "http://$srv:8080/uefi/test/1" || true)
check "GET /uefi/test/1: 200 and a PE file (got $code)" \
	sh -c "[ $code = 200 ] && [ \"\$(head -c 2 '$work/media.efi')\" = MZ ]"

# TFTP: the BIOS iPXE binary, byte for byte the ipxe package's file.
if ip netns exec "$cns" curl -s -o "$work/undionly.kpxe" "tftp://$srv/undionly.kpxe" &&
	cmp -s "$work/undionly.kpxe" /usr/lib/ipxe/undionly.kpxe; then
	ok "TFTP undionly.kpxe equals /usr/lib/ipxe/undionly.kpxe"
else
	fail "TFTP undionly.kpxe"
fi

# Admin API: the packaged token works over HTTP, anything else gets 401; the socket needs none.
code=$(ip netns exec "$cns" curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$srv:8080/api/v1/nodes" || true)
check "admin API with the packaged token: 200 (got $code)" test "$code" = 200
code=$(ip netns exec "$cns" curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer x$token" "http://$srv:8080/api/v1/nodes" || true)
check "admin API with a wrong token: 401 (got $code)" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket /run/bootstrapd/admin.sock "http://bootstrapd/api/v1/nodes" || true)
check "admin API over /run/bootstrapd/admin.sock: 200 (got $code)" test "$code" = 200

# ProxyDHCP: a BIOS PXE DHCPDISCOVER broadcast from the client namespace must get a proxy
# offer broadcast back, sent with nothing but CAP_NET_BIND_SERVICE.
if [ -n "$py" ]; then
	if out=$(ip netns exec "$cns" "$py" - lan0 "$srv" <<'EOF' 2>&1
import os, socket, struct, sys
iface, server = sys.argv[1], sys.argv[2]
mac = bytes.fromhex("525400bd7701")
xid = os.urandom(4)
opts = bytes([53, 1, 1])
opts += bytes([60, 32]) + b"PXEClient:Arch:00000:UNDI:002001"
opts += bytes([93, 2, 0, 0]) + bytes([94, 3, 1, 2, 1]) + bytes([97, 17, 0]) + os.urandom(16)
pkt = struct.pack("!BBBB4sHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                  bytes(4), bytes(4), bytes(4), bytes(4), mac + bytes(10), bytes(64), bytes(128))
pkt += b"\x63\x82\x53\x63" + opts + b"\xff"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
s.bind(("0.0.0.0", 68))
s.settimeout(5)
s.sendto(pkt, ("255.255.255.255", 67))
while True:
    data, src = s.recvfrom(2048)
    if len(data) < 240 or data[0] != 2 or data[4:8] != xid:
        continue
    siaddr = socket.inet_ntoa(data[20:24])
    yiaddr = socket.inet_ntoa(data[16:20])
    fname = data[108:236].rstrip(b"\0").decode(errors="replace")
    o, i = {}, 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        o[data[i]] = data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    fname = fname or o.get(67, b"").decode(errors="replace")
    print(f"type={o.get(53, b'?')[0]} from={src[0]} siaddr={siaddr} yiaddr={yiaddr} class={o.get(60, b'').decode()} file={fname}")
    ok = (o.get(53) == b"\x02" and siaddr == server and yiaddr == "0.0.0.0"
          and o.get(60, b"").startswith(b"PXEClient") and fname == "52-54-00-bd-77-01/undionly.kpxe")
    sys.exit(0 if ok else 1)
EOF
	); then
		ok "ProxyDHCP offer for a BIOS PXE client ($out)"
	else
		fail "ProxyDHCP offer for a BIOS PXE client"; echo "$out" | sed 's/^/     /'
	fi
else
	skip "ProxyDHCP offer (no python3)"
fi

# SIGHUP (ExecReload) must not stop it.
kill -HUP "$daemon" 2>/dev/null || true
sleep 1
check "daemon survives SIGHUP (systemctl reload)" kill -0 "$daemon"
code=$(ip netns exec "$cns" curl -s -o /dev/null -w '%{http_code}' "http://$srv:8080/ipxe/test/1" || true)
check "still serving after SIGHUP (got $code)" test "$code" = 200

# SIGTERM (systemctl stop): exit 0 within TimeoutStopSec, saying STOPPING=1 first.
stop_timeout=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$unit")
kill -TERM "$daemon" 2>/dev/null || true
rc=""
for _ in $(seq $((${stop_timeout:-90} * 10))); do
	if ! kill -0 "$daemon" 2>/dev/null; then
		wait "$daemon" && rc=0 || rc=$?
		break
	fi
	sleep 0.1
done
daemon_pid=$daemon
daemon=""
if [ -z "$rc" ]; then
	kill -KILL "$daemon_pid" 2>/dev/null || true
	fail "daemon still running ${stop_timeout}s after SIGTERM (TimeoutStopSec)"
else
	check "daemon exits 0 on SIGTERM within TimeoutStopSec=${stop_timeout}s (rc $rc)" test "$rc" = 0
fi
if [ -n "$py" ]; then
	check "sd_notify STOPPING=1 on SIGTERM" grep -q 'STOPPING=1' "$work/notify.log"
fi
check "daemon log has no ERROR lines" sh -c "! grep -q 'level=ERROR' '$work/daemon.log'"
[ "$fails" = 0 ] || sed 's/^/     daemon: /' "$work/daemon.log"
rm -rf /run/bootstrapd # RuntimeDirectory= is removed when the service stops

echo "== remove"
dpkg -r bootstrapd >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; die "dpkg -r"; }
check "dpkg status after remove is 'deinstall ok config-files'" \
	test "$(dpkg-query -W -f='${Status}' bootstrapd)" = "deinstall ok config-files"
check "remove deletes /usr/bin/bootstrapd and the unit" test ! -e /usr/bin/bootstrapd -a ! -e "$unit"
check "remove keeps /var/lib/bootstrapd (node records, kernels)" test -d /var/lib/bootstrapd/kernels -a -f /var/lib/bootstrapd/bootstrapd.db
check "remove keeps appliance.yaml and admin.token" test -f /etc/bootstrapd/appliance.yaml -a -f /etc/bootstrapd/admin.token

echo "== purge"
dpkg --purge bootstrapd >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; die "dpkg --purge"; }
check "dpkg no longer knows bootstrapd" sh -c "! dpkg-query -W -f='\${Status}' bootstrapd 2>/dev/null | grep -q ."
check "purge deletes /etc/bootstrapd" test ! -e /etc/bootstrapd
check "purge deletes /var/lib/bootstrapd" test ! -e /var/lib/bootstrapd
check "purge deletes the enable symlink" test ! -e /etc/systemd/system/multi-user.target.wants/bootstrapd.service -a ! -L /etc/systemd/system/multi-user.target.wants/bootstrapd.service
check "purge leaves no mask (/etc/systemd/system/bootstrapd.service)" test ! -e /etc/systemd/system/bootstrapd.service -a ! -L /etc/systemd/system/bootstrapd.service
check "purge keeps the bootstrapd system user (Debian practice; see postrm)" sh -c "getent passwd bootstrapd >/dev/null"

echo
if [ "$fails" = 0 ]; then
	echo "test/deb: all checks passed"
else
	echo "test/deb: $fails check(s) failed"
	exit 1
fi
