// The node agent: one per host. Start order is chosen so that a restart changes nothing in the
// datapath and never leaves a hook empty:
//
//   0. start loading the programs against the pinned maps: the kernel verifies them on libuv's
//      threadpool while the steps below run (nothing is attached until step 4)
//   1. watch etcd (config, allocations, nodes); wait for the network and this host's pod CIDR,
//      unless a previous run cached them (then the datapath comes back even without etcd)
//   2. ensure devices, routes and sysctls (idempotent)
//   3. the programs loaded; set the config map
//   4. restore endpoints from endpoints.json: re-attach bpf_lxc (replace), fill the endpoint map
//   5. attach bpf_host and bpf_overlay (replace)
//   6. reconcilers (tunnel map from etcd, endpoint map from state, endpoint records to etcd),
//      the registration on its lease, and the API
import { randomUUID } from "crypto";
import * as path from "path";
import type { DeleteBuilder, Etcd3, PutBuilder } from "etcd3";
import { connectFromProxy, reasonName, transparentListener, Verdict, Endpoint, openLbMaps, LbMaps, EndpointFlags, loadDatapathObjectsAsync, defaultObjectDir } from "../../bpf";
import type { DatapathObjectSet, DatapathProgram } from "../../bpf";
import { withMonitorFlags } from "../../bpf/abi";
import { configKey, healthDir, ipamHostsDir, nodeKey, nodesDir, SCHEMA_VERSION } from "../../provider/etcd/keys";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { parseStoredConfig } from "../../provider/network/networkSpec";
import { AgentConfig } from "../config";
import { AGENT_VERSION } from "../version";
import { ApiServer } from "../api/server";
import { MonitorHub, MonitorListener } from "../monitor/hub";
import { TraceSwitches } from "../monitor/traceSwitch";
import type { MetricsServer } from "../metrics/server";
import { splitListenAddress } from "../../provider/common/validate";
import type { AgentStatus, DeviceStatus, EndpointView, MonitorStatus, ProgramStatus, TraceChange } from "../api/types";
import { AppliedLog } from "./appliedLog";
import { sleep } from "./backoff";
import { COMMON_PROGRAMS, Datapath, deviceProgram, modePrograms } from "./datapath";
import { ensureSocketLb } from "./socketLb";
import { desiredRoutes } from "./fastRoutes";
import { EnsuredDevices, ensureDevices, HOST_DEVICE, planDevices, underlayLink, VXLAN_DEVICE } from "./devices";
import { connectAgentClient } from "./etcd";
import { EndpointError, EndpointManager } from "./endpoints";
import { podNetwork, PodNetwork } from "./ipam";
import { getLink } from "./links";
import { Logger } from "./log";
import { StartClock } from "./startClock";
import { Reconciler } from "./reconcile";
import { Registration } from "./registration";
import { PolicyAgent } from "./policy";
import { hostAddresses } from "../policy/ipcache";
import { L7Proxy } from "./l7Proxy";
import { installProxyRoute, judgeConnection } from "./l7Delivery";
import { DatapathPolicySink } from "./policySink";
import { CtGarbageCollector } from "./ctGc";
import { NetworkCache, StateStore } from "./state";
import { computePeers, desiredPeers, desiredTunnels, NetworkView, newerAgent, NodeRecord, PeerComputation } from "./view";
import { PrefixWatch, WatchBatch } from "./watch";
import { ServiceAgent } from "../services/serviceAgent";
import { flowsInUse, ServiceMapSink } from "../services/sink";
import { AgentHealth } from "../health/agentHealth";
import { healthRecordJson } from "../health/view";
import { maxEntriesByMapName } from "../../provider/network/mapSizes";
import { deletionQueueDir, drainDeletionQueue } from "../cni/deletionQueue";

/** Peer-derived maps apply a burst of watch events (hosts joining) in one pass: docs/scale.md measured one pass per event as O(hosts) each. */
const PEER_MAPS_COALESCE_MS = 50;
/** How often expired connection-tracking entries are removed (the short lifetime is 60 s by default). */
const CT_GC_INTERVAL_MS = 30_000;

/** The network as etcd states it right now (config + this host's allocation), or why not. */
type EtcdNetwork = { net: NetworkCache } | { missing: string };

