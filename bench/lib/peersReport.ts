// Results of bench/peers.ts (bpfnet against flannel): one table per mode with both figures, the
// bpfnet/flannel ratio and the goal (bpfnet at least as good on every figure), and the goals missed.
import type { IperfResult } from "./traffic";
import { fmt, markdownTable, mean, median, percentile, ratio } from "./stats";

export interface PeerSide {
  throughput: IperfResult[];
  /** Request/response round trips, µs. */
  rr: number[];
  /** Ping RTTs, ms, one every 10 ms. */
  ping: number[];
  /** Ping RTTs, ms, back to back. */
  pingFast: number[];
  /** Endpoint/container add → first answered packet, ms. */
  add: number[];
  addFailures: number;
  /** A new host joining → a container on every other host answers its container, ms. */
  join: number[];
  /** The same, from the moment the new host's daemon and container were ready (the network's part). */
  joinAfterReady: number[];
  joinFailures: number;
}

interface Row {
  metric: string;
  unit: string;
  bpfnet: number;
  flannel: number;
  digits: number;
  /** undefined: information only. */
  higherIsBetter?: boolean;
}

function rows(b: PeerSide, f: PeerSide): Row[] {
  const gbps = (s: PeerSide) => median(s.throughput.map((t) => t.gbps));
  return [
    { metric: `TCP throughput, iperf3 median of ${b.throughput.length}`, unit: "Gbit/s", bpfnet: gbps(b), flannel: gbps(f), digits: 2, higherIsBetter: true },
    { metric: `TCP request/response p50 (${b.rr.length} RT)`, unit: "µs", bpfnet: percentile(b.rr, 50), flannel: percentile(f.rr, 50), digits: 1, higherIsBetter: false },
    { metric: "TCP request/response mean", unit: "µs", bpfnet: mean(b.rr), flannel: mean(f.rr), digits: 1, higherIsBetter: false },
    { metric: "TCP request/response p99", unit: "µs", bpfnet: percentile(b.rr, 99), flannel: percentile(f.rr, 99), digits: 1 },
    { metric: `idle ping p50, one every 10 ms (${b.ping.length})`, unit: "µs", bpfnet: percentile(b.ping, 50) * 1000, flannel: percentile(f.ping, 50) * 1000, digits: 0, higherIsBetter: false },
    { metric: `ping p50, back to back (${b.pingFast.length})`, unit: "µs", bpfnet: percentile(b.pingFast, 50) * 1000, flannel: percentile(f.pingFast, 50) * 1000, digits: 1 },
    { metric: `new host joins → every host answers its container, median of ${b.join.length}`, unit: "ms", bpfnet: median(b.join), flannel: median(f.join), digits: 0, higherIsBetter: false },
    { metric: "… of which after the new host's daemon and container were ready", unit: "ms", bpfnet: median(b.joinAfterReady), flannel: median(f.joinAfterReady), digits: 1 },
    { metric: `endpoint add → first answered packet p50 (${b.add.length})`, unit: "ms", bpfnet: percentile(b.add, 50), flannel: percentile(f.add, 50), digits: 1, higherIsBetter: false },
    { metric: "endpoint add → first answered packet p99", unit: "ms", bpfnet: percentile(b.add, 99), flannel: percentile(f.add, 99), digits: 1 },
  ];
}

const met = (r: Row, x: number) => (r.higherIsBetter ? x >= 1 : x <= 1);

/** The mode's table: figures, bpfnet/flannel, the goal and its verdict. */
export function peersTable(b: PeerSide, f: PeerSide): string {
  return markdownTable(
    ["metric", "bpfnet", "flannel", "bpfnet/flannel", "goal", ""],
    rows(b, f).map((r) => {
      const x = ratio(r.bpfnet, r.flannel);
      const goal = r.higherIsBetter === undefined ? "info" : r.higherIsBetter ? "≥ 1×" : "≤ 1×";
      const verdict = r.higherIsBetter === undefined ? "" : !Number.isFinite(x) ? "n/a" : met(r, x) ? "met" : "**missed**";
      return [r.metric, `${fmt(r.bpfnet, r.digits)} ${r.unit}`, `${fmt(r.flannel, r.digits)} ${r.unit}`, `${fmt(x, 3)}×`, goal, verdict];
    }),
  );
}

/** Every goal missed (a figure with no ratio, or failed adds/joins, count as missed), one line each. */
export function peersMissed(mode: string, b: PeerSide, f: PeerSide): string[] {
  const missed = rows(b, f)
    .filter((r) => r.higherIsBetter !== undefined)
    .filter((r) => {
      const x = ratio(r.bpfnet, r.flannel);
      return !Number.isFinite(x) || !met(r, x);
    })
    .map((r) => `${mode}: ${r.metric}: bpfnet ${fmt(r.bpfnet, r.digits)} ${r.unit}, flannel ${fmt(r.flannel, r.digits)} ${r.unit} (${fmt(ratio(r.bpfnet, r.flannel), 3)}×)`);
  for (const [who, s] of [["bpfnet", b], ["flannel", f]] as const) {
    if (s.addFailures || s.joinFailures) missed.push(`${mode}: ${who}: ${s.addFailures} endpoint adds and ${s.joinFailures} joins never answered`);
  }
  return missed;
}
