// The agent's metrics (docs/observability.md lists them): the datapath's counters read from the
// BPF maps at each scrape, the agent's own state, etcd watches, reconcile passes, and the node
// monitor. Aggregation is pure (tested apart); the sources are the live agent's.
import { Verdict, reasonName } from "../../bpf/abi";
import type { MetricsEntry, VerdictEntry } from "../../bpf/maps";
import { reconcileObservers } from "../daemon/reconcile";
import type { MonitorCounts } from "../monitor/hub";
import { defineCounter, defineGauge, defineHistogram, setCounter } from "./registry";

/** What the metrics read; each is called at scrape time. Undefined: not available (yet). */
export interface MetricSources {
  /** bpfnet_metrics rows. */
  datapathCounters(): MetricsEntry[] | undefined;
  /** bpfnet_verdicts rows. */
  verdictCounters(): VerdictEntry[] | undefined;
  /** Identities of the ipcache (every address's). */
  identities(): number[] | undefined;
  /** Rows of the policy map. */
  policyRows(): number | undefined;
  endpoints(): number | undefined;
  watches(): WatchMetrics[];
  monitor(): MonitorCounts | undefined;
}

export interface WatchMetrics {
  prefix: string;
  connected: boolean;
  disconnects: number;
  lists: number;
  /** Set while the watch is down. */
  disconnectedSince?: Date;
}

type Row<L extends string> = { labels: Record<L, string>; value: bigint };

/** Sums rows by their labels. */
function sumBy<L extends string>(rows: Row<L>[]): Row<L>[] {
  const out = new Map<string, Row<L>>();
  for (const r of rows) {
    const key = JSON.stringify(r.labels);
    const cur = out.get(key);
    if (cur) cur.value += r.value;
    else out.set(key, { labels: r.labels, value: r.value });
  }
  return [...out.values()];
}

/** Forwarded (redirected) and passed (to the host stack) packets or bytes, by hook direction. */
export function forwardRows(entries: readonly MetricsEntry[], field: "packets" | "bytes"): Row<"direction" | "path">[] {
  const paths: Record<number, string> = { [Verdict.FORWARDED]: "forwarded", [Verdict.PASSED]: "passed" };
  return sumBy(entries.filter((e) => e.reason in paths).map((e) => ({ labels: { direction: e.direction, path: paths[e.reason] }, value: e[field] })));
}

/** Dropped packets or bytes by reason name and hook direction. */
export function dropRows(entries: readonly MetricsEntry[], field: "packets" | "bytes"): Row<"reason" | "direction">[] {
  return sumBy(entries.filter((e) => e.reason < 0).map((e) => ({ labels: { reason: reasonName(e.reason), direction: e.direction }, value: e[field] })));
}

/** Policy verdicts (packets) by verdict and policy direction. */
export function verdictRows(entries: readonly VerdictEntry[]): Row<"verdict" | "direction">[] {
  return sumBy(entries.map((e) => ({ labels: { verdict: e.verdict, direction: e.direction === 2 ? "egress" : "ingress" }, value: e.packets })));
}

/** Endpoint identities (256 and up; the reserved ones are not counted) the ipcache knows. */
export function endpointIdentities(identities: readonly number[]): number {
  return new Set(identities.filter((i) => i >= 256)).size;
}

