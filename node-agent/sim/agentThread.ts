// A simulated agent on a worker thread of its own (agentWorker.ts runs it), seen from the
// harness: mirror maps kept from the worker's batched map writes, its last reported stats, and
// requests (stats, settled, heap, stop) answered by the worker. Its latency is then the agent's
// own event loop, not the queue of the thousands of simulated hosts' writers on the harness's.
import * as fs from "fs";
import * as path from "path";
import { Worker } from "worker_threads";
import type { EtcdConnection } from "../../provider/etcd/etcdClient";
import { reconcileObservers } from "../daemon/reconcile";
import type { SimMapName, SimulatedAgentOptions, SimulatedAgentStats } from "./simulatedAgent";
import type { SimAgent } from "./simulation";

/** What a worker needs to build its agent: the options that can cross a thread (no client, logger or callback). */
export interface AgentWorkerData {
  connection: EtcdConnection;
  callTimeoutMs?: number;
  agent: Omit<SimulatedAgentOptions, "client" | "log" | "onWrite">;
}

/** One map write: map, key, removed, when it landed (the worker's Date.now(): the same clock), the value written. */
export type WorkerWrite = [SimMapName, string, boolean, number, (string | number)?];

/** One reconcile pass in the worker, as reconcileObservers see it: target, seconds, ok. */
export type WorkerPass = [string, number, boolean];

/** The worker's heap after a GC, before its agent existed and now (the agent's share is the difference). */
export interface WorkerHeap {
  baselineBytes: number;
  usedBytes: number;
}

export type WorkerRequest = { id: number; op: "stats" | "settled" | "heap" | "stop" };

export type WorkerMessage =
  | { kind: "writes"; writes: WorkerWrite[]; passes: WorkerPass[]; stats: SimulatedAgentStats; synced: boolean; startedAt: number }
  | { kind: "reply"; id: number; value?: unknown; error?: string }
  | { kind: "unhandled"; message: string };

export interface AgentThreadOptions extends AgentWorkerData {
  /** Called for each map write as the worker reports it, with the worker's timestamp. */
  onWrite?: (map: SimMapName, key: string, removed: boolean, at: number) => void;
  /** A rejection no caller awaited inside the worker (an etcd call on a starved machine): reported, not fatal. */
  onUnhandled?: (message: string) => void;
}

/** How long stop() waits for the worker's own orderly stop before terminating it. */
const STOP_GRACE_MS = 10_000;

const ZERO_STATS: SimulatedAgentStats = { events: 0, bytes: 0, listedKeys: 0, listedBytes: 0, lists: 0, compactions: 0, disconnects: 0, tunnel: 0, ipcache: 0, passes: 0, mapFull: 0 };

/**
 * Pure: how to start the worker from where this module runs. Compiled (.js, dist/ or the
 * package): agentWorker.js beside it. Source (.ts, ts-jest or ts-node): a bootstrap that
 * registers ts-node in the worker (a worker has no require hooks of its parent's) and loads the
 * source, so the worker never runs code older than the harness's.
 */
export function workerEntry(moduleFile: string, tsNode: () => string): { script: string; eval: boolean } {
  const dir = path.dirname(moduleFile);
  if (moduleFile.endsWith(".ts")) {
    const register = { transpileOnly: true, project: path.resolve(dir, "../../tsconfig.json") };
    return { script: `require(${JSON.stringify(tsNode())}).register(${JSON.stringify(register)}); require(${JSON.stringify(path.join(dir, "agentWorker.ts"))});`, eval: true };
  }
  return { script: path.join(dir, "agentWorker.js"), eval: false };
}

