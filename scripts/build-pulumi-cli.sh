#!/usr/bin/env bash
# Builds the Pulumi CLI (pinned) and bpfnet's Node.js language host from the Go module proxy.
#
# - No registry ships a `pulumi` binary, and `go install …/pkg/v3/cmd/pulumi@VERSION` refuses
#   because pkg/go.mod replaces sdk/v3 with ../sdk. We download pkg/v3 and sdk/v3 and lay them
#   out like the upstream repository (pkg/, sdk/), which satisfies the relative replace.
# - The upstream language host is a nested module the proxy here does not serve (403), so
#   tools/pulumi-language-nodejs is our own host against the same pinned sdk/v3 proto.
#
# Usage: build-pulumi-cli.sh OUT_DIR   (OUT_DIR gets pulumi and pulumi-language-nodejs)
# Idempotent: nothing is rebuilt when the binaries already report the pinned versions.
set -euo pipefail

VERSION="${PULUMI_VERSION:-v3.248.0}"
OUT="${1:?usage: build-pulumi-cli.sh OUT_DIR}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
LANGHOST_SRC="$REPO/tools/pulumi-language-nodejs"
mkdir -p "$OUT"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
ldflags_version="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$VERSION"

# The language host is rebuilt when its source changes (hash stamp), the CLI when its version does.
langhost_stamp="$VERSION-$(cat "$LANGHOST_SRC"/*.go "$LANGHOST_SRC"/go.mod "$LANGHOST_SRC"/go.sum | sha256sum | cut -c1-16)"
if [ "$(cat "$OUT/.pulumi-language-nodejs.stamp" 2>/dev/null)" != "$langhost_stamp" ] || [ ! -x "$OUT/pulumi-language-nodejs" ]; then
  echo "build-pulumi-cli: building pulumi-language-nodejs ($VERSION)" >&2
  (cd "$LANGHOST_SRC" && go build -trimpath -ldflags "-X main.version=$VERSION" -o "$OUT/pulumi-language-nodejs" .)
  echo "$langhost_stamp" > "$OUT/.pulumi-language-nodejs.stamp"
fi

if [ "$("$OUT/pulumi" version 2>/dev/null | head -n1)" = "$VERSION" ]; then
  exit 0
fi

command -v go >/dev/null || { echo "build-pulumi-cli: go is required" >&2; exit 1; }
work="$(mktemp -d /tmp/bpfnet-pulumi-build.XXXXXX)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

source "$REPO/scripts/go-module-dir.sh"
echo "build-pulumi-cli: downloading pulumi $VERSION modules" >&2
pkg_dir="$(go_module_dir "github.com/pulumi/pulumi/pkg/v3@$VERSION")"
sdk_dir="$(go_module_dir "github.com/pulumi/pulumi/sdk/v3@$VERSION")"

tree="$work/pulumi"
mkdir -p "$tree"
cp -r "$pkg_dir" "$tree/pkg"
cp -r "$sdk_dir" "$tree/sdk"
chmod -R u+w "$tree"

echo "build-pulumi-cli: building pulumi $VERSION (several minutes on a cold cache)" >&2
(cd "$tree/pkg" && go build -trimpath -tags osusergo,grpcnotrace -ldflags "$ldflags_version" \
  -o "$OUT/pulumi.tmp" ./cmd/pulumi)
mv "$OUT/pulumi.tmp" "$OUT/pulumi"
"$OUT/pulumi" version
