// The user's lasting trace switches (`bpfnet monitor trace on|off --endpoint ID`, `bpfnet monitor
// trace sample N`): endpoints whose forwarded packets are traced, and a 1-in-N sampling rate,
// kept in a file in the agent's state directory so that a restarted agent traces the same.
// They take effect while someone listens (the datapath writes no event for nobody).
import * as fs from "fs";
import * as path from "path";
import { ENDPOINT_ID } from "../api/ids";
import { writeFileAtomic } from "../daemon/state";

const MAX_SAMPLE_EVERY = 0xffff;
const SCHEMA = 1;

export interface TraceState {
  /** Traced endpoints, by id, sorted. */
  endpoints: string[];
  /** 1-in-N sampling of forwarded packets (0: none); absent: the agent config's traceSampleEvery. */
  sampleEvery?: number;
}

/** Refuses anything but an endpoint id or number, naming the value. */
export function checkTraceEndpoint(id: unknown): string {
  if (typeof id !== "string" || !ENDPOINT_ID.test(id)) throw new RangeError(`endpoint must be an endpoint id or number, got ${JSON.stringify(id)}`);
  return id;
}

/** Refuses anything but an integer 0..65535, naming the value. */
export function checkSampleEvery(n: unknown): number {
  const v = typeof n === "string" && /^\d{1,5}$/.test(n) ? Number(n) : n;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > MAX_SAMPLE_EVERY) {
    throw new RangeError(`sample must be an integer from 0 (no sampling) to ${MAX_SAMPLE_EVERY}, got ${JSON.stringify(n)}`);
  }
  return v;
}

/** The file's text → its state; throws on anything that is not a state this code wrote. */
export function parseTraceState(text: string): TraceState {
  const r = JSON.parse(text) as { schema?: unknown; endpoints?: unknown; sampleEvery?: unknown };
  if (r?.schema !== SCHEMA) throw new Error(`schema must be ${SCHEMA}, got ${JSON.stringify(r?.schema)}`);
  if (!Array.isArray(r.endpoints)) throw new Error("endpoints must be a list");
  const state: TraceState = { endpoints: [...new Set(r.endpoints.map(checkTraceEndpoint))].sort() };
  if (r.sampleEvery !== undefined) state.sampleEvery = checkSampleEvery(r.sampleEvery);
  return state;
}

export function formatTraceState(s: TraceState): string {
  return JSON.stringify({ schema: SCHEMA, ...s }, null, 2) + "\n";
}

/** The switches, read at start and written (atomically) on every change. */
export class TraceSwitches {
  private state: TraceState = { endpoints: [] };

  private constructor(private readonly file: string) {}

  /** Reads the file; a missing file is no switch, an unreadable one is reported and ignored. */
  static load(file: string, warn: (message: string) => void): TraceSwitches {
    const t = new TraceSwitches(file);
    try {
      t.state = parseTraceState(fs.readFileSync(file, "utf8"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") warn(`${file} ignored: ${(e as Error).message}`);
    }
    return t;
  }

  get endpoints(): readonly string[] {
    return this.state.endpoints;
  }

  get sampleEvery(): number | undefined {
    return this.state.sampleEvery;
  }

  /** Switches an endpoint's trace on or off; returns whether anything changed. */
  setEndpoint(id: string, on: boolean): boolean {
    checkTraceEndpoint(id);
    const has = this.state.endpoints.includes(id);
    if (has === on) return false;
    const endpoints = on ? [...this.state.endpoints, id].sort() : this.state.endpoints.filter((e) => e !== id);
    this.write({ ...this.state, endpoints });
    return true;
  }

  /** Sets the sampling rate (undefined: back to the agent config's); returns whether it changed. */
  setSampleEvery(n: number | undefined): boolean {
    if (n !== undefined) checkSampleEvery(n);
    if (n === this.state.sampleEvery) return false;
    const { sampleEvery: _old, ...rest } = this.state;
    this.write(n === undefined ? rest : { ...rest, sampleEvery: n });
    return true;
  }

  private write(next: TraceState): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileAtomic(this.file, formatTraceState(next), 0o600);
    this.state = next;
  }
}
