// Results of the datapath benchmark: the tables printed and written to docs/benchmarks.md.
// Each mode owns a marked block in that file, so `--mode l3` replaces only the l3 figures and the
// hand-written text around the blocks stays.
import * as fs from "fs";
import type { IperfResult } from "./traffic";
import { fmt, markdownTable, mean, median, percentile, ratio } from "./stats";

export interface PathResult {
  /** One entry per iperf3 run. */
  throughput: IperfResult[];
  /** Request/response round trips, µs. */
  rr: number[];
  /** Ping RTTs, ms, one ping every 10 ms (the CPUs idle between pings). */
  ping: number[];
  /** Ping RTTs, ms, back to back (one every 0.2 ms: the path stays warm). */
  pingFast: number[];
  pingLost: number;
  /** bpfnet datapath packets counted (both hosts, all programs) while this path carried the traffic. */
  bpfPackets: bigint;
}

export interface LatencySamples {
  /** What was measured, for the table. */
  what: string;
  samples: number[];
  failures: number;
  /** Further columns, e.g. the API call's own duration. */
  extra?: { what: string; samples: number[] }[];
}

/** One path of the idle-ping comparison (all measured in the same rounds). */
export interface PingVariant {
  what: string;
  p50: number;
  mean: number;
  n: number;
  /** p50 / the baseline's p50, pooled over the rounds. */
  ratio: number;
  /** The same ratio round by round. */
  roundRatios: number[];
}

export interface ModeResult {
  mode: "vxlan" | "l3";
  title: string;
  bpfnet: PathResult;
  baseline: PathResult;
  /** Describes the two paths in one line each. */
  paths: { bpfnet: string; baseline: string };
  params: string;
  control: LatencySamples[];
  variants: PingVariant[];
  checks: string[];
  /** How busy the machine was during this mode. */
  cpu: string;
  seconds: number;
  /** The mode's goals (issue 13); the defaults of earlier runs when absent. */
  goals?: Goals;
}

/** Goals of a mode: bpfnet/baseline ratios, and control-plane latencies in ms. */
export interface Goals {
  /** Throughput ratio, at least. */
  throughput: number;
  /** Request/response p50 and mean ratios, at most. */
  latency: number;
  /** Idle ping (one every 10 ms) p50 ratio, at most. */
  idlePing?: number;
  /** Endpoint add → first answered packet, ms, at most. */
  endpointAdd?: { p50: number; p99: number };
}

export interface RunInfo {
  date: string;
  kernel: string;
  cpus: number;
  cpuModel: string;
  loadBefore: string;
  loadAfter?: string;
  command: string;
  quick: boolean;
}

const DEFAULT_GOALS: Goals = { throughput: 0.9, latency: 1.1 };

function verdict(r: number, goal: number, higherIsBetter: boolean): string {
  if (!Number.isFinite(r)) return "n/a";
  return (higherIsBetter ? r >= goal : r <= goal) ? "met" : "**missed**";
}

