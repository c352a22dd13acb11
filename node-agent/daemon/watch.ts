// List + watch of one etcd prefix, with the resume rules of docs/agent.md (and
// /work/shared/notes/etcd.md). etcd3's own watcher is not used: it resumes from the response
// header's revision and does not recover from compaction.
//
//  - The first sync is a linearizable range read at revision R; the watch starts at R + 1.
//  - After a disconnect the watch resumes at (mod_revision of the LAST EVENT seen) + 1, or
//    R + 1 when no event came since the list. Progress notifications never move the cursor.
//  - When etcd cancels the watch with compact_revision > 0 (history we need is gone), the
//    prefix is listed again at a new revision R', every key we knew that is not in the list is
//    reported deleted, changed or new keys are reported put, and the watch restarts at R' + 1.
//    It never simply restarts at the compact revision: the deletes in between would be lost.
import type { Etcd3, IWatchResponse } from "etcd3";
import { rangeEnd, toKv } from "../../provider/etcd/etcdOps";
import { Backoff, BackoffOptions, sleep } from "./backoff";
import { Logger } from "./log";

export interface WatchEvent {
  type: "put" | "delete";
  key: string;
  /** The new value (empty for deletes). */
  value: string;
  modRevision: number;
}

export interface WatchBatch {
  events: WatchEvent[];
  /** True when the batch is the difference computed by a (re)list rather than watch events. */
  relist: boolean;
  /** The revision the view is complete up to after this batch. */
  revision: number;
}

export interface WatchStats {
  /** Range reads done (the initial one included). */
  lists: number;
  /** Revisions each watch stream was created from, in order. */
  watchStarts: number[];
  /** Streams that ended without a cancel (disconnects, errors). */
  disconnects: number;
  /** Cancels with compact_revision > 0. */
  compactions: number;
  /** The last event's mod_revision when each disconnect happened. */
  lastEventRevisionAtDisconnect: number[];
  /** Events delivered from watch streams (relist differences not counted). */
  events: number;
}

export interface PrefixWatchOptions {
  client: Etcd3;
  prefix: string;
  onBatch: (batch: WatchBatch) => void;
  log: Logger;
  backoff?: BackoffOptions;
}

interface Known {
  value: string;
  modRevision: number;
}

type StreamEnd = { kind: "compacted"; compactRevision: number } | { kind: "disconnected"; error: string } | { kind: "canceled"; reason: string } | { kind: "stopped" };

