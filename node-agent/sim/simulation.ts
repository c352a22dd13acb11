// The scale simulation: many simulated hosts (their real etcd writes) and a set of simulated
// agents (the real watch → view → reconcile code into memory) against one etcd cluster, with
// the clocks that turn them into convergence figures: from a host's allocation (or an
// endpoint's record) to the moment every simulated agent's map holds it.
import type { Etcd3 } from "etcd3";
import { EtcdConnection } from "../../provider/etcd/etcdClient";
import { formatIpv4 } from "../../provider/ipam/cidr";
import type { MapSizes } from "../../provider/network/mapSizes";
import { sleep } from "../daemon/backoff";
import { connectAgentClient } from "../daemon/etcd";
import { Logger } from "../daemon/log";
import { AgentThread } from "./agentThread";
import { SimMapName, SimulatedAgent, SimulatedAgentStats } from "./simulatedAgent";
import { SimulatedHost } from "./simulatedHost";

export interface SimulationOptions {
  connection: EtcdConnection;
  /** The network's etcd prefix (its ContainerNetwork config must exist). */
  prefix: string;
  mode: "vxlan" | "l3";
  /** Simulated hosts share one etcd client per this many (a real host has its own). */
  hostsPerClient: number;
  endpointsPerHost: number;
  leaseTtlSeconds: number;
  /** Simulated agents also keep the ipcache from every host's endpoint records. */
  ipcache: boolean;
  log: Logger;
  /** The simulated agents' reconcile coalescing window (ms; 0: a pass per watch event). */
  coalesceMs?: number;
  /**
   * Per-call deadline of the harness's etcd clients (default: the agent's 5 s). One process runs
   * thousands of hosts' calls: on a starved machine its own event loop delays them.
   */
  callTimeoutMs?: number;
  /** The simulated agents' map sizes (from the network's spec: mapSizesFor); absent: the compiled sizes. */
  mapSizes?: MapSizes;
  /** Agents connect here instead of to the members, round-robin (e.g. one etcd gRPC proxy per rack). */
  agentEndpoints?: string[];
  /**
   * Each agent runs on a worker thread of its own (its own event loop and etcd client, as a host
   * has its own CPU), so its latency is not the harness's queue of hosts' writes. Default: in-process.
   */
  agentThreads?: boolean;
  /**
   * This many of the agents (the first ones) diff their whole ipcache on every pass, as agents did
   * before incremental passes: a baseline measured in the same run (bench/scale.ts).
   */
  baselineAgents?: number;
}

/** What the harness reads of a simulated agent, in this thread (SimulatedAgent) or on its own (AgentThread). */
export interface SimAgent {
  readonly host: string;
  readonly tunnel: ReadonlyMap<string, string>;
  readonly peers: ReadonlySet<string>;
  readonly ipcache: ReadonlyMap<string, number>;
  readonly synced: boolean;
  /** An AgentThread's are the last its worker reported: refresh() them before comparing. */
  readonly stats: SimulatedAgentStats;
  /** Set when the agent's thread failed. */
  readonly error?: Error;
  settled(): Promise<void>;
  stop(): Promise<void>;
}

export interface Convergence {
  /** One sample per (event, agent): ms from the write's answer to the agent's map holding it. */
  latenciesMs: number[];
  /** The agent (its host name) of each sample in latenciesMs. */
  agents: string[];
  /** Events that some agent had not applied by the deadline. */
  missing: number;
}

/** Pure: a simulated host's underlay address, unique per index (a 10.128.0.0/9 space). */
export function simulatedUnderlay(index: number): string {
  return formatIpv4(((10 << 24) >>> 0) + 0x800000 + 1 + index);
}

/** Pure: a simulated host's name. */
export function simulatedHostName(index: number): string {
  return `sim-${String(index).padStart(5, "0")}`;
}