/** The comparison rows of one mode (absolute figures, bpfnet/baseline ratios) and the goals they missed. */
function comparison(m: ModeResult): { rows: string[][]; missed: string[] } {
  const g = m.goals ?? DEFAULT_GOALS;
  const gbps = (p: PathResult) => median(p.throughput.map((t) => t.gbps));
  const rows: string[][] = [];
  const missed: string[] = [];
  const add = (metric: string, unit: string, a: number, b: number, digits: number, goal?: { value: number; higher: boolean }) => {
    const r = ratio(a, b);
    if (goal && verdict(r, goal.value, goal.higher) !== "met") missed.push(`${m.mode}: ${metric} ${fmt(r, 3)}× (goal ${goal.higher ? "≥" : "≤"} ${goal.value}×)`);
    rows.push([
      metric,
      `${fmt(a, digits)} ${unit}`,
      `${fmt(b, digits)} ${unit}`,
      `${fmt(r, 3)}×`,
      goal ? `${goal.higher ? "≥" : "≤"} ${goal.value}×` : "info",
      goal ? verdict(r, goal.value, goal.higher) : "",
    ]);
  };
  add(`TCP throughput, iperf3 median of ${m.bpfnet.throughput.length}`, "Gbit/s", gbps(m.bpfnet), gbps(m.baseline), 2, { value: g.throughput, higher: true });
  add(`TCP request/response p50 (${m.bpfnet.rr.length} RT)`, "µs", percentile(m.bpfnet.rr, 50), percentile(m.baseline.rr, 50), 1, { value: g.latency, higher: false });
  add("TCP request/response mean", "µs", mean(m.bpfnet.rr), mean(m.baseline.rr), 1, { value: g.latency, higher: false });
  add("TCP request/response p99", "µs", percentile(m.bpfnet.rr, 99), percentile(m.baseline.rr, 99), 1);
  const idle = g.idlePing !== undefined ? { value: g.idlePing, higher: false } : undefined;
  add(`ping RTT p50, every 10 ms (${m.bpfnet.ping.length} pings)`, "µs", percentile(m.bpfnet.ping, 50) * 1000, percentile(m.baseline.ping, 50) * 1000, 0, idle);
  add("ping RTT mean, every 10 ms", "µs", mean(m.bpfnet.ping) * 1000, mean(m.baseline.ping) * 1000, 0);
  add(`ping RTT p50, back to back (${m.bpfnet.pingFast.length} pings)`, "µs", percentile(m.bpfnet.pingFast, 50) * 1000, percentile(m.baseline.pingFast, 50) * 1000, 1);
  add("ping RTT mean, back to back", "µs", mean(m.bpfnet.pingFast) * 1000, mean(m.baseline.pingFast) * 1000, 1);
  return { rows, missed: [...missed, ...controlGoals(m).missed] };
}

/** The comparison table of one mode: absolute figures and bpfnet/baseline ratios. */
export function comparisonTable(m: ModeResult): string {
  return markdownTable(["metric", "bpfnet", "baseline", "bpfnet/baseline", "goal", ""], comparison(m).rows);
}

/** Every goal of the mode the run missed, one line each (empty: all met). */
export function missedGoals(m: ModeResult): string[] {
  return comparison(m).missed;
}

/** The endpoint-add goal against its samples: the table's cell and what was missed. */
function controlGoals(m: ControlResult): { cell: (c: LatencySamples) => string; missed: string[] } {
  const goal = m.goals?.endpointAdd;
  const applies = (c: LatencySamples) => goal !== undefined && c.what.startsWith("endpoint add");
  const missed: string[] = [];
  for (const c of m.control.filter(applies)) {
    const [p50, p99] = [percentile(c.samples, 50), percentile(c.samples, 99)];
    if (!(p50 <= goal!.p50 && p99 <= goal!.p99) || c.failures > 0) {
      missed.push(`${m.mode}: ${c.what} p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms, ${c.failures} failed (goal p50 ≤ ${goal!.p50}, p99 ≤ ${goal!.p99} ms, none failed)`);
    }
  }
  const cell = (c: LatencySamples) => {
    if (!applies(c)) return "";
    const met = percentile(c.samples, 50) <= goal!.p50 && percentile(c.samples, 99) <= goal!.p99 && c.failures === 0;
    return `p50 ≤ ${goal!.p50}, p99 ≤ ${goal!.p99}: ${met ? "met" : "**missed**"}`;
  };
  return { cell, missed };
}

export function runsTable(m: ModeResult): string {
  const rows = m.bpfnet.throughput.map((t, i) => {
    const b = m.baseline.throughput[i];
    return [String(i + 1), fmt(t.gbps, 2), String(t.retransmits), `${fmt(t.senderCpu, 0)}/${fmt(t.receiverCpu, 0)}`, fmt(b?.gbps, 2), String(b?.retransmits ?? "-"), `${fmt(b?.senderCpu, 0)}/${fmt(b?.receiverCpu, 0)}`];
  });
  return markdownTable(["iperf3 run", "bpfnet Gbit/s", "retr", "CPU % snd/rcv", "baseline Gbit/s", "retr", "CPU % snd/rcv"], rows);
}

