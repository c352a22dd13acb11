// The agent's node monitor: one reader of the datapath's ring buffer per agent, fanning the
// events out to the API's listeners (each with its filter). The datapath writes events only
// while someone listens (like Cilium's monitor, which opens its perf reader for its first
// listener): with none, the agent sets the datapath idle and nothing is written or read; the
// drop counters (bpfnet_metrics) count regardless. The ring is always drained, so events lost
// are the datapath's (ring full: bpfnet_events_lost), never a slow listener's; a listener that
// cannot keep up loses its own backlog instead (counted).
import { monotonicNowNs } from "../../bpf/abi";
import { EventReader, EventsLostMap } from "../../bpf/events";
import type { Logger } from "../daemon/log";
import { matchesFilter, MonitorEvent, MonitorFilter, toMonitorEvent, wallOffsetMs } from "./event";

export interface MonitorListener {
  filter: MonitorFilter;
  /** Returns false when the listener's sink is full: the event is counted dropped for it. */
  send(e: MonitorEvent): boolean;
}

/** Counts the metrics and the status report. */
export interface MonitorCounts {
  /** Events read from the ring, by type. */
  received: { drop: number; verdict: number; trace: number };
  /** Events the ring had no room for (the datapath's count). */
  lost: bigint;
  /** Records that did not decode. */
  malformed: number;
  /** Events not delivered to a listener whose connection was backed up. */
  listenerDropped: number;
  listeners: number;
}

export class MonitorHub {
  private reader: EventReader | undefined;
  private lostMap: EventsLostMap | undefined;
  private readonly listeners = new Set<MonitorListener>();
  private readonly received = { drop: 0, verdict: 0, trace: 0 };
  private listenerDropped = 0;

  constructor(
    private readonly pinRoot: string,
    private readonly host: string,
    private readonly log: Logger,
    /** Endpoint number → id, for the events' `endpoint`. */
    private readonly endpointIds: () => ReadonlyMap<number, string> = () => new Map(),
    /**
     * The set of traced endpoints changed, or the first listener came or the last one went (the
     * agent sets the endpoints' TRACE flag and the datapath's switches).
     */
    private readonly onSwitchChange: () => void = () => undefined,
  ) {}

  /** Listeners per traced endpoint (id or number as the filter gave it). */
  private readonly traceRefs = new Map<string, number>();

  /**
   * Endpoints some listener traces: a listener that names an endpoint and wants traces (its
   * types include trace, or are all) switches that endpoint's TRACE flag on while it listens.
   */
  tracedEndpoints(): ReadonlySet<string> {
    return new Set(this.traceRefs.keys());
  }

  /** Someone listens: the datapath should write events. */
  listening(): boolean {
    return this.listeners.size > 0;
  }

  start(): void {
    this.lostMap = EventsLostMap.open(this.pinRoot);
    this.reader = EventReader.open(
      this.pinRoot,
      (batch) => {
        const offset = wallOffsetMs(monotonicNowNs(), Date.now());
        let ids: ReadonlyMap<number, string> | undefined;
        const name = (n: number) => (ids ??= this.endpointIds()).get(n);
        for (const raw of batch) {
          this.received[raw.type]++;
          if (this.listeners.size === 0) continue;
          const e = toMonitorEvent(raw, this.host, offset, name);
          for (const l of this.listeners) {
            if (matchesFilter(l.filter, e) && !l.send(e)) this.listenerDropped++;
          }
        }
      },
      (err) => this.log.warn("monitor ring read failed", { error: err }),
    );
    this.log.info("node monitor reading the datapath's events");
  }

  /** Adds a listener; the returned function removes it. */
  subscribe(listener: MonitorListener): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.onSwitchChange();
    const { endpoint, types } = listener.filter;
    const traces = endpoint !== undefined && (!types?.length || types.includes("trace"));
    if (traces) this.trace(endpoint, +1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.listeners.delete(listener);
      if (traces) this.trace(endpoint, -1);
      if (this.listeners.size === 0) this.onSwitchChange();
    };
  }

  private trace(endpoint: string, delta: number): void {
    const n = (this.traceRefs.get(endpoint) ?? 0) + delta;
    if (n > 0) this.traceRefs.set(endpoint, n);
    else this.traceRefs.delete(endpoint);
    if (n === 0 || (n === 1 && delta > 0)) this.onSwitchChange();
  }

  counts(): MonitorCounts {
    return {
      received: { ...this.received },
      lost: this.lostMap?.total() ?? 0n,
      malformed: this.reader?.malformed ?? 0,
      listenerDropped: this.listenerDropped,
      listeners: this.listeners.size,
    };
  }

  stop(): void {
    this.listeners.clear();
    this.traceRefs.clear();
    this.reader?.close();
    this.lostMap?.close();
    this.reader = undefined;
    this.lostMap = undefined;
  }
}
