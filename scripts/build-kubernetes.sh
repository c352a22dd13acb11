#!/usr/bin/env bash
# Builds the Kubernetes toolchain bpfnet's Kubernetes path needs, from the Go module proxy, once per
# machine, cached by version under /var/cache/bpfnet:
#   k8s-v1.34.4/bin/{kube-apiserver,kube-controller-manager,kube-scheduler[,kubelet]}
#   pulumi-kubernetes-v4.25.0/bin/pulumi-resource-kubernetes (registered with `pulumi plugin install`)
#   virtual-kubelet-v1.14.1/bin/virtual-kubelet (only with BPFNET_K8S_VIRTUAL_KUBELET=1)
#
# - No registry ships these binaries. k8s.io/kubernetes's module zip carries a go.work, an empty
#   vendor/ and replaces into ./staging/src/k8s.io/*: we fill staging/ with the published k8s.io/X
#   modules of the same release and drop the two sample modules the proxy refuses.
# - The Pulumi Kubernetes provider module is served only at a pseudo-version between the sdk
#   v4.24.0 and v4.25.0 tags and replaces sdk/v4 with ../sdk: we lay it out like the upstream
#   repository and generate the two embedded files its module zip lacks.
# - One Go module cache and build cache (go env defaults, shared with build-pulumi-cli.sh).
#
# Usage: build-kubernetes.sh [CACHE_DIR]   (default ${BPFNET_CACHE:-/var/cache/bpfnet})
# Output: one line; the full log is CACHE_DIR/build-kubernetes.log. Idempotent: a cached binary of
# the pinned version is never rebuilt. BPFNET_K8S_KUBELET=1 also builds kubelet.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
K8S_STAGING_VERSION="v0.${K8S_VERSION#v1.}"
PK_VERSION="${PULUMI_KUBERNETES_VERSION:-4.25.0}"
# The only provider/v4 version the proxy serves near sdk/v4.25.0 (the tagged commit is refused).
PK_PROVIDER_PSEUDO="${PULUMI_KUBERNETES_PROVIDER_PSEUDO:-v4.0.0-20260115033456-f47bc2d6f199}"
VK_VERSION="${VIRTUAL_KUBELET_VERSION:-v1.14.1}"
CACHE="${1:-${BPFNET_CACHE:-/var/cache/bpfnet}}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
K8S_DIR="$CACHE/k8s-$K8S_VERSION"
PK_DIR="$CACHE/pulumi-kubernetes-v$PK_VERSION"
VK_DIR="$CACHE/virtual-kubelet-$VK_VERSION"
LOG="$CACHE/build-kubernetes.log"
mkdir -p "$CACHE"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler)
[ "${BPFNET_K8S_KUBELET:-0}" = 1 ] && k8s_bins+=(kubelet)

missing=()
for b in "${k8s_bins[@]}"; do [ -x "$K8S_DIR/bin/$b" ] || missing+=("$b"); done
[ -x "$PK_DIR/bin/pulumi-resource-kubernetes" ] || missing+=(pulumi-resource-kubernetes)
[ "${BPFNET_K8S_VIRTUAL_KUBELET:-0}" = 1 ] && { [ -x "$VK_DIR/bin/virtual-kubelet" ] || missing+=(virtual-kubelet); }

register_plugin() {
  # `pulumi plugin install --file` is idempotent; skip it when this version is already installed.
  local pulumi="$REPO/.tools/bin/pulumi"
  [ -x "$pulumi" ] || pulumi="$(command -v pulumi || true)"
  [ -n "$pulumi" ] || return 0
  if ! "$pulumi" plugin ls 2>/dev/null | grep -Eq "^kubernetes +resource +$PK_VERSION "; then
    "$pulumi" plugin install resource kubernetes "v$PK_VERSION" --file "$PK_DIR/bin/pulumi-resource-kubernetes" >>"$LOG" 2>&1
  fi
}

if [ "${#missing[@]}" -eq 0 ]; then
  register_plugin
  echo "build-kubernetes: cached ($K8S_VERSION, pulumi-kubernetes $PK_VERSION)"
  exit 0
fi
command -v go >/dev/null || { echo "build-kubernetes: go is required" >&2; exit 1; }
# One build at a time per cache: a second setup meanwhile does not wait (tens of minutes) nor
# race it; the tests that need the binaries name what is missing until the first one is done.
exec 9>"$CACHE/.build-kubernetes.lock"
if ! flock -n 9; then
  echo "build-kubernetes: another build is running (lock $CACHE/.build-kubernetes.lock, log $LOG); not waiting for it"
  exit 0
fi
echo "build-kubernetes: building ${missing[*]} (cold: tens of CPU-minutes; log $LOG)"