export class Agent {
  readonly incarnation = randomUUID();
  readonly startedAt = new Date();
  private readonly store: StateStore;
  /** Connected at start(), after the programs' loads are queued (loading etcd3 takes a while). */
  private client!: Etcd3;
  private readonly view: NetworkView;
  private readonly watches: PrefixWatch[] = [];
  private readonly applied = new AppliedLog();
  private configText: string | undefined;
  private configSynced = false;
  private net: NetworkCache | undefined;
  private pod: PodNetwork | undefined;
  private devices: EnsuredDevices | undefined;
  private datapath: Datapath | undefined;
  private endpoints: EndpointManager | undefined;
  private registration: Registration | undefined;
  private policy: PolicyAgent | undefined;
  private l7: { proxy: L7Proxy; port: number } | undefined;
  /** The L7 proxy while it starts (beside the devices and the programs' load); stop() closes what it gives. */
  private l7Starting: Promise<{ proxy: L7Proxy; port: number } | undefined> | undefined;
  private ctGc: CtGarbageCollector | undefined;
  private services: ServiceAgent | undefined;
  private lbMaps: LbMaps | undefined;
  private health: AgentHealth | undefined;
  private readonly reconcilers: Reconciler<unknown>[] = [];
  private tunnelReconciler: Reconciler<string> | undefined;
  private routeReconciler: Reconciler<number> | undefined;
  private peerReconciler: Reconciler<true> | undefined;
  private api: ApiServer | undefined;
  /** The node monitor: the datapath's events to API listeners (node-agent/monitor). */
  private monitor: MonitorHub | undefined;
  /** The user's lasting trace switches (`bpfnet monitor trace`), kept in the state directory. */
  private readonly traces: TraceSwitches;
  /** Prometheus metrics on cfg.metricsAddress (node-agent/metrics). */
  private metrics: MetricsServer | undefined;
  private isReady = false;
  private stopping = false;
  private readonly problems = new Set<string>();
  private peers: PeerComputation = { peers: [], problems: [] };
  private hostAddressCache: { peers: PeerComputation; gateway: string | undefined; addresses: { local: string[]; remote: string[] } } | undefined;
  private networkChanged: (() => void) | undefined;

  constructor(
    readonly cfg: AgentConfig,
    private readonly log: Logger,
  ) {
    // The addon path is read when it is first loaded, which is below.
    if (cfg.nativeAddon) process.env.BPFNET_NATIVE_ADDON = cfg.nativeAddon;
    this.store = new StateStore(cfg.stateDir);
    this.view = new NetworkView(cfg.networkPrefix);
    this.traces = TraceSwitches.load(path.join(cfg.stateDir, "monitor-traces.json"), (m) => log.warn(m));
  }

  get ready(): boolean {
    return this.isReady;
  }