/** Pure: the events that turn `known` into `listed` (a relist's difference). */
export function relistDifference(known: ReadonlyMap<string, Known>, listed: ReadonlyMap<string, Known>, revision: number): WatchEvent[] {
  const events: WatchEvent[] = [];
  for (const key of [...known.keys()].sort()) {
    if (!listed.has(key)) events.push({ type: "delete", key, value: "", modRevision: revision });
  }
  for (const [key, kv] of [...listed.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const old = known.get(key);
    if (!old || old.modRevision !== kv.modRevision || old.value !== kv.value) {
      events.push({ type: "put", key, value: kv.value, modRevision: kv.modRevision });
    }
  }
  return events;
}

export class PrefixWatch {
  readonly stats: WatchStats = { lists: 0, watchStarts: [], disconnects: 0, compactions: 0, lastEventRevisionAtDisconnect: [], events: 0 };
  private readonly known = new Map<string, Known>();
  /** mod_revision of the last event applied, or the revision of the last list. */
  private cursor = 0;
  private everSynced = false;
  private connected = false;
  /** When the stream was last lost (or the watch started), while not connected. */
  private downSince: Date | undefined = new Date();
  private readonly abort = new AbortController();
  private cancelStream: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private readonly backoff: Backoff;

  constructor(private readonly opts: PrefixWatchOptions) {
    this.backoff = new Backoff({ initialMs: 100, maxMs: 5000, ...opts.backoff });
  }

  get prefix(): string {
    return this.opts.prefix;
  }

  /** True once the first list completed: the view is then complete up to `revision`. */
  get synced(): boolean {
    return this.everSynced;
  }

  get revision(): number {
    return this.cursor;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** Since when the watch has had no stream (undefined while connected). */
  get disconnectedSince(): Date | undefined {
    return this.downSince;
  }

  private setConnected(up: boolean): void {
    if (up) this.downSince = undefined;
    else if (this.connected || !this.downSince) this.downSince = new Date();
    this.connected = up;
  }

  /** A copy of the current view (key → value). */
  snapshot(): Map<string, string> {
    return new Map([...this.known].map(([k, v]) => [k, v.value]));
  }

  start(): void {
    if (!this.running) this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.cancelStream?.();
    await this.running;
  }

  private async loop(): Promise<void> {
    let needList = true;
    const log = this.opts.log;
    while (!this.abort.signal.aborted) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        const end = await this.watchFrom(this.cursor + 1);
        this.setConnected(false);
        if (end.kind === "stopped") break;
        if (end.kind === "compacted") {
          this.stats.compactions++;
          log.warn("watch history compacted: listing again", { prefix: this.opts.prefix, from: this.cursor + 1, compactRevision: end.compactRevision });
          needList = true;
          continue; // list right away: nothing is wrong with etcd
        }
        if (end.kind === "disconnected") {
          this.stats.disconnects++;
          this.stats.lastEventRevisionAtDisconnect.push(this.cursor);
          log.warn("watch disconnected", { prefix: this.opts.prefix, resumeFrom: this.cursor + 1, error: end.error });
        } else {
          // Canceled for another reason (e.g. permissions changed): start over from a list.
          log.warn("watch canceled by etcd: listing again", { prefix: this.opts.prefix, reason: end.reason });
          needList = true;
        }
      } catch (e) {
        this.setConnected(false);
        log.warn("etcd list/watch failed", { prefix: this.opts.prefix, error: e as Error, attempt: this.backoff.failures + 1 });
      }
      await sleep(this.backoff.next(), this.abort.signal);
    }
  }

  private async relist(): Promise<void> {
    const { client, prefix } = this.opts;
    const resp = await client.kv.range({ key: Buffer.from(prefix), range_end: rangeEnd(prefix) }); // linearizable
    const revision = Number(resp.header.revision);
    const listed = new Map<string, Known>();
    for (const kv of resp.kvs.map(toKv)) listed.set(kv.key, { value: kv.value, modRevision: kv.modRevision });
    const events = relistDifference(this.known, listed, revision);
    this.known.clear();
    for (const [k, v] of listed) this.known.set(k, v);
    this.cursor = revision;
    this.stats.lists++;
    this.everSynced = true;
    this.opts.onBatch({ events, relist: true, revision });
  }

  /** One watch stream from `start`; resolves with why it ended. */
  private async watchFrom(start: number): Promise<StreamEnd> {
    const { client, prefix, log } = this.opts;
    if (this.abort.signal.aborted) return { kind: "stopped" };
    const stream = await client.watchClient.watch();
    if (this.abort.signal.aborted) {
      stream.cancel();
      return { kind: "stopped" };
    }
    this.stats.watchStarts.push(start);
    return new Promise<StreamEnd>((resolve) => {
      let done = false;
      const finish = (end: StreamEnd) => {
        if (done) return;
        done = true;
        this.cancelStream = undefined;
        try {
          stream.cancel();
        } catch {
          /* already closed */
        }
        resolve(end);
      };
      this.cancelStream = () => finish({ kind: "stopped" });
      stream.on("data", (res: IWatchResponse) => {
        if (done) return;
        if (res.canceled) {
          const compact = Number(res.compact_revision ?? 0);
          finish(compact > 0 ? { kind: "compacted", compactRevision: compact } : { kind: "canceled", reason: res.cancel_reason || "no reason given" });
          return;
        }
        if (res.created) {
          this.setConnected(true);
          this.backoff.reset();
          log.debug("watching", { prefix, from: start });
        }
        if (res.events?.length) this.apply(res);
      });
      stream.on("error", (err: Error) => finish({ kind: "disconnected", error: err.message }));
      stream.on("end", () => finish({ kind: "disconnected", error: "stream ended" }));
      stream.write({
        create_request: { key: Buffer.from(prefix), range_end: rangeEnd(prefix), start_revision: String(start), progress_notify: true },
      });
    });
  }

  private apply(res: IWatchResponse): void {
    // Events of one revision always come in one response, so "skip what we already have"
    // is a comparison against the cursor as it was before this response.
    const before = this.cursor;
    const events: WatchEvent[] = [];
    for (const ev of res.events) {
      const kv = toKv(ev.kv);
      if (kv.modRevision <= before) continue;
      if (ev.type === "Delete") {
        this.known.delete(kv.key);
        events.push({ type: "delete", key: kv.key, value: "", modRevision: kv.modRevision });
      } else {
        this.known.set(kv.key, { value: kv.value, modRevision: kv.modRevision });
        events.push({ type: "put", key: kv.key, value: kv.value, modRevision: kv.modRevision });
      }
      this.cursor = Math.max(this.cursor, kv.modRevision);
    }
    if (events.length === 0) return;
    this.stats.events += events.length;
    this.opts.onBatch({ events, relist: false, revision: this.cursor });
  }
}
