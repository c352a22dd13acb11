// The agent's record of the etcd changes it applied, in order, for `GET /v1/debug/applied`.
// It is what proves the watch rules end to end: replayed against etcd's own history it must
// match event for event (nothing lost, nothing applied twice). Bounded, so a long-running
// agent keeps only the latest entries; `dropped` says how many fell off the front.
import type { WatchBatch } from "./watch";

export interface AppliedEvent {
  /** The watched prefix the event came through. */
  prefix: string;
  type: "put" | "delete";
  key: string;
  modRevision: number;
  /** True when the event is a relist's difference rather than a watch event. */
  relist: boolean;
}

export interface AppliedLogView {
  events: AppliedEvent[];
  /** Every (re)list: the view of `prefix` was complete at `revision` after it. */
  lists: { prefix: string; revision: number }[];
  /** Entries dropped from the front because the log is bounded. */
  dropped: number;
}

export class AppliedLog {
  private events: AppliedEvent[] = [];
  private readonly lists: { prefix: string; revision: number }[] = [];
  private dropped = 0;

  constructor(private readonly capacity = 20_000) {}

  record(prefix: string, batch: WatchBatch): void {
    if (batch.relist) this.lists.push({ prefix, revision: batch.revision });
    for (const e of batch.events) this.events.push({ prefix, type: e.type, key: e.key, modRevision: e.modRevision, relist: batch.relist });
    const over = this.events.length - this.capacity;
    if (over > 0) {
      this.events = this.events.slice(over);
      this.dropped += over;
    }
  }

  view(): AppliedLogView {
    return { events: [...this.events], lists: [...this.lists], dropped: this.dropped };
  }
}