  async start(): Promise<void> {
    const { cfg, log } = this;
    const clock = new StartClock();
    log.info("agent starting", { host: cfg.hostName, prefix: cfg.networkPrefix, version: AGENT_VERSION, incarnation: this.incarnation, pid: process.pid });

    // 0. The programs, verified on the threadpool from now on. Without a cached network the mode
    // is not known yet: every mode's objects now, the mode's device program once etcd says which.
    const cached = this.store.loadNetwork();
    const maxEntries = maxEntriesByMapName(cfg.mapSizes ?? {});
    const loading = Datapath.load(cfg.bpffsDir, cfg.bpfObjectDir, log.child("datapath"), maxEntries, cached ? modePrograms(cached.mode) : COMMON_PROGRAMS);
    // The mode's device program when the cache did not name the mode (queued once etcd does).
    let modeLoading: Promise<DatapathObjectSet<DatapathProgram>> | undefined;
    // Awaited at step 3; a stop before then must not leave a rejection unhandled or fds open.
    const dropLoads = () => {
      void loading.then((d) => d.close(), () => undefined);
      void modeLoading?.then((o) => o.close(), () => undefined);
    };
    loading.catch(() => undefined);
    // bpf_sock.o after the datapath's maps exist at their sizes (it adopts the pins' sizes; loaded
    // beside them it could create a map that Datapath.load just unpinned to resize).
    const socketLb = loading.then(() => ensureSocketLb(cfg.bpffsDir, cfg.bpfObjectDir, log.child("socket-lb")), () => false);
    clock.mark("loadsQueued");
    this.client = connectAgentClient(cfg.etcd);
    this.startWatches();
    clock.mark("etcdClient");

    // 1. The network: from etcd, or from the cache of a previous run.
    if (cached) {
      log.info("using the cached network until etcd confirms it", { ...cached });
      this.net = cached;
    } else {
      this.net = await this.waitForNetwork();
      this.store.saveNetwork(this.net);
    }
    if (this.stopping) return dropLoads();
    const net = this.net;
    this.pod = podNetwork(net.podCidr);
    modeLoading = cached ? undefined : loadDatapathObjectsAsync([deviceProgram(net.mode)], cfg.bpffsDir, cfg.bpfObjectDir ?? defaultObjectDir(), maxEntries);
    modeLoading?.catch(() => undefined);
    // The L7 proxy (vxlan mode: the datapath hands it connections at tc ingress only, and in l3
    // mode other hosts' packets reach pods at bpf_host's egress hook): its listener and policy
    // route (`ip`) are made beside the devices; no connection reaches it before the policy names
    // its port (below). Without it HTTP rules are enforced at L4, with a warning.
    if (net.mode === "vxlan") this.l7Starting = this.startL7Proxy();
    clock.mark("network");

    // 2. Devices.
    this.devices = await ensureDevices(planDevices(net, cfg.underlayIp), log.child("devices"));
    if (this.stopping) return dropLoads();
    const hostIfindex = this.devices.host.ifindex;
    const vxlanIfindex = this.devices.vxlan?.ifindex ?? 0;
    clock.mark("devices");

    // 3. Programs and the config map.
    const dp = await loading;
    if (modeLoading) dp.adopt(await modeLoading.catch((e: Error) => (dp.close(), Promise.reject(e))));
    if (this.stopping) return dp.close();
    const policySink = new DatapathPolicySink(dp.maps);
    this.datapath = dp;
    dp.setConfig({ mode: net.mode, vni: net.vni, vxlanIfindex, hostIfindex, gateway: this.pod.gateway });
    clock.mark("programs");
    await socketLb;
    clock.mark("socketLb");
    this.monitor = new MonitorHub(
      cfg.bpffsDir,
      cfg.hostName,
      log.child("monitor"),
      () => new Map((this.endpoints?.policyEndpoints() ?? []).map((e) => [e.number, e.id])),
      () => this.tracesChanged(dp),
    );
    this.tracesChanged(dp); // the config's switches, before the first packet of this run
    try {
      this.monitor.start();
    } catch (e) {
      // A datapath without the ring (an older object set): forwarding matters more than events.
      log.warn("node monitor not started", { error: e as Error });
      this.monitor = undefined;
    }
    // Expired CT entries only; the pinned map is never emptied (live flows keep their replies' pass).
    this.ctGc = new CtGarbageCollector(dp.maps.ct, CT_GC_INTERVAL_MS, log.child("ct-gc"));
    this.ctGc.start();
    clock.mark("monitor");

    // 4. Endpoints.
    const eps = new EndpointManager(this.store, this.pod, net.mtu, dp, cfg.hostName, cfg.networkPrefix, log.child("endpoints"), () => this.kickEndpoints());
    this.endpoints = eps;
    // CNI DELs that came while no agent answered (node-agent/cni/deletionQueue.ts): applied
    // before restore, so a deleted container's endpoint is not adopted again.
    const queueDir = deletionQueueDir(cfg.apiSocket);
    const drained = await drainDeletionQueue(queueDir, (id) => eps.del(id), log.child("cni-queue"));
    if (drained.deleted || drained.failed) log.info("cni deletion queue drained", drained);
    const restored = await eps.restore();
    log.info("endpoints restored", restored);
    if (this.stopping) return;
    const endpointMap = new Reconciler<Endpoint>(
      {
        name: "endpoint-map",
        // Policy flags as the policy sink applied them (restored from the pinned map at start).
        desired: () => {
          const traced = this.tracedNumbers();
          return eps.desiredMap((n) => policySink.flagsOf(n) | (traced.has(n) ? EndpointFlags.TRACE : 0));
        },
        actual: () => new Map(dp.maps.endpoints.entries()),
        equal: (a, b) => a.ifindex === b.ifindex && a.endpointId === b.endpointId && a.mac === b.mac && a.nodeMac === b.nodeMac && (a.flags ?? 0) === (b.flags ?? 0),
        upsert: (ip, ep) => dp.maps.endpoints.set(ip, ep),
        remove: (ip) => void dp.maps.endpoints.delete(ip),
      },
      log.child("reconcile"),
      cfg.resyncSeconds * 1000,
    );
    await endpointMap.runOnce(); // before bpf_host/bpf_overlay go in: they deliver by this map
    if (this.stopping) return;
    clock.mark("endpoints");

    // 5. The device programs (replace in place). bpf_overlay admits only the hosts in the peer
    // map: one created by this start (an upgrade) begins with the hosts the pinned tunnel map
    // already routes to, so they are not cut off until etcd is read.
    if (dp.maps.peers.entries().length === 0) for (const [, t] of dp.maps.tunnel.entries()) dp.maps.peers.set(t.remote);
    if (net.mode === "vxlan" && this.devices.vxlan) dp.attach("overlay", vxlanIfindex);
    dp.attach("host", hostIfindex);
    // l3: the underlay device's ingress delivers to local containers directly (bpf_netdev).
    const underlayIfindex = net.mode === "l3" ? (await underlayLink(cfg.underlayInterface)).ifindex : 0;
    if (underlayIfindex) dp.attach("netdev", underlayIfindex);
    log.info("programs attached", { hostIfindex, vxlanIfindex, underlayIfindex, endpoints: restored.restored });
    clock.mark("attach");

    // 6. Reconcilers, registration, API.
    this.tunnelReconciler = new Reconciler<string>(
      {
        name: "tunnel-map",
        // Unknown until both prefixes were listed: a partial view must not prune live routes.
        desired: () => (this.view.synced ? desiredTunnels(net.mode, this.currentPeers().peers) : undefined),
        actual: () => new Map(dp.maps.tunnel.entries().map(([cidr, t]) => [cidr, t.remote])),
        equal: (a, b) => a === b,
        upsert: (cidr, remote) => dp.maps.tunnel.set(cidr, { remote }),
        remove: (cidr) => void dp.maps.tunnel.delete(cidr),
      },
      log.child("reconcile"),
      cfg.resyncSeconds * 1000,
      {},
      PEER_MAPS_COALESCE_MS,
    );
    this.routeReconciler = new Reconciler<number>(
      {
        name: "route-map",
        desired: () => (this.view.synced ? desiredRoutes(net.mode, this.currentPeers().peers, underlayIfindex) : undefined),
        actual: () => new Map(dp.maps.routes.entries().map(([cidr, r]) => [cidr, r.ifindex])),
        equal: (a, b) => a === b,
        upsert: (cidr, ifindex) => dp.maps.routes.set(cidr, { ifindex }),
        remove: (cidr) => void dp.maps.routes.delete(cidr),
      },
      log.child("reconcile"),
      cfg.resyncSeconds * 1000,
      {},
      PEER_MAPS_COALESCE_MS,
    );
    this.peerReconciler = new Reconciler<true>(
      {
        name: "peer-map",
        desired: () => (this.view.synced ? new Map([...desiredPeers(net.mode, this.currentPeers().peers)].map((ip) => [ip, true as const])) : undefined),
        actual: () => new Map(dp.maps.peers.entries().map(([ip]) => [ip, true as const])),
        equal: () => true,
        upsert: (ip) => dp.maps.peers.set(ip),
        remove: (ip) => void dp.maps.peers.delete(ip),
      },
      log.child("reconcile"),
      cfg.resyncSeconds * 1000,
      {},
      PEER_MAPS_COALESCE_MS,
    );
    const records = new Reconciler<string>(
      {
        name: "endpoint-records",
        // A newer agent of this host owns its records: a stale one never prunes or rewrites them.
        desired: () => (this.registration?.superseded ? undefined : eps.desiredRecords((id) => this.policy?.identityOf(id))),
        actual: async () => new Map((await listPrefix(this.client, eps.recordsDir)).map((kv) => [kv.key, kv.value])),
        equal: (a, b) => a === b,
        // Fenced by the registration: only the agent whose node record etcd holds writes here.
        upsert: async (key, value) => this.asOwner(key, this.client.put(key).value(value)),
        remove: async (key) => this.asOwner(key, this.client.delete().key(key)),
      },
      log.child("reconcile"),
      cfg.resyncSeconds * 1000,
    );
    this.reconcilers.push(this.tunnelReconciler as Reconciler<unknown>, this.routeReconciler as Reconciler<unknown>, this.peerReconciler as Reconciler<unknown>, endpointMap as Reconciler<unknown>, records as Reconciler<unknown>);
    for (const r of this.reconcilers) r.start();

    this.registration = new Registration(
      this.client,
      nodeKey(cfg.networkPrefix, cfg.hostName),
      () => JSON.stringify(this.nodeRecord()),
      cfg.leaseTtlSeconds,
      log.child("registration"),
      (existing) => newerAgent(existing, this.incarnation, this.startedAt),
    );
    this.registration.start();
    clock.mark("reconcilers");

    this.l7 = await this.l7Starting;
    if (this.stopping) return;
    clock.mark("l7");

    // Policy: identities for this host's endpoints (restored first), policies computed for
    // them (docs/policy.md). Identities reach etcd in the endpoint records.
    this.policy = new PolicyAgent({
      client: this.client,
      prefix: cfg.networkPrefix,
      host: cfg.hostName,
      leaseId: () => this.registration?.currentLeaseId,
      localEndpoints: () => eps.policyEndpoints(),
      hostAddresses: () => this.hostAddresses(),
      stateFile: path.join(cfg.stateDir, "identities.json"),
      log: log.child("policy"),
      sink: policySink,
      onIdentities: () => records.kick(),
      ...(this.l7 ? { proxyPort: this.l7.port } : {}),
    });
    this.policy.start();

    // Services: this host's LB maps from the services and every host's endpoints (docs/services.md).
    this.services = this.startServices(dp);
    clock.mark("policyServices");

    this.api = new ApiServer(cfg.apiSocket, {
      status: () => this.status(),
      listEndpoints: () => eps.list().map((v) => this.withPolicy(v)),
      getEndpoint: (id) => {
        const v = eps.get(id);
        return v && this.withPolicy(v);
      },
      addEndpoint: (body) => eps.add(body),
      deleteEndpoint: (id) => eps.del(id),
      applied: () => this.applied.view(),
      ready: () => this.isReady,
      health: () => this.health?.status(),
      services: () => this.services?.list(),
      ...(this.monitor ? { monitor: (l: MonitorListener) => this.monitor!.subscribe(l) } : {}),
      setTrace: (change) => this.setTrace(dp, change),
    }, log.child("api"));
    await this.api.listen();
    if (this.stopping) return void (await this.api.close());
    // Once more: a DEL queued between the first drain and the API answering.
    await drainDeletionQueue(queueDir, (id) => eps.del(id), log.child("cni-queue"));
    await this.startMetrics(dp);
    clock.mark("api");
    this.isReady = true;
    this.checkNetwork();
    if (cfg.health) this.startHealth(eps);
    log.info("agent ready", { mode: net.mode, podCidr: net.podCidr, gateway: this.pod.gateway, socket: cfg.apiSocket, startMs: clock.total, steps: clock.steps });
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.isReady = false;
    this.networkChanged?.();
    this.log.info("agent stopping; the datapath keeps forwarding");
    await this.api?.close();
    await this.metrics?.close();
    this.monitor?.stop();
    await this.health?.stop();
    for (const r of this.reconcilers) await r.stop();
    this.ctGc?.stop();
    await this.policy?.stop();
    await this.services?.stop();
    this.lbMaps?.close();
    await (await this.l7Starting)?.proxy.close();
    await Promise.all(this.watches.map((w) => w.stop()));
    await this.registration?.stop();
    this.client?.close(); // unset when start() stopped before connecting
    this.datapath?.close();
  }

