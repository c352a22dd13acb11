// A simulated agent: the node agent's real read side (prefix watches with their resume rules,
// NetworkView, computePeers/desiredTunnels, the ipcache rows from every host's endpoint records,
// and the Reconciler) with in-memory maps where the daemon has BPF maps. Thousands of hosts'
// control planes then fit on one machine (docs/scale.md). What it does not run: devices,
// programs, the endpoint API and policy computation (they are per-host work that does not grow
// with the number of hosts).
import type { Etcd3 } from "etcd3";
import { endpointsDir, ipamHostsDir, nodesDir } from "../../provider/etcd/keys";
import { Logger } from "../daemon/log";
import { Reconciler } from "../daemon/reconcile";
import { computePeers, desiredPeers, desiredTunnels, NetworkView, Peer } from "../daemon/view";
import { PrefixWatch, WatchBatch } from "../daemon/watch";
import { hostAddresses } from "../policy/ipcache";
import { diffKeys } from "../policy/plan";
import { ABI_CONSTANTS } from "../../bpf/abi";
import { MapSizes } from "../../provider/network/mapSizes";

/** The BPF maps' compiled sizes (bpf/lib/abi.h): a memory map refuses a new key past its size, as the kernel does. */
export const SIM_MAP_CAPACITY: Record<SimMapName, number> = {
  tunnel: ABI_CONSTANTS.BPFNET_TUNNEL_MAX,
  peers: ABI_CONSTANTS.BPFNET_PEERS_MAX,
  ipcache: ABI_CONSTANTS.BPFNET_IPCACHE_MAX,
};

/** The sizes an agent of this network creates its maps with (the spec's, provider/network/mapSizes.ts), else the compiled ones. */
export function simMapCapacity(sizes: MapSizes = {}): Record<SimMapName, number> {
  return { tunnel: sizes.tunnel ?? SIM_MAP_CAPACITY.tunnel, peers: sizes.peers ?? SIM_MAP_CAPACITY.peers, ipcache: sizes.ipcache ?? SIM_MAP_CAPACITY.ipcache };
}
import { PolicyInputs } from "../policy/view";

/** Which in-memory map changed, for the harness's convergence clocks. */
export type SimMapName = "tunnel" | "peers" | "ipcache";

export interface SimulatedAgentOptions {
  client: Etcd3;
  prefix: string;
  host: string;
  underlayIp: string;
  mode: "vxlan" | "l3";
  /** This host's pod CIDR (the daemon reads it from its allocation before it starts reconciling). */
  podCidr: string;
  /** Also watch every host's endpoint records and keep the ipcache (as the policy agent does). */
  ipcache: boolean;
  log: Logger;
  resyncMs?: number;
  /** The reconcilers' coalescing window (Reconciler's coalesceMs; 0: one pass per event). */
  coalesceMs?: number;
  /** Called after each map write, with the wall-clock time it landed. */
  onWrite?: (map: SimMapName, key: string, removed: boolean, at: number) => void;
  /** The maps' sizes from the network's spec (what NodeAgent passes the real agent); absent: the compiled sizes. */
  mapSizes?: MapSizes;
  /** "full": every ipcache pass diffs every row (the agent before incremental passes: a baseline for bench/scale.ts). */
  ipcachePasses?: "incremental" | "full";
}

export interface SimulatedAgentStats {
  /** Watch events received, and the bytes of their keys and values (watch bandwidth). */
  events: number;
  bytes: number;
  /** Keys and bytes that came in (re)lists. */
  listedKeys: number;
  listedBytes: number;
  /** Range reads done by the watches (1 per watch unless compaction or a cancel forced a relist). */
  lists: number;
  compactions: number;
  disconnects: number;
  tunnel: number;
  ipcache: number;
  passes: number;
  /** Writes refused because the map was full (its BPF max_entries). */
  mapFull: number;
}

export class SimulatedAgent {
  readonly tunnel = new Map<string, string>();
  readonly peers = new Set<string>();
  readonly ipcache = new Map<string, number>();
  private readonly view: NetworkView;
  private readonly inputs: PolicyInputs;
  private readonly watches: PrefixWatch[] = [];
  private readonly reconcilers: Reconciler<unknown>[] = [];
  private events = 0;
  private bytes = 0;
  private listedKeys = 0;
  private listedBytes = 0;
  private mapFull = 0;

  constructor(private readonly o: SimulatedAgentOptions) {
    this.view = new NetworkView(o.prefix);
    this.inputs = new PolicyInputs(o.prefix);
  }

  get host(): string {
    return this.o.host;
  }

  /** True once every watched prefix was listed (the daemon's rule before it prunes). */
  get synced(): boolean {
    return this.view.synced && (!this.o.ipcache || this.inputs.synced.endpoints);
  }

