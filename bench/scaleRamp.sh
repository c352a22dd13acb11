#!/usr/bin/env bash
# The full simulated ramp (500, 1,000, 2,000, 5,000 hosts) and the churn, in one command for an
# idle machine: writes the generated block of docs/benchmarks.md ("Scale") and
# docs/scale-curves.svg. Resumable: a step an earlier run measured with the same configuration
# is kept (build/scale-ramp.json) and only ramped past, so a run stopped at 2,000 goes on from
# there. Any SCALE_* variable of bench/scale.ts overrides the defaults below.
#   bash bench/scaleRamp.sh                 (BENCH_LOCK= to run without the shared bench lock)
#   SCALE_AGENT_THREADS=1 bash bench/scaleRamp.sh   (each agent on a thread of its own; steps saved
#                                            by the in-process mode are not kept, nor the reverse)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export SCALE_SIZES="${SCALE_SIZES:-500,1000,2000,5000}"
export SCALE_JSON="${SCALE_JSON:-build/scale-ramp.json}"
export SCALE_RESUME="${SCALE_RESUME:-1}"
export SCALE_DOCS="${SCALE_DOCS:-1}"
export SCALE_AGENTS="${SCALE_AGENTS:-6}"
export SCALE_PROBES="${SCALE_PROBES:-15}"
export SCALE_CHURN_SECONDS="${SCALE_CHURN_SECONDS:-60}"
export SCALE_CALL_TIMEOUT_MS="${SCALE_CALL_TIMEOUT_MS:-30000}"
mkdir -p "$(dirname "$SCALE_JSON")"
run=(node --expose-gc -r ts-node/register/transpile-only bench/scale.ts)
lock="${BENCH_LOCK-/run/lock/bpfnet-bench.lock}"
if [ -n "$lock" ]; then exec flock "$lock" "${run[@]}"; else exec "${run[@]}"; fi