export class Simulation {
  readonly hosts = new Map<string, SimulatedHost>();
  readonly agents: SimAgent[] = [];
  /** The agents (host names) started with full ipcache passes (`baselineAgents`). */
  readonly baselineHosts = new Set<string>();
  /** Rejections no caller awaited inside agents' threads (the harness counts its own with a process handler). */
  threadUnhandled = 0;
  private readonly clients: Etcd3[] = [];
  private readonly agentClients: Etcd3[] = [];
  private nextIndex = 0;
  /** What an agent wrote (seenKey) → when each agent wrote it (only while tracking: probes, not bulk ramps). */
  private readonly seen = new Map<string, { agent: string; at: number }[]>();
  private tracking = false;

  constructor(readonly o: SimulationOptions) {}

  /** A client for the next simulated host (hostsPerClient hosts per client). */
  private hostClient(): Etcd3 {
    const i = Math.floor(this.hosts.size / this.o.hostsPerClient);
    while (this.clients.length <= i) this.clients.push(connectAgentClient(this.o.connection, this.o.callTimeoutMs));
    return this.clients[i];
  }

  /** A new host, registered, allocated, with its endpoints published; returns it and when its allocation was answered. */
  async join(identityOf: (n: number) => number = (n) => 256 + (n % 16)): Promise<{ host: SimulatedHost; allocatedAt: number; endpointsAt: Map<string, number> }> {
    const index = this.nextIndex++;
    const host = new SimulatedHost({ client: this.hostClient(), prefix: this.o.prefix, host: simulatedHostName(index), underlayIp: simulatedUnderlay(index), leaseTtlSeconds: this.o.leaseTtlSeconds, log: this.o.log });
    this.hosts.set(host.host, host);
    // Registered first, then allocated: the allocation is the event that makes it a peer.
    // Each step is retried as the agent's loops retry it (a slow etcd answers after the deadline).
    await host.register();
    await retried(() => host.allocate());
    const allocatedAt = Date.now();
    const endpointsAt = new Map<string, number>();
    for (let n = 0; n < this.o.endpointsPerHost; n++) {
      const { ip } = await retried(() => host.addEndpoint(n, identityOf(n)));
      endpointsAt.set(`${ip}/32`, Date.now());
    }
    return { host, allocatedAt, endpointsAt };
  }

