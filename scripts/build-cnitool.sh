#!/usr/bin/env bash
# Builds cnitool (the CNI project's reference client) from the Go module proxy, once per machine,
# and links it as .tools/bin/cnitool. The CNI tests drive bin/bpfnet-cni through it.
#
# Usage: build-cnitool.sh [OUT_DIR]   (default /var/cache/bpfnet/cnitool; OUT_DIR/bin/cnitool)
# Idempotent: nothing is rebuilt when the binary of the pinned version is already there.
set -euo pipefail

VERSION="${CNITOOL_VERSION:-v1.3.0}"
OUT="${1:-${BPFNET_CACHE:-/var/cache/bpfnet}/cnitool}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
stamp="$OUT/.cnitool.version"

if [ ! -x "$OUT/bin/cnitool" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$VERSION" ]; then
  command -v go >/dev/null || { echo "build-cnitool: go is required" >&2; exit 1; }
  echo "build-cnitool: building cnitool $VERSION" >&2
  mkdir -p "$OUT/bin"
  # GOBIN puts the binary in the cache; GOTOOLCHAIN=local never fetches another Go.
  GOTOOLCHAIN=local GOBIN="$OUT/bin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install -trimpath "github.com/containernetworking/cni/cnitool@$VERSION"
  echo "$VERSION" > "$stamp"
fi

mkdir -p "$REPO/.tools/bin"
ln -sfn "$OUT/bin/cnitool" "$REPO/.tools/bin/cnitool"