/** Defines every agent metric in the registry, reading from `src` at each scrape. */
export function defineAgentMetrics(src: MetricSources): void {
  const counters = () => src.datapathCounters() ?? [];
  defineCounter({ name: "bpfnet_forward_packets_total", help: "Packets the datapath forwarded (redirected) or passed to the host stack, by tc hook direction.", labelNames: ["direction", "path"] }, (c) =>
    setCounter(c, forwardRows(counters(), "packets")),
  );
  defineCounter({ name: "bpfnet_forward_bytes_total", help: "Bytes the datapath forwarded or passed to the host stack, by tc hook direction.", labelNames: ["direction", "path"] }, (c) =>
    setCounter(c, forwardRows(counters(), "bytes")),
  );
  defineCounter({ name: "bpfnet_drop_packets_total", help: "Packets the datapath dropped, by reason and tc hook direction.", labelNames: ["reason", "direction"] }, (c) =>
    setCounter(c, dropRows(counters(), "packets")),
  );
  defineCounter({ name: "bpfnet_drop_bytes_total", help: "Bytes the datapath dropped, by reason and tc hook direction.", labelNames: ["reason", "direction"] }, (c) =>
    setCounter(c, dropRows(counters(), "bytes")),
  );
  defineCounter({ name: "bpfnet_policy_verdicts_total", help: "Policy verdicts: every denied or audited packet and the first packet of each allowed flow.", labelNames: ["verdict", "direction"] }, (c) =>
    setCounter(c, verdictRows(src.verdictCounters() ?? [])),
  );
  defineGauge({ name: "bpfnet_endpoints", help: "Endpoints (containers) on this host." }, (g) => void g.set(src.endpoints() ?? 0));
  defineGauge({ name: "bpfnet_identities", help: "Endpoint security identities this host's ipcache knows." }, (g) => void g.set(endpointIdentities(src.identities() ?? [])));
  defineGauge({ name: "bpfnet_policy_entries", help: "Rows of this host's policy map (every local endpoint's computed policy)." }, (g) => void g.set(src.policyRows() ?? 0));

  defineGauge({ name: "bpfnet_etcd_watch_connected", help: "1 while the etcd watch of the prefix is connected.", labelNames: ["prefix"] }, (g) => {
    g.reset();
    for (const w of src.watches()) g.set({ prefix: w.prefix }, w.connected ? 1 : 0);
  });
  defineGauge({ name: "bpfnet_etcd_watch_lag_seconds", help: "How far behind etcd the agent's view may be: seconds since the watch was lost (0 while connected).", labelNames: ["prefix"] }, (g) => {
    g.reset();
    for (const w of src.watches()) g.set({ prefix: w.prefix }, w.disconnectedSince ? (Date.now() - w.disconnectedSince.getTime()) / 1000 : 0);
  });
  defineCounter({ name: "bpfnet_etcd_watch_reconnects_total", help: "etcd watch streams that ended and were resumed.", labelNames: ["prefix"] }, (c) =>
    setCounter(c, src.watches().map((w) => ({ labels: { prefix: w.prefix }, value: w.disconnects }))),
  );
  defineCounter({ name: "bpfnet_etcd_watch_relists_total", help: "Full reads of a watched prefix (the first one, and after a compaction).", labelNames: ["prefix"] }, (c) =>
    setCounter(c, src.watches().map((w) => ({ labels: { prefix: w.prefix }, value: w.lists }))),
  );

  const passes = defineHistogram({
    name: "bpfnet_reconcile_duration_seconds",
    help: "Duration of reconcile passes (desired state written to maps and etcd), by target and result.",
    labelNames: ["target", "result"],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  });
  reconcileObservers.clear();
  reconcileObservers.add((target, seconds, ok) => passes.observe({ target, result: ok ? "ok" : "error" }, seconds));

  const monitor = () => src.monitor();
  defineCounter({ name: "bpfnet_monitor_events_total", help: "Node monitor events read from the datapath's ring, by type.", labelNames: ["type"] }, (c) => {
    const m = monitor();
    setCounter(c, m ? Object.entries(m.received).map(([type, value]) => ({ labels: { type }, value })) : []);
  });
  defineCounter({ name: "bpfnet_monitor_events_lost_total", help: "Node monitor events the datapath could not queue (ring full); the packets were not held up." }, (c) =>
    setCounter(c, [{ labels: {}, value: monitor()?.lost ?? 0n }]),
  );
  defineCounter({ name: "bpfnet_monitor_listener_dropped_total", help: "Node monitor events not sent to an API listener whose connection was backed up." }, (c) =>
    setCounter(c, [{ labels: {}, value: monitor()?.listenerDropped ?? 0 }]),
  );
  defineGauge({ name: "bpfnet_monitor_listeners", help: "Node monitor API listeners connected." }, (g) => void g.set(monitor()?.listeners ?? 0));
}
