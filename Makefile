# bootstrapd: the two promised commands are `make run` and `sudo make test` (see README.md).

# sudo resets PATH (secure_path), which drops Go's usual /usr/local/go/bin: find it there so
# `sudo make test` works as written.
ifeq ($(shell command -v go 2>/dev/null),)
export PATH := /usr/local/go/bin:$(PATH)
endif

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN       := bin/bootstrapd
IPXE_DIR  ?= var/ipxe
SYSLINUX_DIR ?= var/syslinux
ARM64_KERNEL_DIR ?= var/arm64-kernel
FUZZTIME  ?= 10s
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Fuzz targets as package:Target; `go test -fuzz` runs one target at a time.
FUZZ := ./store:FuzzParseMAC ./ipxe:FuzzRender ./ipxe:FuzzValidateKernel \
        ./httpd:FuzzParseBootPath ./httpd:FuzzNodesCSVRoundTrip ./httpd:FuzzListQuery \
        ./dhcpd:FuzzDecide ./tftpd:FuzzParsePath \
        ./ipxe/media:FuzzScript ./ipxe/media:FuzzParsers \
        ./store/kernels:FuzzCheckHeader ./ipxe/ipxelog:FuzzParse \
        ./cmd/bootstrapd/internal/migrate:FuzzParseRows ./store/etcdstore:FuzzEventTime

.PHONY: all build run deps size-check ipxe syslinux arm64-kernel embed ipxe-trust trust-boot trust-boot-check fetch-check test lint unit fuzz soak e2e storm storm-check media-boot web web-scale deb service-check deb-test deb-nspawn clean

all: build

# nomsgpack drops gin's MessagePack codec, which bootstrapd never uses; grpcnotrace drops the
# etcd client's gRPC request tracing, whose html/template would keep every exported method of
# every type in the binary (size-check, docs/PERFORMANCE.md "Binary size").
GOTAGS ?= nomsgpack,grpcnotrace
export GOTAGS

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags "$(GOTAGS)" -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/bootstrapd

# The stock iPXE binaries (Debian trixie's pinned ipxe package, sha256-checked).
ipxe:
	packaging/fetch-ipxe.sh $(IPXE_DIR)

# isolinux.bin, isohdpfx.bin and ldlinux.c32 for /iso/ and /usb/ without the isolinux package
# (Debian bookworm's pinned isolinux and syslinux-common, sha256-checked).
syslinux:
	packaging/fetch-syslinux.sh $(SYSLINUX_DIR)

# The arm64 test nodes' kernel: Debian bookworm's pinned linux-image-*-cloud-arm64 (an EFI-stub
# Image, sha256-checked), extracted to $(ARM64_KERNEL_DIR)/vmlinuz.
arm64-kernel:
	packaging/fetch-arm64-kernel.sh $(ARM64_KERNEL_DIR)

# The pinned fetches refuse a .deb whose sha256 differs, extracting nothing.
fetch-check:
	test/packaging/fetch-ipxe-sha.sh
	test/packaging/fetch-arm64-kernel-sha.sh
	test/packaging/fetch-syslinux-sha.sh

# The script-carrying EFI binaries of /uefi/ (clang + lld; built once, not per request).
embed: ipxe
	packaging/ipxe-embed/build.sh $(IPXE_DIR) var/ipxe-embed

# iPXE trusting the ISRG roots (Let's Encrypt) and iPXE's root CA without ca.ipxe.org, for
# media of an https:// public_url (packaging/ipxe-trust). Minutes of compiling per platform,
# cached by the hash of its inputs; not part of run (media fall back to the stock binaries).
# IPXE_SRC: the pinned source tarball or a checkout; unset: cloned from upstream.
IPXE_SRC ?=
ipxe-trust: ipxe
	IPXE_SRC="$(IPXE_SRC)" IPXE_COMPARE=$(IPXE_DIR) packaging/ipxe-trust/build.sh var/ipxe-trust