  start(): void {
    const { o } = this;
    const resyncMs = o.resyncMs ?? 30_000;
    // Computed once per view change, not once per reconciler.
    let cached: Peer[] | undefined;
    const peers = () => (cached ??= computePeers(o.host, o.podCidr, this.view.nodes, this.view.allocs).peers);
    const capacity = simMapCapacity(o.mapSizes);
    const full = (name: SimMapName, size: number, k: string, has: boolean) => {
      if (has || size < capacity[name]) return;
      this.mapFull++;
      throw new Error(`${name} map full (max_entries ${capacity[name]}): ${k} not added`);
    };
    const memory = <V>(name: SimMapName, map: Map<string, V>) => ({
      upsert: (k: string, v: V) => {
        full(name, map.size, k, map.has(k));
        map.set(k, v);
        o.onWrite?.(name, k, false, Date.now());
      },
      remove: (k: string) => {
        map.delete(k);
        o.onWrite?.(name, k, true, Date.now());
      },
    });
    const tunnel = new Reconciler<string>(
      { name: "tunnel-map", desired: () => (this.view.synced ? desiredTunnels(o.mode, peers()) : undefined), actual: () => this.tunnel, equal: (a, b) => a === b, ...memory("tunnel", this.tunnel) },
      o.log,
      resyncMs,
      {},
      o.coalesceMs ?? 0,
    );
    const peerSet = new Map<string, true>();
    const peerMap = new Reconciler<true>(
      {
        name: "peer-map",
        desired: () => (this.view.synced ? new Map([...desiredPeers(o.mode, peers())].map((ip) => [ip, true as const])) : undefined),
        actual: () => peerSet,
        equal: () => true,
        upsert: (ip) => (full("peers", peerSet.size, ip, peerSet.has(ip)), peerSet.set(ip, true), this.peers.add(ip), o.onWrite?.("peers", ip, false, Date.now())),
        remove: (ip) => (peerSet.delete(ip), this.peers.delete(ip), o.onWrite?.("peers", ip, true, Date.now())),
      },
      o.log,
      resyncMs,
      {},
      o.coalesceMs ?? 0,
    );
    // The ipcache as the policy agent keeps it: incremental passes over the rows a watch batch
    // touched (the records' claims kept by PolicyInputs, the hosts' when the peers changed).
    const rows = this.inputs.ipcache;
    let rowsFrom: Peer[] | undefined;
    const ipcacheRows = () => {
      if (!this.view.synced || !this.inputs.synced.endpoints) return undefined;
      const now = peers();
      if (now !== rowsFrom) rows.setHostAddresses(hostAddresses(o.underlayIp, o.podCidr), now.flatMap((p) => hostAddresses(p.underlayIp, p.podCidr)));
      rowsFrom = now;
      return rows;
    };
    const ipcache = new Reconciler<number>(
      {
        name: "ipcache",
        desired: () => {
          if (!ipcacheRows()) return undefined;
          rows.takeChanged(); // a full pass covers them
          return rows.rows();
        },
        ...(o.ipcachePasses !== "full" ? { changes: () => ipcacheRows() && diffKeys(rows.takeChanged(), this.ipcache, (k) => rows.row(k), (a, b) => a === b) } : {}),
        actual: () => this.ipcache,
        equal: (a, b) => a === b,
        ...memory("ipcache", this.ipcache),
      },
      o.log,
      resyncMs,
      {},
      o.coalesceMs ?? 0,
    );
    this.reconcilers.push(tunnel as Reconciler<unknown>, peerMap as Reconciler<unknown>);
    if (o.ipcache) this.reconcilers.push(ipcache as Reconciler<unknown>);
    const kick = () => {
      cached = undefined;
      this.reconcilers.forEach((r) => r.kick());
    };
    this.watch(ipamHostsDir(o.prefix), (b) => this.view.applyAllocs(b), kick);
    this.watch(nodesDir(o.prefix), (b) => this.view.applyNodes(b), kick);
    if (o.ipcache) this.watch(endpointsDir(o.prefix), (b) => this.inputs.applyEndpoints(b), () => ipcache.kick());
    for (const r of this.reconcilers) r.start();
  }

  async stop(): Promise<void> {
    for (const r of this.reconcilers) await r.stop();
    await Promise.all(this.watches.map((w) => w.stop()));
  }

  /** Resolves once no reconcile pass is pending. */
  async settled(): Promise<void> {
    await Promise.all(this.reconcilers.map((r) => r.settled()));
  }

  get stats(): SimulatedAgentStats {
    const sum = (f: (w: PrefixWatch) => number) => this.watches.reduce((a, w) => a + f(w), 0);
    return {
      events: this.events,
      bytes: this.bytes,
      listedKeys: this.listedKeys,
      listedBytes: this.listedBytes,
      lists: sum((w) => w.stats.lists),
      compactions: sum((w) => w.stats.compactions),
      disconnects: sum((w) => w.stats.disconnects),
      tunnel: this.tunnel.size,
      ipcache: this.ipcache.size,
      passes: this.reconcilers.reduce((a, r) => a + r.stats.passes, 0),
      mapFull: this.mapFull,
    };
  }

  private watch(prefix: string, apply: (b: WatchBatch) => void, after: () => void): void {
    const w = new PrefixWatch({
      client: this.o.client,
      prefix,
      log: this.o.log,
      onBatch: (b) => {
        const bytes = b.events.reduce((n, ev) => n + ev.key.length + ev.value.length, 0);
        if (b.relist) {
          this.listedKeys += b.events.length;
          this.listedBytes += bytes;
        } else {
          this.events += b.events.length;
          this.bytes += bytes;
        }
        apply(b);
        after();
      },
    });
    this.watches.push(w);
    w.start();
  }
}
