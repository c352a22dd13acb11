// Endpoints (containers) of this host: a veth pair per container, an address from the host's
// pod CIDR, bpf_lxc on the host side, an entry in the endpoint map and a record in etcd.
//
// Order matters for crash safety: the address is written to endpoints.json (status
// "creating") before any device gets it, and the record becomes "ready" only once every
// piece is in place. A restart rolls back what is still "creating" and re-attaches what is
// "ready", so an address is never handed out twice and nothing half-made survives.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { deleteLink, Endpoint, NetlinkError, readLink } from "../../bpf";
import { encodeMetricsKey } from "../../bpf/abi";
import { endpointKey, endpointsDir, SCHEMA_VERSION } from "../../provider/etcd/keys";
import { Datapath } from "./datapath";
import { isAssignable, nextFreeIp, PodNetwork } from "./ipam";
import { plumbVeth } from "./links";
import { Logger } from "./log";
import { writeSysctl } from "./devices";
import { EndpointRecord, EndpointState, StateStore } from "./state";
import { ENDPOINT_ID as ID } from "../api/ids";

export const DEFAULT_IFNAME = "eth0";
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,252})?$/;

/** An error the API turns into an HTTP status. */
export class EndpointError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface AddRequest {
  id: string;
  netns: string;
  ifname?: string;
  labels?: Record<string, string>;
}

/** What the API returns for an endpoint. */
export interface EndpointView {
  id: string;
  ip: string;
  /** The address as configured in the container (/32). */
  address: string;
  gateway: string;
  podCidr: string;
  mtu: number;
  netns: string;
  ifname: string;
  mac?: string;
  hostIfname: string;
  hostIfindex?: number;
  hostMac?: string;
  labels: Record<string, string>;
  status: "creating" | "ready" | "lost";
  createdAt: string;
  /** Security identity of the labels (docs/policy.md), once allocated. */
  identity?: number;
  /** Policy per direction: "open" (no policy selects it), "enforced" or "audit". */
  ingress?: "open" | "enforced" | "audit";
  egress?: "open" | "enforced" | "audit";
  /** Names of the policies selecting it. */
  policies?: string[];
}

/** Host-side veth name: "bn" + 11 hex digits of the id's hash (IFNAMSIZ is 16). */
export function hostVethName(id: string): string {
  return `bn${createHash("sha256").update(id).digest("hex").slice(0, 11)}`;
}

/** The temporary container-end name agents before the one-batch plumbing used (a crash could leave it behind). */
export function tempPeerName(id: string): string {
  return `bt${createHash("sha256").update(id).digest("hex").slice(0, 11)}`;
}

/**
 * The MACs of an endpoint's veth pair, derived from its id: locally administered unicast, stable
 * across re-plumbing, and known before the pair exists (nothing to read back). Pure.
 */
export function vethMacs(id: string): { hostMac: string; mac: string } {
  const mac = (side: string) => {
    const b = createHash("sha256").update(`${side}/${id}`).digest().subarray(0, 6);
    b[0] = (b[0] & 0xfc) | 0x02; // locally administered, unicast
    return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
  };
  return { hostMac: mac("host"), mac: mac("container") };
}

/** Pure validation of an add request; returns the normalized request or throws EndpointError(400). */
export function checkAddRequest(raw: unknown): Required<AddRequest> {
  const bad = (msg: string) => new EndpointError(400, "invalid-request", msg);
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw bad("the request must be a JSON object {id, netns, ifname?, labels?}");
  const r = raw as Record<string, unknown>;
  if (typeof r.id !== "string" || !ID.test(r.id)) throw bad(`id must be 1-253 characters of letters, digits, ".", "_" or "-", starting with a letter or digit, got ${JSON.stringify(r.id)}`);
  if (typeof r.netns !== "string" || !path.isAbsolute(r.netns)) throw bad(`netns must be an absolute path like /run/netns/NAME or /proc/PID/ns/net, got ${JSON.stringify(r.netns)}`);
  const ifname = r.ifname ?? DEFAULT_IFNAME;
  if (typeof ifname !== "string" || !IFNAME.test(ifname)) throw bad(`ifname must be an interface name of 1-15 characters, got ${JSON.stringify(r.ifname)}`);
  const labels: Record<string, string> = {};
  if (r.labels !== undefined && r.labels !== null) {
    if (typeof r.labels !== "object" || Array.isArray(r.labels)) throw bad(`labels must be an object of strings, got ${JSON.stringify(r.labels)}`);
    for (const [k, v] of Object.entries(r.labels as Record<string, unknown>)) {
      if (!LABEL_KEY.test(k)) throw bad(`label key ${JSON.stringify(k)} must be letters, digits, ".", "_", "-" or "/"`);
      if (typeof v !== "string" || v.length > 1024) throw bad(`label ${k} must have a string value (up to 1024 characters), got ${JSON.stringify(v)}`);
      labels[k] = v;
    }
  }
  return { id: r.id, netns: path.normalize(r.netns), ifname, labels };
}