  /** The proxy on a transparent listener (127.0.0.1, a port the kernel picks) and its policy route; undefined when either fails. */
  private async startL7Proxy(): Promise<{ proxy: L7Proxy; port: number } | undefined> {
    // Connections come only once the datapath and the policy exist (it names the proxy's port).
    const started = () => {
      if (!this.endpoints || !this.datapath) throw new Error("the L7 proxy got a connection before the datapath was ready");
      return { eps: this.endpoints, dp: this.datapath };
    };
    const proxy = new L7Proxy({
      judge: (conn, method, p) => {
        const { eps, dp } = started();
        return judgeConnection(conn, method, p, { local: eps.policyEndpoints(), policyOf: (n) => this.policy?.endpointPolicy(n), identityOf: (a) => dp.maps.ipcache.resolve(a) });
      },
      connectUpstream: (d) => connectFromProxy(d.ip, d.port),
      log: this.log.child("l7"),
    });
    try {
      const port = await proxy.listen({ fd: transparentListener("127.0.0.1") });
      await installProxyRoute();
      this.log.info("l7 proxy listening", { port });
      return { proxy, port };
    } catch (e) {
      this.log.warn("no L7 proxy: HTTP rules are enforced at L4 only", { error: e as Error });
      await proxy.close().catch(() => undefined);
      return undefined;
    }
  }

