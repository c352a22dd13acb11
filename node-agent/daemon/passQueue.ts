// Passes of a reconciler that must never overlap: a kick while one runs queues at most one more,
// so a burst of changes coalesces into one pass after the running one. A failed pass is counted
// and logged, never thrown at the kicker; after stop() no pass starts.
import { Logger } from "./log";

export interface PassStats {
  passes: number;
  errors: number;
  lastError: string;
}

export class PassQueue {
  private queue: Promise<void> = Promise.resolve();
  private pending = false;
  private stopped = false;

  constructor(
    private readonly what: string,
    private readonly pass: () => Promise<void> | void,
    private readonly stats: PassStats,
    private readonly log: Logger,
    /** A kicked pass is skipped while this is false (e.g. the inputs were not listed yet). */
    private readonly ready: () => boolean = () => true,
  ) {}

  kick(): Promise<void> {
    if (this.pending) return this.queue;
    this.pending = true;
    this.queue = this.queue.then(async () => {
      this.pending = false;
      if (this.stopped || !this.ready()) return;
      try {
        await this.pass();
        this.stats.passes++;
      } catch (e) {
        this.stats.errors++;
        this.stats.lastError = (e as Error).message;
        this.log.warn(`${this.what} pass failed`, { error: e as Error });
      }
    });
    return this.queue;
  }

  /** No pass starts after this; resolves when the running one ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue;
  }
}
