#!/bin/sh
# Usage: test/size/check.sh MAX_BYTES
# Builds the binary as the .deb does (stripped, $GOTAGS) and fails if it is larger than
# MAX_BYTES, or if the linker saw a call of a method by name through reflection: from then on
# it keeps every exported method of every type that reaches an interface (7 MB here), so
# one text/template in a dependency undoes the size budget. Prints who makes that call.
set -eu
max=${1:?usage: $0 MAX_BYTES}
tags=${GOTAGS:-nomsgpack,grpcnotrace}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "-s -w" -o "$work/bootstrapd" ./cmd/bootstrapd
size=$(stat -c %s "$work/bootstrapd")
echo "size-check: stripped binary (tags $tags) is $size bytes, limit $max"
CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "-dumpdep" -o "$work/dumpdep" ./cmd/bootstrapd 2>"$work/deps"
callers=$(grep -- '<ReflectMethod>' "$work/deps" | sed -n 's/ -> .*<ReflectMethod>.*//p' | sort -u || true)
status=0
if [ -n "$callers" ]; then
	echo "size-check: these reach a reflect method call (the linker then keeps every exported method):"
	echo "$callers" | sed 's/^/  /'
	status=1
fi
if [ "$size" -gt "$max" ]; then
	echo "size-check: $size bytes is over the limit of $max"
	status=1
fi
exit $status