# The HTTPS proof: a test build (x86-64 EFI only) that also trusts the fixed test CA of
# packaging/ipxe-trust/testdata, and an ISO booted by OVMF that fetches its kernel over HTTPS
# from the daemon's TLS listener, with qemu's network restricted to that one connection.
# Root (the iPXE syslog port, 514). Last in make test: the first compile takes minutes (about
# 5.5 min on 2 vCPUs), later runs reuse the build cached by the hash of its inputs.
# make test's form of trust-boot: without IPXE_SRC and with no way to clone the pinned commit
# (a machine without network), it says why it did not run instead of failing.
trust-boot-check:
	@if [ -n "$(IPXE_SRC)" ] || git ls-remote https://github.com/ipxe/ipxe.git HEAD >/dev/null 2>&1; then \
		$(MAKE) trust-boot; \
	else \
		echo "make test: trust-boot NOT RUN: no IPXE_SRC and github.com/ipxe/ipxe unreachable (set IPXE_SRC to the pinned tarball)"; \
	fi

trust-boot: ipxe
	IPXE_SRC="$(IPXE_SRC)" IPXE_TARGETS=amd64 IPXE_TRUST_EXTRA=$(CURDIR)/packaging/ipxe-trust/testdata/ca.pem \
		packaging/ipxe-trust/build.sh var/ipxe-trust-test
	BOOTSTRAPD_TRUST_QEMU=1 BOOTSTRAPD_IPXE_DIR=$(CURDIR)/$(IPXE_DIR) BOOTSTRAPD_IPXE_TRUST_TEST=$(CURDIR)/var/ipxe-trust-test \
		$(GO) test -v -count=1 -timeout 20m -run TestTrustedHTTPSBoot ./cmd/bootstrapd/

# Start the appliance with the embedded defaults (appliance.yaml spells them out). As an
# ordinary user, ProxyDHCP (67) and TFTP (69) are refused with one warning; HTTP serves on :8080.
# No root and no Debian package needed: the syslinux files come from $(SYSLINUX_DIR) through
# var/appliance.yaml (appliance.yaml with only paths.isolinux and paths.syslinux_bios changed);
# the /uefi/ stubs are built when clang and lld are there, else one line says how.
run: build ipxe syslinux
	mkdir -p var/kernels/net
	@if command -v clang >/dev/null 2>&1 && command -v ld.lld >/dev/null 2>&1; then \
		packaging/ipxe-embed/build.sh $(IPXE_DIR) var/ipxe-embed; \
	elif [ ! -s var/ipxe-embed/ipxe-amd64-script.efi ]; then \
		echo "make run: /uefi* will answer 503: install clang and lld (sudo apt install clang lld), then run make embed"; \
	fi
	packaging/run-config.sh appliance.yaml var/appliance.yaml $(SYSLINUX_DIR)
	$(BIN) serve --config var/appliance.yaml

# The Debian packages `make test` needs (packaging/deps.sh): dpkg-query first, apt-get only for
# the missing ones. Root (sudo make deps), unless everything is installed.
deps:
	packaging/deps.sh

# deps first: the targets after it use the packages it installs (make runs them in this order).
test: deps lint size-check fetch-check embed unit fuzz e2e storm-check media-boot web service-check deb-test trust-boot-check

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	shellcheck -s sh -x packaging/build-deb.sh packaging/fetch-ipxe.sh packaging/private-apt.sh packaging/ipxe-embed/build.sh packaging/ipxe-trust/build.sh packaging/ipxe-trust/compare.sh \
		packaging/fetch-syslinux.sh packaging/deps.sh packaging/run-config.sh test/packaging/fetch-syslinux-sha.sh \
		packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm systemd/check.sh test/deb/test.sh test/deb/nspawn.sh .ci/run \
		test/packaging/fetch-ipxe-sha.sh packaging/fetch-arm64-kernel.sh test/packaging/fetch-arm64-kernel-sha.sh dhcpd/testdata/capture.sh test/load/http.sh test/load/dhcp.sh test/load/store.sh test/load/storm.sh test/size/check.sh test/fuzz/run.sh test/fuzz/selftest.sh test/reliability/soak.sh

# The stripped binary the .deb ships stays at most 20 MB, and nothing in it calls methods by
# name through reflection (text/template, html/template, gin's binding validator), which would
# make the linker keep every exported method of every type: 7 MB. Prints the callers if so.
size-check:
	test/size/check.sh 20000000

unit:
	$(GO) test -race -count=1 ./...

# test/fuzz/run.sh tells a real finding (an input written to testdata/fuzz) from the Go 1.26
# fuzzing engine's own deadline error under load, which it retries once.
fuzz:
	test/fuzz/selftest.sh
	test/fuzz/run.sh $(FUZZTIME) $(FUZZ)

