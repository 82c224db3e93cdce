#!/bin/sh
# Records the DHCP packets of real firmware booting against dhcpd, for the table tests.
# Needs root, qemu-system-x86, ovmf, dnsmasq-base, tcpdump; TCG only (KVM fails on our CI).
#
#   capture.sh SCENARIO OUT.pcap [SECONDS]
#     ovmf        OVMF's own PXE client (NIC ROM off): DISCOVER arch 7, then iPXE EFI
#     ovmf-4011   same, with dnsmasq as the proxy (it sends EFI clients to port 4011)
#     seabios     SeaBIOS + qemu's 2019 iPXE NIC ROM, then the catalogue's undionly.kpxe
#     httpboot    OVMF; capsrv answers only HTTP Boot: PXE fails, then UEFI HTTP Boot (slow)
#     aavmf       AAVMF (arm64 UEFI, qemu-system-aarch64 virt) PXE client, NIC ROM off:
#                 DISCOVER arch 0x0b, then iPXE arm64 (needs qemu-system-arm, qemu-efi-aarch64)
#
# LAN: netns dcap-lan (bridge br0 10.99.0.1/24, dnsmasq leases + RAs, the VM's tap) joined by
# a veth to netns dcap-prx (10.99.0.2: capsrv = dhcpd + HTTP, dnsmasq TFTP only).
set -eu
scenario=$1 out=$2 secs=${3:-150}
ipxedir=${IPXE_DIR:-/tmp/ipxetest}
work=$(mktemp -d)
lan=dcap-lan prx=dcap-prx

cleanup() {
	for p in "$work"/*.pid; do
		if [ -f "$p" ]; then kill "$(cat "$p")" 2>/dev/null || true; fi
	done
	sleep 0.5
	ip netns del $lan 2>/dev/null || true
	ip netns del $prx 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add $lan
ip netns add $prx
ip -n $lan link add br0 type bridge
ip -n $lan addr add 10.99.0.1/24 dev br0
ip -n $lan addr add fd00:99::1/64 dev br0
ip -n $lan link set br0 up
ip -n $lan link set lo up
ip -n $lan tuntap add tap0 mode tap
ip -n $lan link set tap0 master br0 up
ip -n $lan link add vl0 type veth peer name vp0 netns $prx
ip -n $lan link set vl0 master br0 up
ip -n $prx addr add 10.99.0.2/24 dev vp0
ip -n $prx link set vp0 up
ip -n $prx link set lo up

ip netns exec $lan dnsmasq --keep-in-foreground --port=0 --interface=br0 --bind-interfaces \
	--dhcp-range=10.99.0.100,10.99.0.150,1h --dhcp-range=fd00:99::,ra-only --enable-ra \
	--no-ping --dhcp-leasefile="$work/leases" --pid-file="$work/dnsmasq-lan.pid" --log-dhcp \
	2>"$work/dnsmasq-lan.log" &
ip netns exec $lan tcpdump -i br0 -U -s 0 -w "$out" 'udp port 67 or udp port 68 or udp port 4011' \
	2>"$work/tcpdump.log" &
echo $! >"$work/tcpdump.pid"

case $scenario in
ovmf-4011)
	ip netns exec $prx dnsmasq --keep-in-foreground --port=0 --interface=vp0 --bind-interfaces \
		--dhcp-range=10.99.0.0,proxy --pxe-service=x86-64_EFI,"capture",ipxe-amd64.efi \
		--enable-tftp --tftp-root="$ipxedir" --pid-file="$work/dnsmasq-prx.pid" --log-dhcp \
		2>"$work/dnsmasq-prx.log" &
	;;
*)
	# dhcpd hands out <mac>/<binary>: the TFTP root has the binaries under the VM's MAC too.
	# dnsmasq reads it as nobody: mktemp's directory is private.
	mkdir -p "$work/tftp/52-54-00-12-34-56"
	cp "$ipxedir"/* "$work/tftp/"
	cp "$ipxedir"/* "$work/tftp/52-54-00-12-34-56/"
	chmod -R a+rX "$work"
	ip netns exec $prx dnsmasq --keep-in-foreground --port=0 --interface=vp0 --bind-interfaces \
		--enable-tftp --tftp-root="$work/tftp" --pid-file="$work/dnsmasq-prx.pid" \
		2>"$work/dnsmasq-prx.log" &
	ip netns exec $prx /tmp/capsrv "$ipxedir" "$scenario-only" 2>"$work/capsrv.log" &
	echo $! >"$work/capsrv.pid"
	;;
esac
sleep 1

qemu=qemu-system-x86_64 mem=256
case $scenario in
ovmf | ovmf-4011 | httpboot) fw="-bios /usr/share/ovmf/OVMF.fd" nic=virtio-net-pci,romfile= ;;
seabios) fw="" nic=e1000 ;;
aavmf)
	cp /usr/share/AAVMF/AAVMF_VARS.fd "$work/vars.fd"
	qemu=qemu-system-aarch64 mem=1024 nic=virtio-net-pci,romfile=
	fw="-machine virt -cpu cortex-a57 -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd
 -drive if=pflash,format=raw,unit=1,file=$work/vars.fd"
	;;
*) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
ip netns exec $lan timeout "$secs" $qemu -accel tcg -m $mem -nographic -no-reboot \
	$fw -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
	-device $nic,netdev=n0,mac=52:54:00:12:34:56 -boot n \
	-serial file:"$work/serial.log" -monitor none >/dev/null 2>&1 || true
sleep 1
kill "$(cat "$work/tcpdump.pid")"; sleep 0.5
echo "--- serial"; tr -d '\033' <"$work/serial.log" | tail -c 3000 || true
echo "--- capsrv"; tail -30 "$work/capsrv.log" 2>/dev/null || true
echo "--- dnsmasq proxy"; tail -30 "$work/dnsmasq-prx.log" 2>/dev/null || true
tcpdump -nr "$out" 2>/dev/null | head -40
