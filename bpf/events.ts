/**
 * The node monitor's datapath side: the bpfnet_events ring buffer, read on
 * Node's event loop (the addon polls the ring's epoll fd: no thread, no busy
 * loop) and decoded to DatapathEvent batches, and bpfnet_events_lost, the
 * per-CPU count of events the ring had no room for.
 */
import { join } from "path";
import { DatapathEvent, decodeEvent, LAYOUTS } from "./abi";
import { BpfMap } from "./maps";
import { native, NativeRingReader } from "./native";

export const EVENTS_MAP = "bpfnet_events";
export const EVENTS_LOST_MAP = "bpfnet_events_lost";

/** linux/bpf.h enum bpf_map_type values checked here. */
const RINGBUF_TYPE = 27;
const PERCPU_ARRAY_TYPE = 6;

/** Receives each batch of decoded events; malformed records are counted, not thrown. */
export type EventBatchHandler = (events: DatapathEvent[]) => void;

/** Reads bpfnet_events from a pin root until closed. */
export class EventReader {
  private readonly reader: NativeRingReader;
  private malformedCount = 0;

  private constructor(
    private readonly map: BpfMap,
    onBatch: EventBatchHandler,
    onError: (err: Error) => void,
  ) {
    try {
      if (map.info.type !== RINGBUF_TYPE) throw new TypeError(`${EVENTS_MAP}: map type ${map.info.type}, expected a ring buffer`);
      this.reader = new (native().RingReader)(map.fd, (error, records) => {
        // Never throw into the addon's uv callback: that would be an uncaught exception.
        try {
          if (error) return onError(error);
          onBatch(this.decode(records ?? []));
        } catch (err) {
          onError(err instanceof Error ? err : new Error(String(err)));
        }
      });
    } catch (err) {
      map.close();
      throw err;
    }
  }

  /** Starts reading the pinned ring of `pinRoot`. */
  static open(pinRoot: string, onBatch: EventBatchHandler, onError: (err: Error) => void = () => undefined): EventReader {
    return new EventReader(BpfMap.open(join(pinRoot, EVENTS_MAP)), onBatch, onError);
  }

  /** Records that did not decode (a datapath of another version). */
  get malformed(): number {
    return this.malformedCount;
  }

  /** Delivers whatever the ring holds now, synchronously. */
  drain(): void {
    this.reader.drain();
  }

  close(): void {
    this.reader.close();
    this.map.close(); // after the reader: its epoll set watches this fd
  }

  get closed(): boolean {
    return this.reader.closed;
  }

  private decode(records: Buffer[]): DatapathEvent[] {
    const out: DatapathEvent[] = [];
    for (const record of records) {
      try {
        out.push(decodeEvent(record.length > LAYOUTS.event.size ? record.subarray(0, LAYOUTS.event.size) : record));
      } catch {
        this.malformedCount++;
      }
    }
    return out;
  }
}

/** bpfnet_events_lost: events dropped because the ring was full, summed over CPUs. */
export class EventsLostMap {
  private constructor(private readonly map: BpfMap) {
    const info = map.info;
    if (info.type !== PERCPU_ARRAY_TYPE || info.keySize !== 4 || info.valueSize !== 8) {
      map.close();
      throw new TypeError(`${EVENTS_LOST_MAP}: map has type ${info.type}, key ${info.keySize} B, value ${info.valueSize} B; expected a per-CPU array of u64`);
    }
  }

  static open(pinRoot: string): EventsLostMap {
    return new EventsLostMap(BpfMap.open(join(pinRoot, EVENTS_LOST_MAP)));
  }

  /** Lost events since the map was created. */
  total(): bigint {
    const value = this.map.lookup(Buffer.alloc(4));
    if (!value) return 0n;
    let sum = 0n;
    for (let off = 0; off + 8 <= value.length; off += 8) sum += value.readBigUInt64LE(off);
    return sum;
  }

  close(): void {
    this.map.close();
  }
}
