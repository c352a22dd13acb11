#!/usr/bin/env bash
# Builds the BPF datapath objects (build/bpf/bpf_{lxc,overlay,host}.o) and the
# native addon (bpf/addon/build/Release/bpfnet_native.node). Idempotent and
# silent when everything is newer than its sources; called by scripts/setup.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "build-bpf: $*" >&2; }

# 1. BPF objects: bpf/Makefile knows each object's sources and headers.
if ! make -q --no-print-directory -C bpf >/dev/null 2>&1; then
  say "compiling BPF objects"
  make -s --no-print-directory -C bpf
fi

# 2. The addon, when any of its inputs is newer than the .node file.
addon_dir=bpf/addon
addon="$addon_dir/build/Release/bpfnet_native.node"
stale() {
  [ ! -f "$addon" ] && return 0
  [ -n "$(find "$addon_dir/binding.gyp" "$addon_dir/src" node_modules/node-addon-api/package.json \
    -newer "$addon" -print -quit)" ]
}
if stale; then
  say "building native addon"
  # Headers of the running node (Debian/NodeSource install them under <prefix>/include/node);
  # without --nodedir node-gyp would try to download them.
  node_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  gyp_args=(--jobs=2 --loglevel=error)
  [ -f "$node_prefix/include/node/node_api.h" ] && gyp_args+=("--nodedir=$node_prefix")
  log="$(mktemp)"
  trap 'rm -f "$log"' EXIT
  gyp=(npx --no-install node-gyp)
  if ! (cd "$addon_dir" &&
    { [ -f build/Makefile ] && [ build/Makefile -nt binding.gyp ] || "${gyp[@]}" configure "${gyp_args[@]}"; } &&
    "${gyp[@]}" build "${gyp_args[@]}") >"$log" 2>&1; then
    cat "$log" >&2
    say "native addon build failed"
    exit 1
  fi
  touch "$addon"  # make may leave it untouched when only unrelated inputs changed
fi
