// The agent's Prometheus registry (prom-client). Every bpfnet metric is defined through the
// helpers here, which enforce the `bpfnet_` prefix and Prometheus naming (counters end in
// `_total`, units in the name). Other parts of the agent (health) register theirs the same way.
import { Counter, Gauge, Histogram, Registry } from "prom-client";

// A metric defined again (an agent restarted inside one process, as tests do) replaces the old one.

/** One registry per agent process; the metrics server serves it. */
export const registry = new Registry();

const NAME = /^bpfnet_[a-z][a-z0-9_]*$/;

function checkName(name: string, kind: "counter" | "gauge" | "histogram"): void {
  if (!NAME.test(name)) throw new Error(`metric ${JSON.stringify(name)} must be snake_case with the bpfnet_ prefix`);
  if (kind === "counter" && !name.endsWith("_total")) throw new Error(`counter ${name} must end in _total`);
  if (kind !== "counter" && name.endsWith("_total")) throw new Error(`${kind} ${name} must not end in _total`);
}

export interface MetricSpec<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

/**
 * A counter. `collect` (optional) runs at each scrape: counters whose truth lives elsewhere (BPF
 * maps) are set from it with `setCounter`.
 */
export function defineCounter<L extends string>(spec: MetricSpec<L>, collect?: (c: Counter<L>) => void | Promise<void>): Counter<L> {
  checkName(spec.name, "counter");
  registry.removeSingleMetric(spec.name);
  return new Counter<L>({ ...spec, labelNames: spec.labelNames ?? [], registers: [registry], ...(collect ? { collect() { return collect(this); } } : {}) });
}

/** A gauge; `collect` (optional) sets it at each scrape. */
export function defineGauge<L extends string>(spec: MetricSpec<L>, collect?: (g: Gauge<L>) => void | Promise<void>): Gauge<L> {
  checkName(spec.name, "gauge");
  registry.removeSingleMetric(spec.name);
  return new Gauge<L>({ ...spec, labelNames: spec.labelNames ?? [], registers: [registry], ...(collect ? { collect() { return collect(this); } } : {}) });
}

/** A histogram with the given bucket bounds (seconds for durations). */
export function defineHistogram<L extends string>(spec: MetricSpec<L> & { buckets: number[] }): Histogram<L> {
  checkName(spec.name, "histogram");
  registry.removeSingleMetric(spec.name);
  return new Histogram<L>({ ...spec, labelNames: spec.labelNames ?? [], registers: [registry] });
}

/**
 * Sets a counter to totals read from elsewhere (a BPF map's running count): prom-client
 * counters only go up, so the scrape resets and re-adds. Values are exact up to 2^53.
 */
export function setCounter<L extends string>(c: Counter<L>, rows: { labels: Partial<Record<L, string>>; value: number | bigint }[]): void {
  c.reset();
  for (const r of rows) c.inc(r.labels, Number(r.value));
}