  /** The service reconciler over the pinned LB maps; without them (older objects) it computes and reports only. */
  private startServices(dp: Datapath): ServiceAgent {
    let sink: ServiceMapSink | undefined;
    try {
      this.lbMaps = openLbMaps(dp.pinRoot);
      sink = new ServiceMapSink(this.lbMaps);
    } catch (e) {
      this.log.warn("no service maps: services are computed, not programmed", { error: e as Error });
    }
    const lb = this.lbMaps;
    const services = new ServiceAgent({
      client: this.client,
      prefix: this.cfg.networkPrefix,
      log: this.log.child("services"),
      ...(sink && lb ? { sink, inUse: () => flowsInUse(dp.maps.ct, lb) } : {}),
      // HEALTH's view: a peer this host probed and found unreachable takes no new flows.
      hostDown: (host) => this.health?.view().find((p) => p.peer === host)?.reachable === false,
    });
    services.start();
    return services;
  }

  /** The metrics (read at each scrape) and their server; a bind failure is reported, not fatal. */
  private async startMetrics(dp: Datapath): Promise<void> {
    // Nothing reads the registry without a server: prom-client (a sixth of the agent's module
    // loading, docs/agent.md "Start time") is loaded only when metrics are served.
    if (!this.cfg.metricsAddress) return;
    const { defineAgentMetrics } = await import("../metrics/agentMetrics");
    const { MetricsServer } = await import("../metrics/server");
    defineAgentMetrics({
      datapathCounters: () => dp.maps.metrics.entries(),
      verdictCounters: () => dp.maps.verdicts.entries(),
      identities: () => dp.maps.ipcache.entries().map(([, identity]) => identity),
      policyRows: () => dp.maps.policy.entries().length,
      endpoints: () => this.endpoints?.list().length,
      watches: () => this.watches.map((w) => ({ prefix: w.prefix, connected: w.isConnected, disconnects: w.stats.disconnects, lists: w.stats.lists, ...(w.disconnectedSince ? { disconnectedSince: w.disconnectedSince } : {}) })),
      monitor: () => this.monitor?.counts(),
    });
    const { host, port } = splitListenAddress(this.cfg.metricsAddress);
    const server = new MetricsServer(host, port, this.log.child("metrics"));
    try {
      await server.listen();
      this.metrics = server;
    } catch (e) {
      this.problems.add(`metrics not served on ${this.cfg.metricsAddress}: ${(e as Error).message}`);
      this.log.warn("metrics server failed to start", { address: this.cfg.metricsAddress, error: e as Error });
    }
  }

  /** The health endpoint and the prober (node-agent/health); results go to etcd on the agent's lease. */
  private startHealth(eps: EndpointManager): void {
    const dir = healthDir(this.cfg.networkPrefix, this.cfg.hostName);
    this.health = new AgentHealth({
      endpoints: eps,
      intervalSeconds: this.cfg.healthIntervalSeconds,
      targets: () =>
        this.view.synced ? this.currentPeers().peers.map((p) => ({ peer: p.host, underlayIp: p.underlayIp, healthIp: this.view.nodes.get(p.host)?.healthIp })) : [],
      publish: async (peer, h) => {
        const lease = this.registration?.currentLeaseId;
        if (!h) return this.asOwner(dir + peer, this.client.delete().key(dir + peer));
        if (!lease) throw new Error("not registered yet");
        return this.asOwner(dir + peer, this.client.put(dir + peer).value(healthRecordJson(this.cfg.hostName, h)).lease(lease));
      },
      onEndpoint: () => this.registration?.kick(),
      log: this.log.child("health"),
    });
    this.health.start();
    if (this.cfg.metricsAddress)
      import("../health/metrics")
        .then((m) => m.defineHealthMetrics(() => this.health?.view() ?? []))
        .catch((e: Error) => this.log.warn("health metrics not defined", { error: e }));
  }