# The long reliability run: the suite's long form (floods, kill -9, 1,000 connections) and
# every fuzzer for SOAK_FUZZTIME. Figures go to docs/RELIABILITY.md.
SOAK_FUZZTIME ?= 10m
soak:
	test/reliability/soak.sh
	BOOTSTRAPD_SOAK=1 $(GO) test -v -count=1 -timeout 30m -run 'Flood' ./store/ ./dhcpd/
	test/fuzz/run.sh $(SOAK_FUZZTIME) $(FUZZ)

# Real firmware under qemu in network namespaces: needs root (make deps installs the packages).
e2e: ipxe arm64-kernel
	@[ "$$(id -u)" = 0 ] || { echo "make e2e: the LAN boot test creates network namespaces and must run as root (sudo make test)"; exit 1; }
	BOOTSTRAPD_E2E=1 BOOTSTRAPD_IPXE_DIR=$(CURDIR)/$(IPXE_DIR) BOOTSTRAPD_E2E_KERNEL_ARM64=$(CURDIR)/$(ARM64_KERNEL_DIR)/vmlinuz \
		$(GO) test -v -count=1 -timeout 40m ./test/e2e/

# A boot storm (test/load/storm.sh): STORM_N simulated nodes, each with its own MAC and lease,
# walk DHCP, TFTP, iPXE DHCP, the script and a 32 MiB kernel at once, against bootstrapd and
# then against dnsmasq + nginx in the same run. Root. Figures go to docs/PERFORMANCE.md.
STORM_N ?= 1000
storm: ipxe
	@[ "$$(id -u)" = 0 ] || { echo "make storm: network namespaces need root"; exit 1; }
	test/load/storm.sh $(STORM_N)

# The storm's zero-failure check (200 nodes against bootstrapd alone); no speed is asserted.
storm-check: ipxe
	@[ "$$(id -u)" = 0 ] || { echo "make storm-check: network namespaces need root (sudo make test)"; exit 1; }
	TARGETS=bootstrapd test/load/storm.sh 200

# Every medium downloaded from the running daemon and booted in qemu (TCG, user networking)
# until the real kernel it fetches from the daemon prints the request's command line.
media-boot: embed arm64-kernel
	BOOTSTRAPD_MEDIA_QEMU=1 BOOTSTRAPD_IPXE_DIR=$(CURDIR)/$(IPXE_DIR) BOOTSTRAPD_KERNEL_ARM64=$(CURDIR)/$(ARM64_KERNEL_DIR)/vmlinuz $(GO) test -v -count=1 -timeout 30m -run TestMediaBoot ./cmd/bootstrapd/

# The operator page in headless Chromium (Debian chromium; playwright-core from test/web).
web: ipxe
	BOOTSTRAPD_IPXE_DIR=$(CURDIR)/$(IPXE_DIR) test/web/run.sh

# The page's figures at farm scale (10,000 records + 10,000 discovered MACs) for
# docs/PERFORMANCE.md; a measurement, not part of `make test`.
web-scale: ipxe
	BOOTSTRAPD_IPXE_DIR=$(CURDIR)/$(IPXE_DIR) test/web/run.sh scale.mjs

DEB_ARCHES ?= amd64 arm64

# Debian packages: dist/bootstrapd_<version>-1_<arch>.deb (packaging/build-deb.sh).
deb: embed
	@set -e; for a in $(DEB_ARCHES); do packaging/build-deb.sh "$(VERSION)" $$a dist; done

# bootstrapd.service: systemd-analyze verify, and a security exposure of at most 2.0.
service-check:
	systemd/check.sh

# The .deb: lintian, dpkg -i on this machine, the unit's ExecStart run as its user with its
# capabilities, then purge. Root.
deb-test: embed
	@[ "$$(id -u)" = 0 ] || { echo "make deb-test: dpkg -i and network namespaces need root"; exit 1; }
	test/deb/test.sh

# The .deb under real systemd (PID 1) in a debootstrapped Debian with systemd-nspawn. Root;
# fetches a Debian root once (about 270 MB, cached in /var/tmp/bootstrapd-nspawn).
deb-nspawn: embed
	test/deb/nspawn.sh

clean:
	rm -rf bin dist
