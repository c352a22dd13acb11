// The agent's service reconciler: watches the services and every host's endpoint records,
// computes this host's service maps (desired.ts, pure) and writes them through the sink in the
// datapath's order. Backend ids are read back from the pinned map, so a restarted agent keeps
// them (flows pinned in CT keep their backend); a backend that leaves drains TERMINATING while a
// tracked flow uses it (at most `graceMs`). Without maps (no datapath) it computes and reports.
import type { Etcd3 } from "etcd3";
import { endpointsDir, serviceSpecsDir } from "../../provider/etcd/keys";
import { LbBackendFlags } from "../../bpf/abi";
import type { ServiceBackendView, ServiceList, ServiceView } from "../api/types";
import { Logger } from "../daemon/log";
import { PassQueue } from "../daemon/passQueue";
import { PrefixWatch, WatchBatch } from "../daemon/watch";
import { backendName, DesiredFrontend, desiredFrontends, Draining, FrontendCache, planMaps } from "./desired";
import { ServiceMapSink } from "./sink";
import { ServiceInputs } from "./view";

export interface ServiceAgentOptions {
  client: Etcd3;
  prefix: string;
  log: Logger;
  /** The maps' writer; absent: computed and reported only. */
  sink?: ServiceMapSink;
  /** Backend ids and reverse-NAT numbers live flows use (from CT). */
  inUse?: () => { backends: Set<number>; revNat: Set<number> };
  /**
   * HEALTH's hook: true when this host sees `host`'s health path down (node-agent/health:
   * a published record saying unreachable). Its backends then take no new flows.
   */
  hostDown?: (host: string) => boolean;
  /** A backend that left is removed at the latest this long after (default 5 min). */
  graceMs?: number;
  /** How often to look at draining backends and health changes (default 2 s). */
  intervalMs?: number;
  /** How often the sink reads the maps back instead of trusting what it wrote (default 60 s). */
  resyncMs?: number;
}

export class ServiceAgent {
  readonly inputs: ServiceInputs;
  private readonly watches: PrefixWatch[] = [];
  private draining: Draining = { backends: new Map(), revNat: new Map() };
  private frontends: DesiredFrontend[] = [];
  private readonly frontendCache: FrontendCache = new Map();
  private backendIds = new Map<string, number>();
  private terminating = new Map<number, string>();
  private readonly passes: PassQueue;
  private timer: NodeJS.Timeout | undefined;
  /** The health of the backends' hosts the last pass was computed with. */
  private healthUsed = "";
  private lastResync = Date.now();
  readonly stats = { passes: 0, errors: 0, lastError: "" };

  constructor(private readonly o: ServiceAgentOptions) {
    this.inputs = new ServiceInputs(o.prefix);
    this.passes = new PassQueue("service", () => this.pass(), this.stats, o.log, () => this.inputs.allSynced);
  }

  start(): void {
    const watch = (dir: string, apply: (b: WatchBatch) => void) => {
      const w = new PrefixWatch({ client: this.o.client, prefix: dir, log: this.o.log.child("watch"), onBatch: (b) => (apply(b), void this.kick()) });
      this.watches.push(w);
      w.start();
    };
    watch(serviceSpecsDir(this.o.prefix), (b) => this.inputs.applyServices(b));
    watch(endpointsDir(this.o.prefix), (b) => this.inputs.applyEndpoints(b));
    // Between changes, a pass only when it could change something: a backend draining, a host's
    // health flipped, or a resync of the maps due (a pass at 10,000 services is not free).
    this.timer = setInterval(() => {
      const resync = Date.now() - this.lastResync >= (this.o.resyncMs ?? 60_000);
      if (resync) {
        this.o.sink?.resync();
        this.lastResync = Date.now();
      }
      if (resync || this.draining.backends.size > 0 || this.draining.revNat.size > 0 || this.healthSignature() !== this.healthUsed) void this.kick();
    }, this.o.intervalMs ?? 2000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    const passes = this.passes.stop(); // no pass starts from here on
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.watches.map((w) => w.stop()));
    await passes;
  }

  /** Something changed: run a pass soon; passes never overlap. */
  kick(): Promise<void> {
    return this.passes.kick();
  }

  /** Which hosts with endpoints this host sees down (HEALTH's view), as one string. */
  private healthSignature(): string {
    const down = this.o.hostDown;
    if (!down) return "";
    return [...new Set([...this.inputs.endpoints.values()].map((e) => e.host))].filter((h) => down(h)).sort().join(",");
  }

  private pass(): void {
    this.healthUsed = this.healthSignature();
    const frontends = desiredFrontends([...this.inputs.services.values()], [...this.inputs.endpoints.values()], this.o.hostDown, this.frontendCache);
    const sink = this.o.sink;
    if (!sink) return void (this.frontends = frontends);
    const current = sink.read();
    const inUse = () => this.o.inUse?.() ?? { backends: new Set<number>(), revNat: new Set<number>() };
    const { target, draining } = planMaps(frontends, current.backends, this.draining, inUse, current.revNat, Date.now(), this.o.graceMs ?? 5 * 60_000);
    sink.apply(target);
    this.frontends = frontends;
    for (const id of this.draining.backends.keys()) if (!draining.backends.has(id)) this.o.log.info("drained backend removed", { id, backend: this.terminating.get(id) });
    this.draining = draining;
    this.backendIds = new Map([...target.backends].map(([id, b]) => [backendName(b), id]));
    this.terminating = new Map([...target.backends].filter(([, b]) => (b.flags ?? 0) & LbBackendFlags.TERMINATING).map(([id, b]) => [id, backendName(b)]));
  }

  /** `bpfnet service list`: each service's VIP, ports and backends with host and state; draining backends; ignored records. */
  list(): ServiceList {
    const byService = new Map<string, DesiredFrontend[]>();
    for (const f of this.frontends) byService.set(f.service, [...(byService.get(f.service) ?? []), f]);
    const backend = (b: DesiredFrontend["backends"][number], state: ServiceBackendView["state"]): ServiceBackendView => ({
      address: b.addr,
      port: b.port,
      host: b.host,
      state,
      ...(this.backendIds.has(b.name) ? { id: this.backendIds.get(b.name)! } : {}),
    });
    const services: ServiceView[] = [...this.inputs.services.values()]
      .sort((a, b) => (a.serviceName < b.serviceName ? -1 : 1))
      .map((s) => ({
        name: s.serviceName,
        vip: s.frontend.ip,
        sessionAffinity: s.sessionAffinity,
        algorithm: s.algorithm,
        ports: (byService.get(s.serviceName) ?? []).map((f) => {
          const p = s.frontend.ports.find((x) => x.revNatIndex === f.revNatIndex)!;
          return {
            port: p.port,
            protocol: p.protocol,
            targetPort: p.targetPort,
            revNatIndex: p.revNatIndex,
            backends: [...f.backends.map((b) => backend(b, "active")), ...f.skipped.map((b) => backend(b, "health-down"))],
          };
        }),
      }));
    return {
      synced: this.inputs.allSynced,
      programmed: this.o.sink !== undefined,
      services,
      draining: [...this.terminating].map(([id, name]) => ({ id, backend: name })),
      problems: this.problems(),
    };
  }

  /** Problems to report in status: service records that do not validate. */
  problems(): string[] {
    return [...this.inputs.problems].map(([name, why]) => `service ${name} ignored: ${why.join("; ")}`);
  }
}