/** The etcd record of an endpoint (deterministic field order: the reconciler compares strings). */
export function endpointRecordJson(host: string, rec: EndpointRecord, identity?: number): string {
  return JSON.stringify({
    schema: SCHEMA_VERSION,
    host,
    id: rec.id,
    ip: rec.ip,
    mac: rec.mac ?? "",
    ifname: rec.ifname,
    hostIfname: rec.hostIfname,
    labels: Object.fromEntries(Object.entries(rec.labels).sort(([a], [b]) => (a < b ? -1 : 1))),
    createdAt: rec.createdAt,
    // Every agent's ipcache maps this address to it (docs/policy.md).
    ...(identity !== undefined ? { identity } : {}),
  });
}

export class EndpointManager {
  private state: EndpointState;
  /** Ready endpoints whose host veth is gone (the container's namespace was deleted). */
  private readonly lost = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: StateStore,
    private readonly pod: PodNetwork,
    private readonly mtu: number,
    private readonly datapath: Datapath,
    private readonly host: string,
    private readonly prefix: string,
    private readonly log: Logger,
    /** Called after every change so the reconcilers pick it up. */
    private readonly changed: () => void,
  ) {
    this.state = store.loadEndpoints();
    if (this.state.podCidr && this.state.podCidr !== pod.cidr && Object.keys(this.state.endpoints).length > 0) {
      throw new Error(
        `${store.endpointsFile} holds endpoints from pod CIDR ${this.state.podCidr}, but this host now has ${pod.cidr}; ` +
          `delete those endpoints (or move the file aside) before starting the agent`,
      );
    }
    this.state.podCidr = pod.cidr;
  }

  /** Serializes every mutation: one add or delete at a time, in arrival order. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private save(durable = true): void {
    this.store.saveEndpoints(this.state, durable);
  }

  /**
   * After a (re)start: rolls back half-made endpoints, re-attaches bpf_lxc on every ready
   * one (replacing the previous agent's program in place), and notes the ones whose device
   * is gone. The endpoint map is then brought in line by its reconciler.
   */
  async restore(): Promise<{ restored: number; rolledBack: number; lost: number }> {
    return this.serial(async () => {
      let restored = 0;
      let rolledBack = 0;
      for (const rec of Object.values(this.state.endpoints)) {
        if (rec.status !== "ready") {
          await this.unplumb(rec);
          delete this.state.endpoints[rec.id];
          rolledBack++;
          this.log.warn("rolled back an endpoint left half-made", { id: rec.id, ip: rec.ip });
          continue;
        }
        const link = await readLink(null, rec.hostIfname);
        if (!link) {
          this.lost.add(rec.id);
          this.log.warn("endpoint's host device is gone (container namespace deleted?); keeping its address until it is deleted", { id: rec.id, ip: rec.ip, device: rec.hostIfname });
          continue;
        }
        if (link.ifindex !== rec.hostIfindex || link.mac !== rec.hostMac) {
          rec.hostIfindex = link.ifindex;
          rec.hostMac = link.mac;
        }
        this.datapath.attach("lxc", link.ifindex);
        restored++;
      }
      this.save();
      this.changed();
      return { restored, rolledBack, lost: this.lost.size };
    });
  }

  list(): EndpointView[] {
    return Object.values(this.state.endpoints)
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((r) => this.view(r));
  }

  get(id: string): EndpointView | undefined {
    const rec = this.state.endpoints[id];
    return rec && this.view(rec);
  }

  get count(): number {
    return Object.keys(this.state.endpoints).length;
  }

  /** Desired endpoint map: every plumbed endpoint with a live device, by IP, with its policy flags. */
  desiredMap(flagsOf: (endpointNumber: number) => number = () => 0): Map<string, Endpoint> {
    const out = new Map<string, Endpoint>();
    for (const r of Object.values(this.state.endpoints)) {
      if (this.lost.has(r.id) || r.hostIfindex === undefined || !r.mac || !r.hostMac) continue;
      out.set(r.ip, { ifindex: r.hostIfindex, endpointId: r.number, mac: r.mac, nodeMac: r.hostMac, flags: flagsOf(r.number) });
    }
    return out;
  }

  /** Desired etcd records under <prefix>/state/endpoints/v1/<host>/, with each endpoint's security identity. */
  desiredRecords(identityOf: (id: string) => number | undefined = () => undefined): Map<string, string> {
    const out = new Map<string, string>();
    for (const r of Object.values(this.state.endpoints)) {
      if (r.status === "ready") out.set(endpointKey(this.prefix, this.host, r.id), endpointRecordJson(this.host, r, identityOf(r.id)));
    }
    return out;
  }

  /** Ready endpoints as policy sees them: datapath number, address, labels. */
  policyEndpoints(): { id: string; number: number; ip: string; labels: Record<string, string> }[] {
    return Object.values(this.state.endpoints)
      .filter((r) => r.status === "ready")
      .map((r) => ({ id: r.id, number: r.number, ip: r.ip, labels: r.labels }));
  }

  get recordsDir(): string {
    return endpointsDir(this.prefix, this.host);
  }

  add(raw: unknown): Promise<{ endpoint: EndpointView; created: boolean }> {
    const req = checkAddRequest(raw);
    const t0 = performance.now();
    return this.serial(async () => {
      // Where an add's time goes (cumulative ms since the request), for the log and bench/datapath.ts.
      const ms: Record<string, number> = { queued: Math.round((performance.now() - t0) * 10) / 10 };
      const mark = (step: string) => (ms[step] = Math.round((performance.now() - t0) * 10) / 10);
      const existing = this.state.endpoints[req.id];
      if (existing && existing.status === "ready" && !this.lost.has(req.id)) {
        if (existing.netns !== req.netns || existing.ifname !== req.ifname) {
          throw new EndpointError(409, "exists", `endpoint ${req.id} already exists in ${existing.netns} (${existing.ifname}); delete it first`);
        }
        return { endpoint: this.view(existing), created: false };
      }
      if (existing) await this.remove(existing); // lost or half-made: start afresh
      if (!fs.existsSync(req.netns)) throw new EndpointError(404, "no-netns", `network namespace ${req.netns} does not exist`);

      const used = new Set(Object.values(this.state.endpoints).map((r) => r.ip));
      const ipAddr = nextFreeIp(this.pod, used, this.state.lastAllocated);
      if (!ipAddr) throw new EndpointError(507, "pool-exhausted", `no free address left in ${this.pod.cidr} (${used.size} in use)`);
      const hostIfname = hostVethName(req.id);
      const clash = Object.values(this.state.endpoints).find((r) => r.hostIfname === hostIfname);
      if (clash) throw new EndpointError(409, "name-clash", `endpoint ids ${req.id} and ${clash.id} hash to the same device name ${hostIfname}`);
      const rec: EndpointRecord = {
        id: req.id,
        number: this.state.nextNumber++,
        ip: ipAddr,
        netns: req.netns,
        ifname: req.ifname,
        hostIfname,
        labels: req.labels,
        status: "creating",
        createdAt: new Date().toISOString(),
      };
      // Durable before use: from here on a crash can only roll this address back, never reuse it.
      this.state.endpoints[rec.id] = rec;
      this.state.lastAllocated = ipAddr;
      // Not synced (an add's latency): atomic is what crash safety needs; a power loss takes the
      // devices and namespaces these records guard with it.
      this.save(false);
      mark("recorded");
      try {
        await this.plumb(rec);
        mark("plumbed");
        this.datapath.attach("lxc", rec.hostIfindex!);
        this.datapath.maps.endpoints.set(rec.ip, this.desiredMap().get(rec.ip)!);
        mark("attached");
        rec.status = "ready";
        this.save(false);
        mark("ready");
      } catch (e) {
        this.log.warn("endpoint add failed, rolling back", { id: rec.id, ip: rec.ip, error: e as Error });
        await this.remove(rec).catch((err) => this.log.error("rollback failed", { id: rec.id, error: err as Error }));
        throw e instanceof EndpointError ? e : new EndpointError(500, "plumbing-failed", (e as Error).message);
      }
      this.log.info("endpoint added", { id: rec.id, ip: rec.ip, netns: rec.netns, device: rec.hostIfname, ifindex: rec.hostIfindex, ms });
      // The datapath is ready: answer first, then let the reconcilers (records, policy) run.
      setImmediate(this.changed);
      return { endpoint: this.view(rec), created: true };
    });
  }

  /** Deletes an endpoint; a missing one is not an error (CNI DEL must be repeatable). */
  del(id: string): Promise<{ deleted: boolean; endpoint?: EndpointView }> {
    return this.serial(async () => {
      const rec = this.state.endpoints[id];
      if (!rec) return { deleted: false };
      const view = this.view(rec);
      await this.remove(rec);
      this.log.info("endpoint deleted", { id, ip: rec.ip });
      this.changed();
      return { deleted: true, endpoint: view };
    });
  }

  /** Undoes everything of an endpoint; the address is released last. */
  private async remove(rec: EndpointRecord): Promise<void> {
    const entry = this.datapath.maps.endpoints.get(rec.ip);
    if (entry && (rec.hostIfindex === undefined || entry.ifindex === rec.hostIfindex)) this.datapath.maps.endpoints.delete(rec.ip);
    await this.unplumb(rec);
    // Its counters go too: a later device may get the same ifindex and must start from zero.
    if (rec.hostIfindex !== undefined) {
      for (const m of this.datapath.maps.metrics.entries()) {
        if (m.id === rec.hostIfindex) this.datapath.maps.metrics.raw.delete(encodeMetricsKey(m));
      }
    }
    delete this.state.endpoints[rec.id];
    this.lost.delete(rec.id);
    this.save();
  }

  private async unplumb(rec: EndpointRecord): Promise<void> {
    // Deleting the host end takes the container end with it; the temp name covers an older
    // agent's crash between creating the pair and moving the peer.
    for (const dev of [rec.hostIfname, tempPeerName(rec.id)]) await deleteLink(null, dev);
  }

  /**
   * The veth pair through netlink from the addon: born in the container's namespace with the
   * host end placed straight into the agent's, then the container end configured (links.ts);
   * no process is spawned. A name clash (leftovers of a crash under the same names) is cleaned
   * up and retried once; what is left is then diagnosed for the caller.
   */
  private async plumb(rec: EndpointRecord): Promise<void> {
    const { netns, ifname, hostIfname } = rec;
    if (!isAssignable(this.pod, rec.ip)) throw new Error(`internal: ${rec.ip} is not assignable in ${this.pod.cidr}`);
    const macs = vethMacs(rec.id);
    const plan = { hostIfname, ifname, ip: rec.ip, gateway: this.pod.gateway, mtu: this.mtu, ...macs };
    let hostIfindex: number;
    try {
      hostIfindex = await plumbVeth(netns, plan).catch(async (e: unknown) => {
        if (!(e instanceof NetlinkError && e.code === "EEXIST" && e.step.startsWith("create")) || (await readLink(netns, ifname))) throw e;
        await this.unplumb(rec); // our own host end left over: the container's name is free
        return plumbVeth(netns, plan);
      });
    } catch (e) {
      throw await this.plumbError(netns, ifname, e);
    }
    writeSysctl(`net/ipv4/conf/${hostIfname}/rp_filter`, "0");
    rec.hostIfindex = hostIfindex;
    rec.hostMac = macs.hostMac;
    rec.mac = macs.mac;
  }

  /** Why plumbing failed, in the API's terms. */
  private async plumbError(netns: string, ifname: string, e: unknown): Promise<Error> {
    if (!(e instanceof NetlinkError)) return e as Error;
    if (e.step.startsWith("open") || !fs.existsSync(netns)) {
      return new EndpointError(404, "no-netns", `cannot enter network namespace ${netns}: ${e.message}`);
    }
    if (e.code === "EEXIST" && e.step.startsWith("create") && (await readLink(netns, ifname).catch(() => undefined))) {
      return new EndpointError(409, "ifname-taken", `${netns} already has a device ${ifname}`);
    }
    return e;
  }

  private view(r: EndpointRecord): EndpointView {
    return {
      id: r.id,
      ip: r.ip,
      address: `${r.ip}/32`,
      gateway: this.pod.gateway,
      podCidr: this.pod.cidr,
      mtu: this.mtu,
      netns: r.netns,
      ifname: r.ifname,
      ...(r.mac ? { mac: r.mac } : {}),
      hostIfname: r.hostIfname,
      ...(r.hostIfindex !== undefined ? { hostIfindex: r.hostIfindex } : {}),
      ...(r.hostMac ? { hostMac: r.hostMac } : {}),
      labels: r.labels,
      status: this.lost.has(r.id) ? "lost" : r.status,
      createdAt: r.createdAt,
    };
  }
}