  /** `count` new hosts over `lanes` concurrent joiners. */
  async addHosts(count: number, lanes: number): Promise<void> {
    let left = count;
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        while (left > 0) {
          left--;
          await this.join();
        }
      }),
    );
  }

  async leave(name: string): Promise<void> {
    const h = this.hosts.get(name);
    if (!h) return;
    this.hosts.delete(name);
    await h.leave();
  }

  /**
   * Starts `count` simulated agents (each with its own client, as a host has; on threads of their
   * own with `agentThreads`) and waits until each has listed etcd. On a failure (a thread's error,
   * the deadline) it stops the agents it started and throws.
   */
  async startAgents(count: number, deadlineMs = 120_000, threads = this.o.agentThreads ?? false): Promise<SimAgent[]> {
    const started: SimAgent[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const via = this.o.agentEndpoints;
        const connection = via?.length ? { ...this.o.connection, endpoints: [via[this.agents.length % via.length]] } : this.o.connection;
        const options = {
          prefix: this.o.prefix,
          host: `agent-${this.agents.length}`,
          underlayIp: simulatedUnderlay(1_000_000 + this.agents.length),
          mode: this.o.mode,
          // Outside the pool's /24s of simulated hosts: an observer's own CIDR never hides a peer.
          podCidr: "192.168.0.0/24",
          ipcache: this.o.ipcache,
          coalesceMs: this.o.coalesceMs ?? 0,
          ...(this.o.mapSizes ? { mapSizes: this.o.mapSizes } : {}),
          ...(this.agents.length < (this.o.baselineAgents ?? 0) ? { ipcachePasses: "full" as const } : {}),
        };
        const host = options.host;
        if (options.ipcachePasses === "full") this.baselineHosts.add(host);
        const onWrite = (map: SimMapName, key: string, removed: boolean, at: number) => this.record(map, key, removed, at, host);
        let agent: SimAgent;
        if (threads) {
          const timeout = this.o.callTimeoutMs === undefined ? {} : { callTimeoutMs: this.o.callTimeoutMs };
          agent = new AgentThread({ connection, agent: options, onWrite, onUnhandled: () => this.threadUnhandled++, ...timeout });
        } else {
          const client = connectAgentClient(connection, this.o.callTimeoutMs);
          this.agentClients.push(client);
          const inProcess = new SimulatedAgent({ ...options, client, log: this.o.log, onWrite });
          inProcess.start();
          agent = inProcess;
        }
        this.agents.push(agent);
        started.push(agent);
      }
      await waitFor(() => started.every((a) => a.synced), deadlineMs, "simulated agents to list etcd", () => started.find((a) => a.error)?.error);
    } catch (e) {
      await Promise.all(started.map((a) => this.stopAgent(a)));
      throw e;
    }
    return started;
  }

  /** Asks every agent on a thread for its current stats (in-process agents' are always current). */
  async refreshStats(): Promise<void> {
    await Promise.all(this.agents.map((a) => (a instanceof AgentThread ? a.refresh() : undefined)));
  }

  async stopAgent(agent: SimAgent): Promise<void> {
    const i = this.agents.indexOf(agent);
    if (i >= 0) this.agents.splice(i, 1);
    await agent.stop();
  }

  /** Times every agent's map writes from now on (call before the writes being measured). */
  track(on: boolean): void {
    this.tracking = on;
    if (!on) this.seen.clear();
  }

  /**
   * Waits until every agent applied each expected key (a removal when `removed`), then
   * returns one latency per (key, agent) measured from `since(key)`; stops expecting them.
   */
  async converge(map: SimMapName, keys: string[], since: (key: string) => number, deadlineMs: number, removed = false): Promise<Convergence> {
    const holds = (a: SimAgent, key: string) => {
      const has = map === "tunnel" ? a.tunnel.has(key) : map === "peers" ? a.peers.has(key) : a.ipcache.has(key);
      return removed ? !has : has;
    };
    const deadline = Date.now() + deadlineMs;
    while (Date.now() < deadline && !keys.every((k) => this.agents.every((a) => holds(a, k)))) {
      const failed = this.agents.find((a) => a.error);
      if (failed) throw failed.error;
      await sleep(10);
    }
    const latenciesMs: number[] = [];
    const agents: string[] = [];
    let missing = 0;
    for (const key of keys) {
      const writes = this.seen.get(seenKey(map, key, removed)) ?? [];
      this.seen.delete(seenKey(map, key, removed));
      if (!this.agents.every((a) => holds(a, key))) missing++;
      // A watch event can reach an agent before the writer's own answer does: that is 0 ms.
      for (const w of writes) {
        latenciesMs.push(Math.max(0, w.at - since(key)));
        agents.push(w.agent);
      }
    }
    return { latenciesMs, agents, missing };
  }

  /** Stops every agent and host (hosts' leases are left to expire with the throwaway etcd). */
  async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.stop()));
    await Promise.all([...this.hosts.values()].map((h) => h.stop()));
    for (const c of [...this.clients, ...this.agentClients]) c.close();
  }

  private record(map: SimMapName, key: string, removed: boolean, at: number, agent: string): void {
    if (!this.tracking) return;
    const k = seenKey(map, key, removed);
    const writes = this.seen.get(k);
    if (writes) writes.push({ agent, at });
    else this.seen.set(k, [{ agent, at }]);
  }
}

/**
 * Pure: what the convergence clocks file a map write under. A key's additions and removals apart:
 * a host that joins and leaves while tracked must not time its join by its removal.
 */
export function seenKey(map: SimMapName, key: string, removed: boolean): string {
  return `${map}:${removed ? "-" : "+"}:${key}`;
}

/** Runs `fn` again after a failure (backoff 0.2–3.2 s), up to 6 tries: what the agent's reconcilers do for a write. */
async function retried<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= 5) throw e;
      await sleep(200 * 2 ** Math.min(attempt, 4));
    }
  }
}

/** Polls `cond` until it holds; throws naming `what` at the deadline, or what `failed` returns as soon as it returns it. */
export async function waitFor(cond: () => boolean, deadlineMs: number, what: string, failed: () => Error | undefined = () => undefined): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!cond()) {
    const e = failed();
    if (e) throw e;
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
