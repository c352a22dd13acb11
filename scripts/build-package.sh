#!/usr/bin/env bash
# Everything the package ships, built in place (scripts/setup and `npm pack` run it): compiled
# JavaScript and .d.ts (tsconfig.build.json, incremental), the BPF objects and the native addon,
# the agent bundle, and the API docs in docs/api/ (typedoc, only when a source changed).
# Idempotent; a warm run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
# Incremental: tsc trusts its build info, so a removed dist/ must also drop it.
[ -f dist/index.js ] || rm -f build/tsconfig.build.tsbuildinfo
npx --no-install tsc -p tsconfig.build.json
bash scripts/build-bpf.sh
node scripts/build-agent-bundle.js --quiet
if [ ! -f docs/api/index.html ] || [ -n "$(find index.ts components provider typedoc.json README.md -newer docs/api/index.html -name '*.ts' -print -quit 2>/dev/null)" ] \
  || [ README.md -nt docs/api/index.html ]; then
  npx --no-install typedoc --logLevel Warn
fi
