// Host-to-host health, the pure part: what one probe round found, how a peer's state moves from
// round to round, the etcd record of it, and the host × host matrix. No I/O here (prober.ts
// probes, the agent publishes). SVC's reconciler asks `peerReachable` before using a peer's
// backends.
import { SCHEMA_VERSION } from "../../provider/etcd/keys";

/** The port of the health endpoint's HTTP responder (cilium-health uses 4240 too). */
export const HEALTH_HTTP_PORT = 4240;

/** One path to a peer: ICMP to its underlay address ("host"), or ICMP + HTTP to its health endpoint ("endpoint"). */
export interface PathHealth {
  ok: boolean;
  /** Round-trip time of the last successful probe. */
  latencyMs?: number;
  /** Why the last probe failed (absent when it succeeded). */
  error?: string;
  /** Since when (ISO time) `ok` has had its current value. */
  since: string;
}

/** This host's view of one peer (GET /v1/health, `bpfnet status`, the etcd record). */
export interface PeerHealth {
  peer: string;
  underlayIp: string;
  /** The peer's health endpoint (from its node record); absent until it published one. */
  healthIp?: string;
  host: PathHealth;
  endpoint: PathHealth;
  /**
   * Every path there is answers: containers on this host reach containers on the peer. A peer
   * that published no health endpoint (health off, an older agent) is judged by its host path.
   */
  reachable: boolean;
  /** Since when `reachable` has had its current value. */
  since: string;
  /** The most recent failure on either path, kept after recovery, with its time. */
  lastError?: string;
  lastErrorAt?: string;
  checkedAt: string;
}

/** What one probe of one path found. */
export interface ProbeOutcome {
  ok: boolean;
  latencyMs?: number;
  error?: string;
}

/** A peer as the agent knows it when probing. */
export interface ProbeTarget {
  peer: string;
  underlayIp: string;
  healthIp?: string;
}

function nextPath(prev: PathHealth | undefined, o: ProbeOutcome, now: string): PathHealth {
  return {
    ok: o.ok,
    ...(o.latencyMs !== undefined ? { latencyMs: Math.round(o.latencyMs * 1000) / 1000 } : {}),
    ...(o.error !== undefined ? { error: o.error } : {}),
    since: prev && prev.ok === o.ok ? prev.since : now,
  };
}

/** The peer's state after a probe round: `since` only moves when the state changes. */
export function nextPeerHealth(prev: PeerHealth | undefined, target: ProbeTarget, host: ProbeOutcome, endpoint: ProbeOutcome, now: string): PeerHealth {
  const reachable = host.ok && (endpoint.ok || target.healthIp === undefined);
  const error = endpoint.error !== undefined && target.healthIp !== undefined ? `endpoint ${target.healthIp ?? "(none)"}: ${endpoint.error}` : host.error !== undefined ? `host ${target.underlayIp}: ${host.error}` : undefined;
  return {
    peer: target.peer,
    underlayIp: target.underlayIp,
    ...(target.healthIp ? { healthIp: target.healthIp } : {}),
    host: nextPath(prev?.host, host, now),
    endpoint: nextPath(prev?.endpoint, endpoint, now),
    reachable,
    since: prev && prev.reachable === reachable ? prev.since : now,
    ...(error !== undefined ? { lastError: error, lastErrorAt: now } : prev?.lastError !== undefined ? { lastError: prev.lastError, lastErrorAt: prev.lastErrorAt } : {}),
    checkedAt: now,
  };
}

/** Is `peer` reachable from the host whose view this is? Unknown peers are not (never probed). */
export function peerReachable(view: readonly PeerHealth[], peer: string): boolean {
  return view.find((p) => p.peer === peer)?.reachable === true;
}

/** The etcd record `<prefix>/state/health/v1/<host>/<peer>` (docs/etcd-layout.md). */
export interface HealthRecord extends PeerHealth {
  schema: number;
  /** The host that probed. */
  from: string;
}

export function healthRecordJson(from: string, p: PeerHealth): string {
  return JSON.stringify({ schema: SCHEMA_VERSION, from, ...p } satisfies HealthRecord);
}

/** A stored record, or undefined when it is not one this version understands. */
export function parseHealthRecord(text: string): HealthRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = v as Partial<HealthRecord> | null;
  if (!r || typeof r !== "object" || r.schema !== SCHEMA_VERSION) return undefined;
  if (typeof r.from !== "string" || typeof r.peer !== "string" || typeof r.reachable !== "boolean" || typeof r.since !== "string") return undefined;
  return r as HealthRecord;
}

/**
 * Should the record in etcd be rewritten? On a change of state (a path up or down, a new
 * error, a new address), and at least every `refreshMs` so latencies stay roughly current —
 * not every round: N hosts probing each other would write N² keys per interval.
 */
