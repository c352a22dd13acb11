// The datapath counts a packet that took a path (the l3 fast path's outcomes, delivery by
// bpf_redirect_peer) once, under the path's reason, and not again under the verdict that path
// implies (bpf/lib/metrics.h path_redirect/path_pass): one per-CPU counter update per packet
// instead of two. Readers see the verdicts as before: this module adds the path counters back.
import { Verdict } from "./abi";
import type { Counters, MetricsKey } from "./abi";

/** Each path reason and the verdict it stands in for (a redirect is FORWARDED, the host stack PASSED). */
export const PATH_VERDICT: ReadonlyMap<number, number> = new Map([
  [Verdict.ROUTE_FAST, Verdict.FORWARDED],
  [Verdict.ROUTE_NEIGH, Verdict.FORWARDED],
  [Verdict.PEER, Verdict.FORWARDED],
  [Verdict.ROUTE_STACK, Verdict.PASSED],
  [Verdict.ROUTE_FIB_STACK, Verdict.PASSED],
]);

/** The reasons whose counters make up `reason` as read: itself, and the paths that stand in for it. */
export function countedAs(reason: number): number[] {
  return [reason, ...[...PATH_VERDICT].filter(([, verdict]) => verdict === reason).map(([path]) => path)];
}

/**
 * The map's raw counters as readers expect them: each FORWARDED/PASSED counter plus the path
 * counters of the same device and direction (a verdict row appears when only its paths were
 * counted). Path rows stay as they are. Pure: tested in test/bpf/pathCounters.test.ts.
 */
export function withPathTotals<E extends MetricsKey & Counters>(raw: readonly E[]): (MetricsKey & Counters)[] {
  const out = raw.map((e) => ({ ...e }) as MetricsKey & Counters);
  const verdictRow = new Map<string, MetricsKey & Counters>();
  const rowKey = (id: number, direction: string, reason: number) => `${id}/${direction}/${reason}`;
  for (const e of out) if (e.reason === Verdict.FORWARDED || e.reason === Verdict.PASSED) verdictRow.set(rowKey(e.id, e.direction, e.reason), e);
  for (const e of raw) {
    const verdict = PATH_VERDICT.get(e.reason);
    if (verdict === undefined) continue;
    const k = rowKey(e.id, e.direction, verdict);
    let row = verdictRow.get(k);
    if (!row) {
      row = { id: e.id, direction: e.direction, reason: verdict, packets: 0n, bytes: 0n };
      verdictRow.set(k, row);
      out.push(row);
    }
    row.packets += e.packets;
    row.bytes += e.bytes;
  }
  return out;
}