  /** Runs a write on the host's behalf only while this agent's registration is in etcd. */
  private async asOwner(key: string, op: PutBuilder | DeleteBuilder): Promise<void> {
    if (!this.registration) throw new Error(`not writing ${key}: not registered yet`);
    const r = await this.registration.ifOwner().then(op).commit();
    if (!r.succeeded) throw new Error(`not writing ${key}: etcd does not hold this agent's registration (${this.registration.superseded ?? "lost, being written again"})`);
  }

  private nodeRecord(): NodeRecord {
    return {
      schema: SCHEMA_VERSION,
      host: this.cfg.hostName,
      underlayIp: this.cfg.underlayIp,
      podCidr: this.net?.podCidr ?? "",
      agentVersion: AGENT_VERSION,
      incarnation: this.incarnation,
      startedAt: this.startedAt.toISOString(),
      ...(this.health?.ip ? { healthIp: this.health.ip } : {}),
    };
  }

  private startWatches(): void {
    const { cfg } = this;
    const prefix = cfg.networkPrefix;
    const cfgKey = configKey(prefix);
    const watch = (p: string, onBatch: (b: WatchBatch) => void) => {
      const record = (b: WatchBatch) => {
        this.applied.record(p, b);
        onBatch(b);
      };
      const w = new PrefixWatch({ client: this.client, prefix: p, onBatch: record, log: this.log.child("watch") });
      this.watches.push(w);
      w.start();
    };
    // A prefix watch of "<prefix>/config" also sees "<prefix>/config…" siblings: keep the one key.
    watch(cfgKey, (b) => {
      for (const ev of b.events) if (ev.key === cfgKey) this.configText = ev.type === "put" ? ev.value : undefined;
      if (b.relist) this.configSynced = true;
      this.onNetworkInput();
    });
    watch(ipamHostsDir(prefix), (b) => {
      this.view.applyAllocs(b);
      this.onNetworkInput();
      this.onViewChange();
    });
    watch(nodesDir(prefix), (b) => {
      this.view.applyNodes(b);
      this.onViewChange();
    });
  }

  /** What etcd says the network is, from the watched config and allocations. */
  private etcdNetwork(): EtcdNetwork {
    const { cfg } = this;
    if (!this.configSynced || !this.view.allocsSynced) return { missing: "etcd not listed yet" };
    if (this.configText === undefined) return { missing: `${configKey(cfg.networkPrefix)} (the network, written by ContainerNetwork)` };
    let config;
    try {
      config = parseStoredConfig(configKey(cfg.networkPrefix), this.configText);
    } catch (e) {
      return { missing: `a readable network config: ${(e as Error).message}` };
    }
    const alloc = this.view.allocs.get(cfg.hostName);
    if (!alloc) return { missing: `${ipamHostsDir(cfg.networkPrefix)}${cfg.hostName} (this host's pod CIDR, written by HostAllocation)` };
    return {
      net: {
        schema: SCHEMA_VERSION,
        mode: config.mode,
        clusterCidr: config.clusterCidr,
        vni: config.vni,
        vxlanPort: config.vxlanPort,
        mtu: config.mtu,
        podCidr: alloc.cidr,
      },
    };
  }

  private async waitForNetwork(): Promise<NetworkCache> {
    let lastSaid = 0;
    let lastMissing = "";
    for (;;) {
      const r = this.etcdNetwork();
      if ("net" in r) return r.net;
      if (this.stopping) throw new Error("stopped while waiting for the network");
      if (r.missing !== lastMissing || Date.now() - lastSaid > 10_000) {
        this.log.info("waiting for etcd", { need: r.missing });
        lastSaid = Date.now();
        lastMissing = r.missing;
      }
      await new Promise<void>((resolve) => {
        this.networkChanged = resolve;
        setTimeout(resolve, 2000).unref();
      });
      this.networkChanged = undefined;
    }
  }

  private onNetworkInput(): void {
    this.networkChanged?.();
    if (this.isReady) this.checkNetwork();
  }

  /**
   * Compares what runs with what etcd says. Differences in mode, CIDRs, VNI, port or MTU need
   * the devices rebuilt: the agent reports them (status, log) and caches etcd's version, so
   * the next start applies it; it never tears down a working datapath on its own.
   */
  private checkNetwork(): void {
    const r = this.etcdNetwork();
    if (!("net" in r) || !this.net) return;
    const current = this.net;
    const wanted = r.net;
    const fields = (["mode", "clusterCidr", "podCidr", "vni", "vxlanPort", "mtu"] as const).filter((f) => current[f] !== wanted[f]);
    for (const p of [...this.problems]) if (p.startsWith("network changed")) this.problems.delete(p);
    if (fields.length) {
      const what = fields.map((f) => `${f} ${current[f]} → ${wanted[f]}`).join(", ");
      this.problems.add(`network changed in etcd (${what}): restart the agent to apply it`);
      this.log.error("the network in etcd differs from the running one; restart the agent to apply it", { changes: what });
    }
    if (JSON.stringify(this.store.loadNetwork()) !== JSON.stringify(wanted)) this.store.saveNetwork(wanted);
  }

  private currentPeers(): PeerComputation {
    this.peers = computePeers(this.cfg.hostName, this.net?.podCidr, this.view.nodes, this.view.allocs);
    return this.peers;
  }

