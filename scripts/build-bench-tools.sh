#!/usr/bin/env bash
# Builds the peers bench/peers.ts races bpfnet against, from the Go module proxy, once per machine,
# cached by version under /var/cache/bpfnet (never run by `npm test` or CI: benchmarks only):
#   flannel-v0.28.10/bin/flanneld
#   cni-plugins-v1.10.0/bin/{bridge,host-local,loopback}
#
# - flannel's own CNI plugin (github.com/flannel-io/cni-plugin) is not served by the proxy; it only
#   turns /run/flannel/subnet.env into a bridge + host-local configuration, which bench/lib/flannel.ts
#   does the same way, so the reference plugins are all the container wiring needs.
# - flanneld is built from a copy of the published module minus two backends that cannot be built
#   here (see below); the CNI plugins with `go install path@version`, as published.
# - Builds run at nice 19 with -p 1: the machine is shared. Cold cost in docs/benchmarks.md.
#
# Usage: build-bench-tools.sh [CACHE_DIR]   (default ${BPFNET_CACHE:-/var/cache/bpfnet})
# Output: one line; the full log and the build cost (cold: empty Go caches) are in CACHE_DIR/build-bench-tools.{log,time}.
# Idempotent: a cached binary of the pinned version is never rebuilt.
set -euo pipefail

FLANNEL_VERSION="${FLANNEL_VERSION:-v0.28.10}"
CNI_PLUGINS_VERSION="${CNI_PLUGINS_VERSION:-v1.10.0}"
CACHE="${1:-${BPFNET_CACHE:-/var/cache/bpfnet}}"
FLANNEL_DIR="$CACHE/flannel-$FLANNEL_VERSION"
CNI_DIR="$CACHE/cni-plugins-$CNI_PLUGINS_VERSION"
LOG="$CACHE/build-bench-tools.log"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$CACHE"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

plugins=(bridge host-local loopback)
missing=()
[ -x "$FLANNEL_DIR/bin/flanneld" ] || missing+=(flanneld)
for p in "${plugins[@]}"; do [ -x "$CNI_DIR/bin/$p" ] || missing+=("$p"); done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "build-bench-tools: cached (flannel $FLANNEL_VERSION, cni-plugins $CNI_PLUGINS_VERSION)"
  exit 0
fi
command -v go >/dev/null || { echo "build-bench-tools: go is required" >&2; exit 1; }
exec 9>"$CACHE/.build-bench-tools.lock"
flock -n 9 || { echo "build-bench-tools: another build is running (log $LOG)"; exit 1; }
echo "build-bench-tools: building ${missing[*]} (log $LOG)"

started=$(date +%s)
cpu_before=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
# A subshell outside any `||`, so that `set -e` stops it at the first failure.
set +e
(
  set -e
  work="$(mktemp -d /tmp/bpfnet-bench-tools.XXXXXX)"
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  source "$REPO/scripts/go-module-dir.sh"
  if [ ! -x "$FLANNEL_DIR/bin/flanneld" ]; then
    # main.go links every backend in. Two cannot be built here: tencentvpc's SDK module is not
    # served by the proxy, udp needs cgo. Neither is raced: their imports (and the unserved
    # requirement) are dropped from a copy of the published source; nothing else changes.
    src="$(go_module_dir "github.com/flannel-io/flannel@$FLANNEL_VERSION")"
    cp -r "$src" "$work/flannel" && chmod -R u+w "$work/flannel"
    cd "$work/flannel"
    sed -i -e '/pkg\/backend\/tencentvpc"/d' -e '/pkg\/backend\/udp"/d' main.go
    go mod edit -droprequire github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc
    mkdir -p "$FLANNEL_DIR/bin"
    GOFLAGS=-mod=mod nice -n 19 go build -p 1 -trimpath -o "$FLANNEL_DIR/bin/flanneld.tmp" \
      -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION" .
    mv "$FLANNEL_DIR/bin/flanneld.tmp" "$FLANNEL_DIR/bin/flanneld"
  fi
  mkdir -p "$CNI_DIR/bin"
  for p in "${plugins[@]}"; do
    [ -x "$CNI_DIR/bin/$p" ] && continue
    case "$p" in host-local) kind=ipam ;; *) kind=main ;; esac
    # `go install path@version` builds the module exactly as published.
    GOBIN="$CNI_DIR/bin" nice -n 19 go install -p 1 -trimpath -ldflags "-s -w" \
      "github.com/containernetworking/plugins/plugins/$kind/$p@$CNI_PLUGINS_VERSION"
  done
) >>"$LOG" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] || { echo "build-bench-tools: failed, see $LOG" >&2; exit 1; }
# Children's CPU time (utime+stime of waited-for children) in clock ticks.
cpu_after=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
ticks=$(getconf CLK_TCK)
echo "build of ${missing[*]}: $(( $(date +%s) - started )) s wall, $(( (cpu_after - cpu_before) / ticks )) CPU-s, load $(cut -d' ' -f1-3 /proc/loadavg)" \
  | tee -a "$CACHE/build-bench-tools.time"
