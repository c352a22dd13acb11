// The node monitor's event as the API streams it (one JSON object per line), its filter, and the
// human one-liner `bpfnet monitor` prints. Pure: the datapath's decoded record in, JSON out.
import { DatapathEvent, EventHook, EventType, PolicyVerdict, reasonName } from "../../bpf/abi";
import { ENDPOINT_ID } from "../api/ids";

export type { EventType };

/** One end of a flow. identity 0: the datapath did not know it. */
export interface FlowEnd {
  ip: string;
  port: number;
  identity: number;
}

/** GET /v1/monitor: one per line (application/x-ndjson). docs/observability.md describes it. */
export interface MonitorEvent {
  /** When the datapath made the event (ISO 8601, ms). */
  time: string;
  /** The agent's host name. */
  host: string;
  type: EventType;
  /** The program that saw the packet. */
  hook: EventHook;
  /** drop: the reason code (negative, bpf/README.md); trace: 0 forwarded, 1 passed to the stack. */
  reason?: number;
  /** drop: "spoofed-source", "policy-denied", …; trace: "forwarded" / "passed". */
  reasonName?: string;
  /** The device the packet was seen on. */
  ifindex: number;
  /** trace: where the packet was redirected (0: the host stack). */
  toIfindex?: number;
  /** drop and trace: the tc hook's side; verdict: the policy direction at the endpoint. */
  direction: "ingress" | "egress";
  /** IP protocol number (6 TCP, 17 UDP, 1 ICMP). */
  proto: number;
  source: FlowEnd;
  destination: FlowEnd;
  /** The local endpoint concerned (its number), when there is one. */
  endpointId?: number;
  /** That endpoint's id (as in `bpfnet endpoint list`), when the agent knows it. */
  endpoint?: string;
  /** verdict only. */
  verdict?: PolicyVerdict;
  /** verdict only: the rule that made the row (0: no row matched, a default deny). */
  ruleId?: number;
  /** Packet length in bytes. */
  length: number;
}

/** What a listener wants; absent fields match everything. */
export interface MonitorFilter {
  types?: EventType[];
  /** An endpoint's id, or its number. */
  endpoint?: string;
}

const TYPES: EventType[] = ["drop", "verdict", "trace"];

/** The datapath's record as the API's event; `wallOffsetMs` maps CLOCK_MONOTONIC ns to epoch ms. */
export function toMonitorEvent(e: DatapathEvent, host: string, wallOffsetMs: number, endpointName?: (n: number) => string | undefined): MonitorEvent {
  const out: MonitorEvent = {
    time: new Date(Math.round(Number(e.timeNs / 1000n) / 1000 + wallOffsetMs)).toISOString(),
    host,
    type: e.type,
    hook: e.hook,
    ifindex: e.ifindex,
    direction: e.direction,
    proto: e.proto,
    source: { ip: e.saddr, port: e.sport, identity: e.srcIdentity },
    destination: { ip: e.daddr, port: e.dport, identity: e.dstIdentity },
    length: e.length,
  };
  if (e.type !== "verdict") {
    out.reason = e.reason;
    out.reasonName = reasonName(e.reason);
  }
  if (e.type === "trace") out.toIfindex = e.toIfindex;
  if (e.endpointId) {
    out.endpointId = e.endpointId;
    const name = endpointName?.(e.endpointId);
    if (name) out.endpoint = name;
  }
  if (e.type === "verdict") {
    if (e.verdict) out.verdict = e.verdict;
    out.ruleId = e.ruleId;
  }
  return out;
}

/** Epoch ms minus CLOCK_MONOTONIC ms, now (the agent and the datapath share the clock). */
export function wallOffsetMs(monotonicNowNs: bigint, epochNowMs: number): number {
  return epochNowMs - Number(monotonicNowNs / 1000n) / 1000;
}