export function needsPublish(written: PeerHealth | undefined, now: PeerHealth, refreshMs: number): boolean {
  if (!written) return true;
  const state = (p: PeerHealth) => JSON.stringify([p.reachable, p.host.ok, p.endpoint.ok, p.host.error, p.endpoint.error, p.healthIp, p.underlayIp]);
  if (state(written) !== state(now)) return true;
  return Date.parse(now.checkedAt) - Date.parse(written.checkedAt) >= refreshMs;
}

/** One row of the matrix: what `from` says about every other host (or why it could not say). */
export interface MatrixRow {
  from: string;
  /** Why this host's view is unknown (SSH or agent unreachable). */
  error?: string;
  peers: PeerHealth[];
}

export interface MatrixCell {
  from: string;
  to: string;
  /** "ok", "down" (a probe failed), or "unknown" (no view from `from`, or `to` never probed). */
  state: "ok" | "down" | "unknown";
  detail: string;
}

/** The host × host matrix (off the diagonal) and whether every path is up. */
export function healthMatrix(hosts: readonly string[], rows: readonly MatrixRow[]): { cells: MatrixCell[]; allOk: boolean } {
  const cells: MatrixCell[] = [];
  for (const from of hosts) {
    const row = rows.find((r) => r.from === from);
    for (const to of hosts) {
      if (to === from) continue;
      const p = row?.peers.find((x) => x.peer === to);
      if (!row || row.error !== undefined) cells.push({ from, to, state: "unknown", detail: row?.error ?? "no report" });
      else if (!p) cells.push({ from, to, state: "unknown", detail: `${from} does not probe ${to} (not a peer yet)` });
      else if (p.reachable) cells.push({ from, to, state: "ok", detail: `host ${fmtMs(p.host.latencyMs)}, endpoint ${fmtMs(p.endpoint.latencyMs)}` });
      else cells.push({ from, to, state: "down", detail: `since ${p.since}: ${p.endpoint.ok ? "" : `endpoint ${p.endpoint.error ?? "down"}`}${!p.endpoint.ok && !p.host.ok ? "; " : ""}${p.host.ok ? "" : `host ${p.host.error ?? "down"}`}` });
    }
  }
  return { cells, allOk: cells.every((c) => c.state === "ok") };
}

const fmtMs = (ms: number | undefined) => (ms === undefined ? "?" : `${ms < 10 ? ms.toFixed(2) : ms.toFixed(0)} ms`);

/** The matrix as text: a grid (rows probe, columns are probed) and one line per broken path. */
export function formatMatrix(hosts: readonly string[], m: { cells: MatrixCell[]; allOk: boolean }): string {
  const w = Math.max(4, ...hosts.map((h) => h.length)) + 2;
  const mark = { ok: "ok", down: "DOWN", unknown: "?" } as const;
  const first = Math.max("from\\to".length, ...hosts.map((h) => h.length)) + 1;
  const line = (cells: string[]) => (cells[0].padEnd(first) + cells.slice(1).map((c) => c.padEnd(w)).join("")).trimEnd();
  const lines = [line(["from\\to", ...hosts])];
  for (const from of hosts) lines.push(line([from, ...hosts.map((to) => (to === from ? "-" : mark[m.cells.find((c) => c.from === from && c.to === to)!.state]))]));
  for (const c of m.cells) if (c.state !== "ok") lines.push(`${c.from} → ${c.to}: ${c.state}: ${c.detail}`);
  lines.push(m.allOk ? `all ${m.cells.length} paths ok` : `${m.cells.filter((c) => c.state !== "ok").length} of ${m.cells.length} paths not ok`);
  return lines.join("\n");
}

/** `bpfnet status`'s health lines: the endpoint, then one line per peer. */
export function formatHealth(h: { intervalSeconds: number; endpoint?: { ip: string }; error?: string; peers: PeerHealth[] }): string[] {
  const out = [`health    endpoint ${h.endpoint ? h.endpoint.ip : "none"}${h.error ? ` (${h.error})` : ""}, probing every ${h.intervalSeconds}s`];
  for (const p of h.peers) {
    const path = (name: string, x: PathHealth) => `${name} ${x.ok ? fmtMs(x.latencyMs) : `DOWN (${x.error ?? "no answer"})`}`;
    out.push(`  ${p.peer.padEnd(8)} ${p.reachable ? "reachable" : "UNREACHABLE"} since ${p.since}: ${path(`host ${p.underlayIp}`, p.host)}, ${p.healthIp ? path(`endpoint ${p.healthIp}`, p.endpoint) : "no health endpoint published"}`);
  }
  return out;
}
