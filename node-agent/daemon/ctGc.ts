// Connection-tracking garbage collection. The datapath never takes an expired entry for a live
// one, so collecting only frees map space (the LRU map would evict under pressure anyway); it
// removes entries past their deadline and nothing else, and never empties the map, at start or
// ever: live flows keep the entries their replies pass on.
import { CtMap, monotonicNowNs } from "../../bpf";
import { Logger } from "./log";

export class CtGarbageCollector {
  readonly stats = { runs: 0, removed: 0, errors: 0 };
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ct: CtMap,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.runOnce(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass; returns how many entries went (0 on an error, which is logged). */
  runOnce(): number {
    this.stats.runs++;
    try {
      const removed = this.ct.gc(monotonicNowNs());
      this.stats.removed += removed;
      if (removed) this.log.debug("expired CT entries removed", { removed });
      return removed;
    } catch (e) {
      this.stats.errors++;
      this.log.warn("CT garbage collection failed", { error: e as Error });
      return 0;
    }
  }
}