  private onViewChange(): void {
    this.tunnelReconciler?.kick();
    this.routeReconciler?.kick();
    this.peerReconciler?.kick();
    // Our own key gone or overwritten while we run (deleted by hand, or lease trouble): write it again.
    if (this.registration?.registered && this.view.nodesSynced) {
      const own = this.view.nodes.get(this.cfg.hostName);
      if (!this.view.nodes.has(this.cfg.hostName) || own?.incarnation !== this.incarnation) {
        this.log.warn("our node key was deleted or overwritten; writing it again", { other: own?.incarnation });
        this.registration.kick();
      }
    }
  }

  /** Numbers of the endpoints traced: by a monitor listener (node-agent/monitor/hub.ts) or the user's switch. */
  private tracedNumbers(): Set<number> {
    const want = new Set([...(this.monitor?.tracedEndpoints() ?? []), ...this.traces.endpoints]);
    if (!want.size) return new Set();
    return new Set((this.endpoints?.policyEndpoints() ?? []).filter((e) => want.has(e.id) || want.has(String(e.number))).map((e) => e.number));
  }

  /**
   * The monitor's bits of the datapath config: events only while the agent config allows them
   * (monitorEvents) and someone listens; the sampling rate (the user's switch, else the config's
   * traceSampleEvery); TRACE_ENDPOINTS while an endpoint is traced; then the endpoints' flags.
   */
  private tracesChanged(dp: Datapath): void {
    const cur = dp.maps.config.get();
    const flags = withMonitorFlags(cur.flags ?? 0, {
      eventsOff: !this.cfg.monitorEvents || !this.monitor?.listening(),
      traceSampleEvery: this.traces.sampleEvery ?? this.cfg.traceSampleEvery,
      traceEndpoints: (this.monitor?.tracedEndpoints().size ?? 0) + this.traces.endpoints.length > 0,
    });
    if (flags !== cur.flags) dp.maps.config.set({ ...cur, flags });
    this.kickEndpoints();
  }

  /** `bpfnet monitor trace`: an endpoint's lasting trace, or the sampling rate (null: the config's). */
  private setTrace(dp: Datapath, change: TraceChange): MonitorStatus {
    if ("endpoint" in change) {
      const ep = this.endpoints?.get(change.endpoint) ?? this.endpoints?.policyEndpoints().find((e) => String(e.number) === change.endpoint);
      if (change.on && !ep) throw new EndpointError(404, "no-endpoint", `no endpoint ${change.endpoint}`);
      this.traces.setEndpoint(ep?.id ?? change.endpoint, change.on);
    } else {
      this.traces.setSampleEvery(change.sampleEvery ?? undefined);
    }
    this.tracesChanged(dp);
    return this.monitorStatus()!;
  }

  private monitorStatus(): MonitorStatus | undefined {
    const m = this.monitor;
    if (!m) return undefined;
    const c = m.counts();
    return {
      state: !this.cfg.monitorEvents ? "off" : m.listening() ? "listening" : "idle",
      listeners: c.listeners,
      received: c.received,
      lost: c.lost.toString(),
      listenerDropped: c.listenerDropped,
      traceSampleEvery: this.traces.sampleEvery ?? this.cfg.traceSampleEvery,
      tracedEndpoints: [...this.traces.endpoints],
      listenerTraced: [...m.tracedEndpoints()].sort(),
    };
  }

  private kickEndpoints(): void {
    for (const r of this.reconcilers) if (r.name !== "tunnel-map") r.kick();
    void this.policy?.kick();
  }

  /** An endpoint's view with its identity and enforcement (`bpfnet endpoint list`). */
  private withPolicy(v: EndpointView): EndpointView {
    return this.policy ? { ...v, ...this.policy.endpointView(v.id) } : v;
  }

  /**
   * For the ipcache: this host's underlay and gateway (host), the other hosts' (remote-node). The
   * same arrays until the peers are computed again, so a policy pass after an endpoint event does
   * not compare every host's addresses (IpcacheRows skips arrays it was given last time).
   */
  private hostAddresses(): { local: string[]; remote: string[] } {
    const cached = this.hostAddressCache;
    if (cached?.peers === this.peers && cached.gateway === this.pod?.gateway) return cached.addresses;
    const addresses = {
      local: [this.cfg.underlayIp, ...(this.pod ? [this.pod.gateway] : [])],
      remote: this.peers.peers.flatMap((p) => hostAddresses(p.underlayIp, p.podCidr)),
    };
    this.hostAddressCache = { peers: this.peers, gateway: this.pod?.gateway, addresses };
    return addresses;
  }

