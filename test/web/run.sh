#!/bin/sh
# Web page test: bootstrapd's operator page in Debian's headless Chromium through playwright-core
# (no browser download). Needs Go, Node.js >= 18, npm and /usr/bin/chromium (apt-get install
# chromium), and the stock iPXE binaries (make ipxe, or BOOTSTRAPD_IPXE_DIR). The screenshot goes
# to test/web/out/web.png; SCREENSHOT=docs/web.png test/web/run.sh refreshes the committed one.
# `run.sh scale.mjs` measures the page at farm scale instead (make web-scale).
# Exit status 0 only if every check passed.
set -eu
cd "$(dirname "$0")"
repo=$(cd ../.. && pwd)
export PATH="/usr/local/go/bin:$PATH"
if [ -z "${BOOTSTRAPD_IPXE_DIR:-}" ]; then
	export BOOTSTRAPD_IPXE_DIR="$repo/var/ipxe"
	[ -f "$BOOTSTRAPD_IPXE_DIR/ipxe-amd64.efi" ] || "$repo/packaging/fetch-ipxe.sh" "$BOOTSTRAPD_IPXE_DIR"
fi
# playwright-core never downloads a browser; the variable makes that explicit.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
exec node "${1:-test.mjs}"