export class AgentThread implements SimAgent {
  readonly tunnel = new Map<string, string>();
  readonly peers = new Set<string>();
  readonly ipcache = new Map<string, number>();
  private lastStats: SimulatedAgentStats = ZERO_STATS;
  private isSynced = false;
  private workerStartedAt?: number;
  private failure?: Error;
  private stopping = false;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(private readonly o: AgentThreadOptions) {
    const entry = workerEntry(__filename, () => require.resolve("ts-node"));
    if (!entry.eval && !fs.existsSync(entry.script)) throw new Error(`the simulated agent's worker ${entry.script} is missing: build it (npx tsc -p tsconfig.build.json)`);
    const data: AgentWorkerData = { connection: o.connection, agent: o.agent, ...(o.callTimeoutMs !== undefined ? { callTimeoutMs: o.callTimeoutMs } : {}) };
    this.worker = new Worker(entry.script, { eval: entry.eval, workerData: data });
    this.worker.on("message", (m: WorkerMessage) => this.receive(m));
    this.worker.on("error", (e) => this.fail(e));
    this.exited = new Promise((resolve) =>
      this.worker.once("exit", (code) => {
        if (!this.stopping) this.fail(new Error(`agent ${o.agent.host}'s thread exited with code ${code}`));
        resolve();
      }),
    );
  }

  get host(): string {
    return this.o.agent.host;
  }

  get synced(): boolean {
    return this.isSynced;
  }

  /** When the worker started its agent (its Date.now(): the same clock), once it has reported; its list is timed from there, not from the thread's own start. */
  get startedAt(): number | undefined {
    return this.workerStartedAt;
  }

  /** The stats the worker last reported (with its last writes, or on refresh()). */
  get stats(): SimulatedAgentStats {
    return this.lastStats;
  }

  /** True until the worker's thread has ended. */
  get running(): boolean {
    return this.worker.threadId !== -1;
  }

  /** Set once the worker failed (an exception, or an exit nobody asked for). */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Asks the worker for its current stats. */
  async refresh(): Promise<SimulatedAgentStats> {
    return (this.lastStats = (await this.request("stats")) as SimulatedAgentStats);
  }

  /** Resolves once no reconcile pass is pending in the worker and its writes reached the mirrors. */
  async settled(): Promise<void> {
    await this.request("settled");
  }

  /** The worker's heap after a GC, before its agent existed and now. */
  async heap(): Promise<WorkerHeap> {
    return (await this.request("heap")) as WorkerHeap;
  }

  /** Stops the agent in its thread (watches, reconcilers, client), then ends the thread; always ends it. */
  async stop(): Promise<void> {
    if (this.stopping) return this.exited;
    const orderly = this.failure ? Promise.resolve() : this.request("stop").catch(() => undefined);
    this.stopping = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([orderly, new Promise((r) => (timer = setTimeout(r, STOP_GRACE_MS)))]);
    clearTimeout(timer);
    await this.worker.terminate();
    await this.exited;
  }

  private request(op: WorkerRequest["op"]): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.stopping) return Promise.reject(new Error(`agent ${this.host}'s thread is stopping`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op } satisfies WorkerRequest);
    });
  }

  private receive(m: WorkerMessage): void {
    if (m.kind === "writes") {
      for (const [map, key, removed, at, value] of m.writes) {
        if (map === "peers") removed ? this.peers.delete(key) : this.peers.add(key);
        else if (map === "tunnel") removed ? this.tunnel.delete(key) : this.tunnel.set(key, value as string);
        else removed ? this.ipcache.delete(key) : this.ipcache.set(key, value as number);
        this.o.onWrite?.(map, key, removed, at);
      }
      // The worker's passes reach this thread's observers as if the agent ran here (the bench times them).
      for (const [target, seconds, ok] of m.passes) for (const observe of reconcileObservers) observe(target, seconds, ok);
      this.lastStats = m.stats;
      this.isSynced = m.synced;
      this.workerStartedAt = m.startedAt;
    } else if (m.kind === "reply") {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error === undefined) p?.resolve(m.value);
      else p?.reject(new Error(`agent ${this.host}'s thread: ${m.error}`));
    } else this.o.onUnhandled?.(m.message);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
