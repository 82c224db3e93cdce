#!/bin/sh
# deps.sh: install the Debian packages `make test` needs (`make deps`, run first by `make test`).
# Every package is checked with dpkg-query -W; apt-get (update, then install) runs only for the
# missing ones, so on a machine that has them all this runs one dpkg-query and nothing else
# (a fraction of a second). Installing needs root: as an ordinary user it uses sudo when sudo works without a
# password, and otherwise names the missing packages and stops.
set -eu

# Test tools from the machine's own Debian release. linux-image-amd64 gives the real kernel the
# qemu boots must reach; ipxe-qemu is the NIC option ROM (a 2019 iPXE) of the BIOS case.
# clang and lld build the script-carrying EFI binaries once (make embed). prometheus brings
# promtool (the metrics format check); its own daemon is not used. nftables drops TFTP in
# the appliance's namespace for the e2e HTTP Boot case. sqlite3 builds and reads the
# 0-bootstrap database fixture of `bootstrapd migrate`'s tests. nginx-light is the boot
# storm's stand-in HTTP server (make storm). etcd-server is the etcd the store tests start
# on loopback (its own service must not run: see policy-rc.d below). qemu-system-arm
# (qemu-system-aarch64) and qemu-efi-aarch64 (AAVMF) run the arm64 nodes of the e2e and
# media-boot suites; their kernel is make arm64-kernel's. liblzma-dev (with build-essential
# and perl) compiles the pinned iPXE source for make trust-boot.
PACKAGES="qemu-system-x86 qemu-system-arm qemu-efi-aarch64 qemu-utils ipxe-qemu ovmf seabios dnsmasq-base iproute2 nftables procps
 linux-image-amd64 curl tftp-hpa xorriso mtools dosfstools isolinux syslinux syslinux-common
 lintian dpkg-dev fakeroot ca-certificates build-essential git prometheus chromium
 clang lld systemd adduser python3 shellcheck sqlite3 nginx-light etcd-server liblzma-dev perl"

# One dpkg-query for every package ("install ok installed", or "hold ok installed", when it
# is there; nothing for a package dpkg has never seen).
# shellcheck disable=SC2016,SC2086 # ${Status} is dpkg-query's; $PACKAGES is a word list
installed=" $(dpkg-query -W -f='${Status} ${Package}\n' $PACKAGES 2>/dev/null |
	awk '$3 == "installed" { printf "%s ", $4 }')"
missing=""
for p in $PACKAGES; do
	case "$installed" in
	*" $p "*) ;;
	*) missing="$missing $p" ;;
	esac
done
# Node.js with npm (test/web): the machine's own (e.g. nodesource) if it has one, Debian's
# otherwise.
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"

if [ -z "$missing" ]; then
	echo "make deps: every test package is installed"
	exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo="sudo -n"
	else
		echo "make deps: missing Debian packages:$missing" >&2
		echo "make deps: installing them needs root: run 'sudo make deps' (or 'sudo make test')" >&2
		exit 1
	fi
fi

echo "make deps: installing$missing"
# shellcheck disable=SC2086 # $sudo and $missing are word lists
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
# Packages with a daemon (etcd-server, nginx-light, prometheus) start it at install through invoke-rc.d,
# with or without systemd. The tests start their own etcd on free loopback ports and need no
# daemon listening on 2379, so a policy-rc.d refuses every start during the install (unless
# the machine has its own policy, which is then left alone).
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# packaging/deps.sh: no service starts while it installs\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
	own_policy=1
fi
# shellcheck disable=SC2086
if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; then
	[ -z "$own_policy" ] || $sudo rm -f "$policy"
	exit 1
fi
[ -z "$own_policy" ] || $sudo rm -f "$policy"
echo "make deps: installed$missing"