  async status(): Promise<AgentStatus> {
    const { cfg } = this;
    const net = this.net!;
    const pod = this.pod!;
    const dp = this.datapath;
    const devices: DeviceStatus[] = [];
    const programs: ProgramStatus[] = [];
    const deviceNames = net.mode === "vxlan" ? [VXLAN_DEVICE, HOST_DEVICE] : [HOST_DEVICE];
    for (const name of deviceNames) {
      const l = await getLink(name);
      devices.push(l ? { name, ifindex: l.ifindex, up: l.up, mtu: l.mtu, ...(l.kind ? { kind: l.kind } : {}) } : { name, up: false });
      if (l && dp) programs.push(dp.hookStatus(name, l.ifindex, name === VXLAN_DEVICE ? "overlay" : "host"));
    }
    const underlay = net.mode === "l3" ? await getLink(cfg.underlayInterface) : undefined;
    if (underlay && dp) programs.push(dp.hookStatus(cfg.underlayInterface, underlay.ifindex, "netdev"));
    const eps = this.endpoints?.list() ?? [];
    if (dp) for (const ep of eps) if (ep.hostIfindex !== undefined && ep.status !== "lost") programs.push(dp.hookStatus(ep.hostIfname, ep.hostIfindex, "lxc"));
    const metrics = dp?.maps.metrics.entries() ?? [];
    const sum = (reason: number) => metrics.filter((m) => m.reason === reason).reduce((a, m) => ({ packets: a.packets + m.packets, bytes: a.bytes + m.bytes }), { packets: 0n, bytes: 0n });
    const fwd = sum(Verdict.FORWARDED);
    const passed = sum(Verdict.PASSED);
    const dropped: Record<string, string> = {};
    for (const m of metrics.filter((x) => x.reason < 0)) {
      const name = reasonName(m.reason);
      dropped[name] = (BigInt(dropped[name] ?? "0") + m.packets).toString();
    }
    const tunnels = dp?.maps.tunnel.entries().map(([cidr, t]) => ({ cidr, remote: t.remote })) ?? [];
    const peers = this.currentPeers();
    const downSince = this.watches.map((w) => w.disconnectedSince).filter((d): d is Date => d !== undefined).sort((a, b) => a.getTime() - b.getTime())[0];
    const etcdProblems = downSince ? [`etcd unreachable since ${downSince.toISOString()}: forwarding on the last known state, changes in etcd are not seen`] : [];
    const superseded = this.registration?.superseded;
    if (superseded) etcdProblems.push(`superseded: ${superseded}; this agent no longer writes the host's registration or endpoint records`);
    return {
      agent: {
        host: cfg.hostName,
        version: AGENT_VERSION,
        incarnation: this.incarnation,
        pid: process.pid,
        startedAt: this.startedAt.toISOString(),
        uptimeSeconds: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
        ready: this.isReady,
        networkPrefix: cfg.networkPrefix,
        mode: net.mode,
        clusterCidr: net.clusterCidr,
        podCidr: net.podCidr,
        gateway: pod.gateway,
        mtu: net.mtu,
        vni: net.vni,
        underlayIp: cfg.underlayIp,
      },
      etcd: {
        endpoints: cfg.etcd.endpoints,
        state: downSince ? "degraded" : "connected",
        ...(downSince ? { degradedSince: downSince.toISOString() } : {}),
        registered: this.registration?.registered ?? false,
        ...(this.registration?.currentLeaseId ? { lease: this.registration.currentLeaseId } : {}),
        viewSynced: this.view.synced,
        watches: this.watches.map((w) => ({
          prefix: w.prefix,
          connected: w.isConnected,
          revision: w.revision,
          lists: w.stats.lists,
          disconnects: w.stats.disconnects,
          compactions: w.stats.compactions,
        })),
      },
      devices,
      programs,
      maps: { endpoints: dp?.maps.endpoints.entries().length ?? 0, tunnel: tunnels.length, metrics: metrics.length },
      tunnels,
      peers: peers.peers,
      endpoints: { total: eps.length, ready: eps.filter((e) => e.status === "ready").length, lost: eps.filter((e) => e.status === "lost").length },
      counters: {
        forwarded: { packets: fwd.packets.toString(), bytes: fwd.bytes.toString() },
        passed: { packets: passed.packets.toString(), bytes: passed.bytes.toString() },
        dropped,
      },
      reconcilers: this.reconcilers.map((r) => ({ name: r.name, ...r.stats })),
      ...(this.policy ? { policy: this.policy.status() } : {}),
      ...(this.l7 ? { l7: { port: this.l7.port, ...this.l7.proxy.counts } } : {}),
      ...(this.health ? { health: this.health.status() } : {}),
      ...(this.monitor ? { monitor: this.monitorStatus() } : {}),
      problems: [...etcdProblems, ...this.problems, ...peers.problems, ...(this.policy?.status().problems ?? []), ...(this.services?.problems() ?? [])],
    };
  }
}

/** Runs the agent until SIGTERM/SIGINT; resolves with the exit code. */
export async function runAgent(cfg: AgentConfig, log: Logger): Promise<number> {
  const agent = new Agent(cfg, log);
  let stopSignal: string | undefined;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      if (stopSignal) return;
      stopSignal = sig;
      resolve();
    };
    process.once("SIGTERM", () => onSignal("SIGTERM"));
    process.once("SIGINT", () => onSignal("SIGINT"));
  });
  // A signal during start wins the race; start() then bails out at its next step.
  const starting = agent.start();
  starting.catch(() => undefined);
  try {
    await Promise.race([starting, stopped]);
  } catch (e) {
    log.error("agent failed to start", { error: e as Error });
    await agent.stop().catch(() => undefined);
    return 1;
  }
  await stopped;
  log.info("signal received", { signal: stopSignal });
  const forced = sleep(10_000).then(() => "timeout");
  const result = await Promise.race([agent.stop().then(() => "stopped"), forced]);
  if (result === "timeout") log.warn("shutdown took over 10 s; exiting anyway");
  return 0;
}
