// The agent's policy side: gives this host's endpoints their security identities (restoring the
// ones they held before allocating anything), watches policies, identities and every host's
// endpoint records, computes each local endpoint's enforcement and policy-map rows plus the
// ipcache, and hands them to the datapath sink. The BPF maps behind the sink are the
// datapath's (docs/policy.md); without a sink the result is computed and reported only.
import * as fs from "fs";
import type { Etcd3 } from "etcd3";
import { endpointsDir, identitiesDir, policiesDir } from "../../provider/etcd/keys";
import { ComputedPolicy, computePolicy, ENDPOINT_FLAGS, EndpointPolicy } from "../policy/compute";
import { Labels } from "../policy/identity";
import { IdentityAllocator, labelsSegment } from "../policy/identityAllocator";
import { IpcacheRows } from "../policy/ipcache";
import { PolicyInputs } from "../policy/view";
import type { PolicyStatus } from "../api/types";
import { Logger } from "./log";
import { writeFileAtomic } from "./state";
import { PassQueue } from "./passQueue";
import { PrefixWatch, WatchBatch } from "./watch";

export interface LocalEndpoint {
  id: string;
  /** The datapath's endpoint_id. */
  number: number;
  ip: string;
  labels: Labels;
}

/** Where computed policy goes: the datapath's maps (ipcache, policy map, endpoint flags). */
export interface PolicySink {
  /**
   * `computed`: the policy when it was recomputed this pass (undefined: unchanged). `changed`:
   * the ipcache rows to look at (undefined: all of them, and rows nobody claims go: a full pass).
   */
  apply(computed: ComputedPolicy | undefined, ipcache: IpcacheRows, changed: ReadonlySet<string> | undefined): Promise<void> | void;
}

export interface PolicyAgentOptions {
  client: Etcd3;
  prefix: string;
  host: string;
  /** The agent's current etcd lease (its registration's). */
  leaseId: () => string | undefined;
  /** This host's ready endpoints. */
  localEndpoints: () => LocalEndpoint[];
  /** Host addresses: this host's (identity host) and the other hosts' (remote-node). */
  hostAddresses: () => { local: string[]; remote: string[] };
  /** File keeping which identity each local endpoint holds, for restore after a restart. */
  stateFile: string;
  log: Logger;
  sink?: PolicySink;
  /** Unused identities are deleted after this long (default 15 min). */
  gcGraceMs?: number;
  gcIntervalMs?: number;
  /** Called when an endpoint's identity changed, so its etcd record is rewritten. */
  onIdentities?: () => void;
  /** This agent's L7 proxy port (HTTP rules become redirect rows to it); none: enforced at L4 with a warning. */
  proxyPort?: number;
}

type Direction = "open" | "enforced" | "audit";

export interface EndpointPolicyView {
  identity?: number;
  ingress: Direction;
  egress: Direction;
  policies: string[];
}

interface Held {
  labels: Labels;
  id: number;
}

export class PolicyAgent {
  readonly inputs: PolicyInputs;
  private readonly allocator: IdentityAllocator;
  private readonly watches: PrefixWatch[] = [];
  /** Local endpoint id → the identity it holds. */
  private held = new Map<string, Held>();
  private restored = false;
  /** What the state file said at start: the identities to restore. */
  private readonly saved: Map<string, Held>;
  /** Local endpoint id → its datapath endpoint_id, as of the last pass. */
  private numbers = new Map<string, number>();
  private lease: string | undefined;
  private computed: ComputedPolicy | undefined;
  /** Policies or identities changed, or a kick asked: computePolicy runs again (an endpoint record alone changes only its ipcache row). */
  private policyDirty = true;
  /** The local endpoints (ids, numbers, labels, identities) `computed` was made from. */
  private computedFor = "";
  /** The next pass diffs the whole ipcache (first pass, the periodic one, after a failure). */
  private fullIpcache = true;
  private applied = false;
  private readonly passes: PassQueue;
  private timer: NodeJS.Timeout | undefined;
  readonly stats = { passes: 0, errors: 0, allocations: 0, releases: 0, lastError: "" };

  constructor(private readonly o: PolicyAgentOptions) {
    this.inputs = new PolicyInputs(o.prefix);
    this.allocator = new IdentityAllocator(o.client, o.prefix, o.host, o.leaseId);
    this.saved = this.load();
    this.passes = new PassQueue("policy", () => this.pass(), this.stats, o.log);
  }

