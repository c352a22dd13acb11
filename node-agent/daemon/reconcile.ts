// Desired state → actual state, one reconciler per target (tunnel map, endpoint map, endpoint
// records in etcd). A reconciler runs when kicked and on a resync timer; a failed pass is
// retried with backoff. It only prunes when `desired()` is known: a partial etcd view (not yet
// listed) yields undefined and leaves the target alone, so a restart never empties a map.
import { Backoff, BackoffOptions, sleep } from "./backoff";
import { Logger } from "./log";
import { diffRows, RowDiff } from "../policy/plan";

export interface ReconcileTarget<V> {
  name: string;
  /** Undefined while the desired state is unknown (nothing is touched then). */
  desired(): ReadonlyMap<string, V> | undefined;
  actual(): Promise<ReadonlyMap<string, V>> | ReadonlyMap<string, V>;
  equal(a: V, b: V): boolean;
  upsert(key: string, value: V): Promise<void> | void;
  remove(key: string): Promise<void> | void;
  /**
   * Incremental passes (optional): the writes for what changed since the last call, which
   * forgets it; undefined while the desired state is unknown. Full passes (desired() against
   * actual()) still run first, on the resync timer and after a failed pass: a target forgets
   * its changes when desired() is asked for.
   */
  changes?(): RowDiff<V> | undefined;
}

export interface ReconcilerStats {
  passes: number;
  upserts: number;
  removals: number;
  errors: number;
  lastError?: string;
  lastSuccessAt?: string;
}

/**
 * With a coalescing window, the wait after a pass is also at least this many times the pass's
 * own duration: a pass recomputes a whole map (O(hosts) or O(hosts x endpoints)), so under
 * sustained events a fixed window would let its cost grow with the network until it takes the
 * agent's CPU; this way a reconciler spends at most 1/(1 + 4) of the agent's time recomputing,
 * up to MAX_COALESCE_WAIT_MS, and the extra latency is 4 passes' time (docs/scale.md).
 */
export const WINDOW_PER_PASS = 4;

/**
 * The longest wait after a pass: a pass's wall time also counts a GC pause or a starved CPU,
 * and one slow pass must not hold the next change back for seconds (convergence goal: 1 s).
 */
export const MAX_COALESCE_WAIT_MS = 500;

/** Pure: the wait after a pass of `passMs` with a coalescing window of `coalesceMs` (0: none). */
export function coalesceWait(coalesceMs: number, passMs: number): number {
  return coalesceMs > 0 ? Math.max(coalesceMs, Math.min(WINDOW_PER_PASS * passMs, MAX_COALESCE_WAIT_MS)) : 0;
}

/** Called after every pass of every reconciler (the agent's metrics time them). */
export const reconcileObservers = new Set<(target: string, seconds: number, ok: boolean) => void>();

export class Reconciler<V> {
  readonly stats: ReconcilerStats = { passes: 0, upserts: 0, removals: 0, errors: 0 };
  private dirty = false;
  /** The next pass diffs the whole map (first pass, resync, after a failure). */
  private full = true;
  private busy = false;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(
    private readonly target: ReconcileTarget<V>,
    private readonly log: Logger,
    private readonly resyncMs: number,
    backoff: BackoffOptions = {},
    /**
     * After a pass, wait this long before the next (and at least WINDOW_PER_PASS times the
     * pass's duration): the watch events of that window are applied in one pass (a pass
     * recomputes the whole map, so one pass per event costs O(hosts) per event; see
     * docs/scale.md). 0: a pass as soon as kicked.
     */
    private readonly coalesceMs = 0,
  ) {
    this.backoff = new Backoff({ initialMs: 200, maxMs: 10_000, ...backoff });
  }

  get name(): string {
    return this.target.name;
  }

  start(): void {
    if (this.running) return;
    this.timer = setInterval(() => {
      this.full = true;
      this.kick();
    }, this.resyncMs);
    this.timer.unref();
    this.dirty = true;
    this.running = this.loop();
  }

  /** Asks for a pass soon (coalesced with any pending one). */
  kick(): void {
    this.dirty = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.timer) clearInterval(this.timer);
    this.wake?.();
    await this.running;
  }

  /** Resolves once no pass is pending (tests, and the API before answering). */
  settled(): Promise<void> {
    if (!this.dirty && !this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** One pass; throws when any change failed (after trying all of them). */
  async runOnce(): Promise<RowDiff<V> | undefined> {
    const diff = await this.diff();
    if (diff === undefined) return undefined;
    const failures: string[] = [];
    for (const [key, value] of diff.upserts) {
      try {
        await this.target.upsert(key, value);
        this.stats.upserts++;
      } catch (e) {
        failures.push(`upsert ${key}: ${(e as Error).message}`);
      }
    }
    for (const key of diff.deletes) {
      try {
        await this.target.remove(key);
        this.stats.removals++;
      } catch (e) {
        failures.push(`remove ${key}: ${(e as Error).message}`);
      }
    }
    if (diff.upserts.length || diff.deletes.length) {
      this.log.info("reconciled", { target: this.target.name, upserts: diff.upserts.map(([k]) => k), removals: diff.deletes, failed: failures.length });
    }
    if (failures.length) throw new Error(failures.join("; "));
    return diff;
  }

  private async diff(): Promise<RowDiff<V> | undefined> {
    const { target } = this;
    if (!this.full && target.changes) return target.changes();
    const desired = target.desired();
    if (desired === undefined) return undefined;
    this.full = false;
    return diffRows(await target.actual(), desired, (a, b) => target.equal(a, b));
  }

  private async loop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      if (!this.dirty) {
        for (const w of this.idleWaiters.splice(0)) w();
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      this.dirty = false;
      this.busy = true;
      const started = process.hrtime.bigint();
      const observe = (ok: boolean) => {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        for (const o of reconcileObservers) o(this.target.name, seconds, ok);
        return seconds;
      };
      try {
        this.stats.passes++;
        await this.runOnce();
        const seconds = observe(true);
        this.backoff.reset();
        this.stats.lastSuccessAt = new Date().toISOString();
        const wait = coalesceWait(this.coalesceMs, seconds * 1000);
        if (wait > 0) await sleep(wait, this.abort.signal);
      } catch (e) {
        observe(false);
        this.stats.errors++;
        this.stats.lastError = (e as Error).message;
        this.dirty = true;
        this.full = true;
        const delay = this.backoff.next();
        this.log.warn("reconcile failed, retrying", { target: this.target.name, error: e as Error, retryInMs: delay });
        await sleep(delay, this.abort.signal);
      } finally {
        this.busy = false;
      }
    }
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