/** What the control-plane table and its goal need of a mode (bench/datapath.ts --only endpoint-add has no paths). */
export type ControlResult = Pick<ModeResult, "mode" | "control" | "goals">;

/** The endpoint-add goal's misses alone. */
export function controlMissed(m: ControlResult): string[] {
  return controlGoals(m).missed;
}

export function controlTable(m: ControlResult): string {
  const rows: string[][] = [];
  const { cell } = controlGoals(m);
  for (const c of m.control) {
    const line = (what: string, xs: number[], failures?: number, goal = "") =>
      rows.push([what, String(xs.length) + (failures ? ` (+${failures} failed)` : ""), fmt(percentile(xs, 50)), fmt(percentile(xs, 90)), fmt(percentile(xs, 99)), fmt(mean(xs)), fmt(xs.length ? Math.max(...xs) : NaN), goal]);
    line(c.what, c.samples, c.failures, cell(c));
    for (const e of c.extra ?? []) line(`  ${e.what}`, e.samples);
  }
  return markdownTable(["control plane (ms)", "n", "p50", "p90", "p99", "mean", "max", "goal"], rows);
}

export function variantsTable(m: ModeResult): string {
  const rows = m.variants.map((v) => [v.what, String(v.n), fmt(v.p50, 0), fmt(v.mean, 1), `${fmt(v.ratio, 2)}×`, v.roundRatios.map((r) => fmt(r, 2)).join(" ")]);
  return markdownTable(["ping every 10 ms, same rounds", "n", "p50 µs", "mean µs", "p50 / baseline", "per round"], rows);
}

export function renderMode(m: ModeResult, run: RunInfo): string {
  return [
    `#### ${m.title}`,
    "",
    `Run ${run.date}${run.quick ? " (**--quick**: fewer, shorter runs)" : ""}: kernel ${run.kernel}, ${run.cpus} CPUs (${run.cpuModel}), ` +
      `load average before ${run.loadBefore}${run.loadAfter ? `, after ${run.loadAfter}` : ""}; ${fmt(m.seconds, 0)} s for this mode, ${m.cpu}.`,
    "",
    "```",
    run.command,
    "```",
    "",
    `- bpfnet: ${m.paths.bpfnet}`,
    `- baseline: ${m.paths.baseline}`,
    `- ${m.params}`,
    "",
    comparisonTable(m),
    "",
    runsTable(m),
    "",
    ...(m.control.length ? [controlTable(m), ""] : []),
    ...(m.variants.length ? [variantsTable(m), ""] : []),
    "Checks made during the run:",
    "",
    ...m.checks.map((c) => `- ${c}`),
    "",
  ].join("\n");
}

const begin = (mode: string, source: string) => `<!-- ${source} ${mode}: begin (generated) -->`;
const end = (mode: string, source: string) => `<!-- ${source} ${mode}: end -->`;

/** Replaces (or appends) each mode's generated block of benchmark `source` in `file`. */
export function writeDoc(file: string, blocks: { mode: string; text: string }[], source = "bench/datapath.ts"): void {
  let doc = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "# Benchmarks\n\n## Datapath (bench/datapath.ts)\n\n";
  for (const b of blocks) {
    const [first, last] = [begin(b.mode, source), end(b.mode, source)];
    const block = `${first}\n${b.text.trimEnd()}\n${last}`;
    const i = doc.indexOf(first);
    const j = doc.indexOf(last);
    if (i >= 0 && j > i) doc = doc.slice(0, i) + block + doc.slice(j + last.length);
    else doc = `${doc.trimEnd()}\n\n${block}\n`;
  }
  fs.writeFileSync(file, doc.endsWith("\n") ? doc : `${doc}\n`);
}

/** A benchmark is a check as well as a measurement: prints the goals missed and fails the run on any. */
export function failOnMissedGoals(missed: string[]): void {
  if (missed.length) {
    console.log(`goals missed:\n${missed.map((m) => `  ${m}`).join("\n")}`);
    process.exitCode = 1;
  } else console.log("all goals met");
}