# A subshell outside any `||`, so that `set -e` stops it at the first failure.
set +e
(
  set -e
  started=$(date +%s)
  work="$(mktemp -d /tmp/bpfnet-k8s-build.XXXXXX)"
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  source "$REPO/scripts/go-module-dir.sh"

  # --- Kubernetes: a repository-shaped source tree, kept in the cache for later binaries.
  src="$K8S_DIR/src"
  need_k8s=0
  for b in "${k8s_bins[@]}"; do [ -x "$K8S_DIR/bin/$b" ] || need_k8s=1; done
  if [ "$need_k8s" = 1 ] && [ ! -f "$src/.complete" ]; then
    echo "== k8s.io/kubernetes@$K8S_VERSION source tree"
    rm -rf "$src" && mkdir -p "$K8S_DIR"
    cp -r "$(go_module_dir "k8s.io/kubernetes@$K8S_VERSION")" "$src"
    chmod -R u+w "$src"
    rm -rf "$src/vendor" "$src/go.work" "$src/go.work.sum"
    (cd "$src" && go mod edit -dropreplace k8s.io/sample-cli-plugin -dropreplace k8s.io/sample-controller)
    for mod in $(cd "$src" && go mod edit -json | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/src/"): print(r["Old"]["Path"])'); do
      rm -rf "$src/staging/src/$mod" && mkdir -p "$(dirname "$src/staging/src/$mod")"
      cp -r "$(go_module_dir "$mod@$K8S_STAGING_VERSION")" "$src/staging/src/$mod"
    done
    chmod -R u+w "$src"
    touch "$src/.complete"
  fi
  mkdir -p "$K8S_DIR/bin"
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  for b in "${k8s_bins[@]}"; do
    [ -x "$K8S_DIR/bin/$b" ] && continue
    t0=$(date +%s)
    echo "== $b $K8S_VERSION"
    (cd "$src" && go build -trimpath -ldflags "$k8s_ldflags" -o "$K8S_DIR/bin/$b.tmp" "./cmd/$b")
    mv "$K8S_DIR/bin/$b.tmp" "$K8S_DIR/bin/$b"
    echo "== $b built in $(( $(date +%s) - t0 )) s wall"
  done

  # --- The Pulumi Kubernetes provider: provider/ and sdk/ side by side like the upstream repository.
  if [ ! -x "$PK_DIR/bin/pulumi-resource-kubernetes" ]; then
    t0=$(date +%s)
    echo "== pulumi-resource-kubernetes $PK_VERSION ($PK_PROVIDER_PSEUDO)"
    tree="$work/pulumi-kubernetes"
    mkdir -p "$tree"
    cp -r "$(go_module_dir "github.com/pulumi/pulumi-kubernetes/provider/v4@$PK_PROVIDER_PSEUDO")" "$tree/provider"
    cp -r "$(go_module_dir "github.com/pulumi/pulumi-kubernetes/sdk/v4@v$PK_VERSION")" "$tree/sdk"
    chmod -R u+w "$tree"
    cmd="$tree/provider/cmd/pulumi-resource-kubernetes"
    python3 - "$cmd" "$PK_VERSION" <<'EOF'
import json, sys, os
cmd, version = sys.argv[1], sys.argv[2]
schema = json.load(open(os.path.join(cmd, "schema.json")))
schema["version"] = version
json.dump(schema, open(os.path.join(cmd, "schema-embed.json"), "w"))
src = os.path.join(cmd, "terraform-mapping.json")
dst = os.path.join(cmd, "terraform-mapping-embed.json")
if not os.path.exists(dst):
    data = open(src).read() if os.path.exists(src) else "{}"
    open(dst, "w").write(data)
EOF
    mkdir -p "$PK_DIR/bin"
    (cd "$tree/provider" && go build -trimpath \
      -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PK_VERSION" \
      -o "$PK_DIR/bin/pulumi-resource-kubernetes.tmp" ./cmd/pulumi-resource-kubernetes)
    mv "$PK_DIR/bin/pulumi-resource-kubernetes.tmp" "$PK_DIR/bin/pulumi-resource-kubernetes"
    echo "== pulumi-resource-kubernetes built in $(( $(date +%s) - t0 )) s wall"
  fi

  # --- virtual-kubelet (level 2 only: a mock node whose pods are reported Running).
  if [ "${BPFNET_K8S_VIRTUAL_KUBELET:-0}" = 1 ] && [ ! -x "$VK_DIR/bin/virtual-kubelet" ]; then
    t0=$(date +%s)
    echo "== virtual-kubelet $VK_VERSION"
    mkdir -p "$VK_DIR/bin"
    GOBIN="$VK_DIR/bin" GOFLAGS=-buildvcs=false go install -trimpath "github.com/virtual-kubelet/virtual-kubelet/cmd/virtual-kubelet@$VK_VERSION"
    echo "== virtual-kubelet built in $(( $(date +%s) - t0 )) s wall"
  fi
  echo "== total $(( $(date +%s) - started )) s wall; CPU (user, system; shell then builds):"
  times
) >>"$LOG" 2>&1
rc=$?
set -e
[ "$rc" = 0 ] || { echo "build-kubernetes: FAILED (see $LOG)" >&2; tail -n 20 "$LOG" >&2; exit 1; }

register_plugin
echo "build-kubernetes: built ${missing[*]}"
