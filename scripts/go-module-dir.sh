#!/usr/bin/env bash
# Sourced by the build scripts: `go_module_dir PATH@VERSION` downloads a module through the Go
# module proxy into the shared module cache and prints its directory (read-only there).
# `go mod download` wants a module context: an empty one in a temporary directory is enough.
go_module_dir() {
  local ctx
  ctx="$(mktemp -d /tmp/bpfnet-go-dl.XXXXXX)"
  (cd "$ctx" && go mod init dl >/dev/null 2>&1 && go mod download -json "$1") | python3 -c '
import json, sys
info = json.load(sys.stdin)
if "Dir" not in info:
    sys.exit("cannot download %s: %s" % (info.get("Path"), info.get("Error")))
print(info["Dir"])'
  local rc=${PIPESTATUS[1]}
  rm -rf "$ctx"
  return "$rc"
}