  start(): void {
    const watch = (dir: string, apply: (b: WatchBatch) => void, policyInput = true) => {
      const onBatch = (b: WatchBatch) => {
        apply(b);
        if (policyInput) this.policyDirty = true;
        void this.passes.kick();
      };
      const w = new PrefixWatch({ client: this.o.client, prefix: dir, log: this.o.log.child("watch"), onBatch });
      this.watches.push(w);
      w.start();
    };
    watch(policiesDir(this.o.prefix), (b) => this.inputs.applyPolicies(b));
    watch(`${identitiesDir(this.o.prefix)}id/`, (b) => this.inputs.applyIdentities(b));
    watch(endpointsDir(this.o.prefix), (b) => this.inputs.applyEndpoints(b), false);
    const gcEvery = this.o.gcIntervalMs ?? 60_000;
    this.timer = setInterval(() => {
      this.fullIpcache = true;
      this.kick();
      if (this.o.leaseId() !== undefined) {
        this.allocator.gc(Date.now(), this.o.gcGraceMs ?? 15 * 60_000).then(
          (ids) => ids.length && this.o.log.info("unused identities deleted", { ids }),
          (e) => this.o.log.warn("identity gc failed", { error: e }),
        );
      }
    }, gcEvery);
    this.timer.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    const passes = this.passes.stop(); // no pass starts from here on
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.watches.map((w) => w.stop()));
    await passes;
  }

  /** Something changed (endpoints, lease, etcd): run a pass soon; passes never overlap. */
  kick(): Promise<void> {
    this.policyDirty = true;
    return this.passes.kick();
  }

  /**
   * The endpoint's identity. Until the restore ran, the one it held before the restart: its
   * record in etcd keeps the number, so peers never see it without one (their ipcache would
   * turn it into world for a moment).
   */
  identityOf(endpointId: string): number | undefined {
    return this.held.get(endpointId)?.id ?? (this.restored ? undefined : this.saved.get(endpointId)?.id);
  }

  /** The identity and enforcement of a local endpoint, for `bpfnet endpoint list`. */
  endpointView(endpointId: string): EndpointPolicyView {
    const number = this.numbers.get(endpointId);
    const ep = this.computed?.endpoints.find((e) => e.endpointId === number);
    const dir = (enforce: number, audit: number): Direction => (!ep || !(ep.flags & enforce) ? "open" : ep.flags & audit ? "audit" : "enforced");
    const identity = this.identityOf(endpointId);
    return {
      ...(identity !== undefined ? { identity } : {}),
      ingress: dir(ENDPOINT_FLAGS.ENFORCE_INGRESS, ENDPOINT_FLAGS.AUDIT_INGRESS),
      egress: dir(ENDPOINT_FLAGS.ENFORCE_EGRESS, ENDPOINT_FLAGS.AUDIT_EGRESS),
      policies: ep?.policies ?? [],
    };
  }

  /** A local endpoint's computed policy as of the last pass (the L7 proxy judges with it). */
  endpointPolicy(endpointNumber: number): EndpointPolicy | undefined {
    return this.computed?.endpoints.find((e) => e.endpointId === endpointNumber);
  }

  status(): PolicyStatus {
    return {
      synced: this.inputs.allSynced,
      policies: this.inputs.policies.size,
      identities: this.inputs.identities.size,
      problems: [...this.inputs.problems].map(([name, why]) => `policy ${name}: ${why.join("; ")}`),
      warnings: this.computed?.warnings ?? [],
      /** True once a sink took the computed state; false means computed only (no datapath maps). */
      applied: this.applied,
      ...this.stats,
    };
  }

  private async pass(): Promise<void> {
    // Taken before the inputs are read: a kick during this pass's awaits (a new local endpoint)
    // leaves the flag set for the pass it queued, which then computes with what it read.
    const policyDirty = this.policyDirty;
    this.policyDirty = false;
    try {
      await this.passOnce(policyDirty);
    } catch (e) {
      // What was half applied is not known: the next pass recomputes and diffs everything.
      this.policyDirty = this.fullIpcache = true;
      throw e;
    }
  }

  private async passOnce(policyDirty: boolean): Promise<void> {
    const local = this.o.localEndpoints();
    this.numbers = new Map(local.map((e) => [e.id, e.number]));
    const lease = this.o.leaseId();
    if (lease === undefined) {
      // No lease yet (starting) or lost: identities wait for it; look again soon.
      setTimeout(() => void this.kick(), 1000).unref();
    } else {
      // A new lease (the old one was lost): this host's uses are written again under it.
      if (this.lease !== undefined && this.lease !== lease) await this.allocator.reassert();
      this.lease = lease;
      await this.syncIdentities(local);
    }
    // Nothing is computed (so nothing pruned) from a partial view, or before the identities the
    // endpoints held were restored: the pinned maps keep enforcing meanwhile.
    if (!this.inputs.allSynced || !this.restored) {
      if (policyDirty) this.policyDirty = true;
      return;
    }
    // Endpoints without an identity yet stay out of the computation: they are open, as before.
    const withIds = local.filter((e) => this.held.has(e.id));
    let recomputed: ComputedPolicy | undefined;
    // This host's endpoints and their identities feed computePolicy too, whatever kicked this
    // pass (a kick can race a pass; the few local endpoints are cheap to compare).
    const localInputs = JSON.stringify(withIds.map((e) => [e.id, e.number, labelsSegment(e.labels), this.held.get(e.id)!.id]));
    if (policyDirty || localInputs !== this.computedFor || !this.computed) {
      this.computedFor = localInputs;
      recomputed = computePolicy({
        policies: [...this.inputs.policies.values()],
        endpoints: withIds.map((e) => ({ endpointId: e.number, labels: e.labels })),
        identities: this.inputs.identities,
        ...(this.computed ? { previousCidrIdentities: this.computed.cidrIdentities } : {}),
        ...(this.o.proxyPort !== undefined ? { proxyPort: this.o.proxyPort } : {}),
      });
      for (const w of recomputed.warnings) if (!this.computed?.warnings.includes(w)) this.o.log.warn(w);
      this.computed = recomputed;
    }
    const rows = this.inputs.ipcache;
    const hosts = this.o.hostAddresses();
    rows.setLocalEndpoints(withIds.map((e) => ({ ip: e.ip, identity: this.held.get(e.id)!.id })));
    rows.setHostAddresses(hosts.local, hosts.remote);
    rows.setCidrIdentities(this.computed.cidrIdentities);
    const full = this.fullIpcache;
    const changed = rows.takeChanged();
    if (!this.o.sink) return;
    this.fullIpcache = false;
    await this.o.sink.apply(recomputed, rows, full ? undefined : changed);
    this.applied = true;
  }

  /** Restore first (once), then allocate for new endpoints and release for gone ones. */
  private async syncIdentities(local: LocalEndpoint[]): Promise<void> {
    if (!this.restored) {
      const saved = this.saved;
      const back = await this.allocator.restore([...saved.values()]);
      for (const [epId, h] of saved) {
        // One reference per endpoint: restore took one per label set.
        if (back.get(labelsSegment(h.labels)) !== h.id) continue;
        if ([...this.held.values()].some((x) => x.id === h.id)) await this.allocator.allocate(h.labels);
        this.held.set(epId, h);
      }
      this.restored = true;
    }
    let changed = false;
    const present = new Map(local.map((e) => [e.id, e]));
    for (const [epId, h] of [...this.held]) {
      const ep = present.get(epId);
      if (ep && labelsSegment(ep.labels) === labelsSegment(h.labels)) continue;
      await this.allocator.release(h.labels);
      this.held.delete(epId);
      this.stats.releases++;
      changed = true;
    }
    for (const ep of local) {
      if (this.held.has(ep.id)) continue;
      const id = await this.allocator.allocate(ep.labels);
      this.held.set(ep.id, { labels: ep.labels, id });
      this.stats.allocations++;
      changed = true;
    }
    if (changed) {
      writeFileAtomic(this.o.stateFile, JSON.stringify({ schema: 1, endpoints: Object.fromEntries(this.held) }));
      this.o.onIdentities?.();
    }
  }

  private load(): Map<string, Held> {
    try {
      const v = JSON.parse(fs.readFileSync(this.o.stateFile, "utf8"));
      const out = new Map<string, Held>();
      for (const [k, h] of Object.entries((v?.endpoints ?? {}) as Record<string, Held>)) {
        if (h && typeof h.id === "number" && h.labels && typeof h.labels === "object") out.set(k, { labels: h.labels, id: h.id });
      }
      return out;
    } catch {
      return new Map();
    }
  }
}