export function matchesFilter(f: MonitorFilter, e: MonitorEvent): boolean {
  if (f.types && f.types.length > 0 && !f.types.includes(e.type)) return false;
  if (f.endpoint !== undefined && e.endpoint !== f.endpoint && String(e.endpointId) !== f.endpoint) return false;
  return true;
}

/**
 * A filter from query parameters or CLI flags: `type` (drop|trace|verdict, comma-separated or
 * repeated) and `endpoint` (an endpoint's id or number). Throws naming the parameter and the value.
 */
export function parseMonitorFilter(types: readonly string[], endpoint: string | undefined | null): MonitorFilter {
  const filter: MonitorFilter = {};
  const wanted = types.flatMap((t) => t.split(",")).filter((t) => t !== "");
  for (const t of wanted) {
    if (!TYPES.includes(t as EventType)) throw new RangeError(`type must be one of ${TYPES.join(", ")}, got ${JSON.stringify(t)}`);
  }
  if (wanted.length > 0) filter.types = [...new Set(wanted)] as EventType[];
  if (endpoint !== undefined && endpoint !== null) {
    // The endpoint id's own characters (node-agent/daemon/endpoints.ts); a number is one too.
    if (!ENDPOINT_ID.test(endpoint)) throw new RangeError(`endpoint must be an endpoint id or number, got ${JSON.stringify(endpoint)}`);
    filter.endpoint = endpoint;
  }
  return filter;
}

/** The query string of a filter (for the client). */
export function filterQuery(f: MonitorFilter): string {
  const q = new URLSearchParams();
  for (const t of f.types ?? []) q.append("type", t);
  if (f.endpoint !== undefined) q.set("endpoint", f.endpoint);
  const s = q.toString();
  return s ? `?${s}` : "";
}

const PROTOS: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp" };

function end(e: FlowEnd, proto: number): string {
  const port = e.port && (proto === 6 || proto === 17) ? `:${e.port}` : "";
  return `${e.ip}${port} (id ${e.identity || "?"})`;
}

/** `bpfnet monitor`'s line: time, host, what happened, the flow. */
export function formatMonitorEvent(e: MonitorEvent): string {
  const proto = PROTOS[e.proto] ?? `proto ${e.proto}`;
  const flow = `${end(e.source, e.proto)} -> ${end(e.destination, e.proto)} ${proto}`;
  const ep = e.endpointId ? ` endpoint ${e.endpoint ?? e.endpointId}` : "";
  let what: string;
  if (e.type === "drop") what = `DROP ${e.reasonName} at ${e.hook} ${e.direction} ifindex ${e.ifindex}`;
  else if (e.type === "verdict") what = `POLICY ${e.direction} ${(e.verdict ?? "?").toUpperCase()} rule ${e.ruleId ?? 0}`;
  else what = `TRACE ${e.reasonName} from ${e.hook} ifindex ${e.ifindex} to ${e.toIfindex ? `ifindex ${e.toIfindex}` : "stack"}`;
  return `${e.time} ${e.host} ${what}${ep}: ${flow} ${e.length}B`;
}

/**
 * Time-orders events that arrive from several hosts: holds each for `holdMs` (the hosts' streams
 * arrive with different delays) and releases, oldest first, those older than now - holdMs.
 */
export class TimeOrderedMerge {
  private pending: MonitorEvent[] = [];

  constructor(private readonly holdMs: number) {}

  push(e: MonitorEvent): void {
    this.pending.push(e);
  }

  /** Events ready at `nowMs` (all of them when `flush`), in time order (ties: by host). */
  release(nowMs: number, flush = false): MonitorEvent[] {
    const cutoff = nowMs - this.holdMs;
    const ready: MonitorEvent[] = [];
    const keep: MonitorEvent[] = [];
    for (const e of this.pending) (flush || Date.parse(e.time) <= cutoff ? ready : keep).push(e);
    this.pending = keep;
    return ready.sort((a, b) => a.time.localeCompare(b.time) || a.host.localeCompare(b.host));
  }
}
