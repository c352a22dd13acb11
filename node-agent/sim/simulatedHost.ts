// A simulated host's writes to etcd, made by the same code a real host's are: its pod CIDR from
// the IPAM allocator (what HostAllocation runs), its node record on a kept-alive lease (the
// agent's Registration) and its endpoint records, fenced by that registration as the agent's
// are. No devices, no BPF: the etcd load of one host, thousands of times over in one process.
import { randomUUID } from "crypto";
import type { Etcd3 } from "etcd3";
import { endpointKey, nodeKey, SCHEMA_VERSION } from "../../provider/etcd/keys";
import { formatIpv4, lastAddress, parseCidr } from "../../provider/ipam/cidr";
import { allocate, release } from "../../provider/ipam/ipamStore";
import { AGENT_VERSION } from "../version";
import { sleep } from "../daemon/backoff";
import { Logger } from "../daemon/log";
import { Registration } from "../daemon/registration";
import { newerAgent, NodeRecord } from "../daemon/view";

export interface SimulatedHostOptions {
  client: Etcd3;
  prefix: string;
  host: string;
  underlayIp: string;
  leaseTtlSeconds: number;
  log: Logger;
}

/** Pure: the address of a host's n-th endpoint (n from 0): .2 upwards, after the gateway (.1). */
export function endpointAddress(podCidr: string, n: number): string {
  const c = parseCidr(podCidr);
  if (!c) throw new Error(`not a CIDR: ${JSON.stringify(podCidr)}`);
  const address = c.base + 2 + n;
  if (n < 0 || address >= lastAddress(c)) throw new Error(`endpoint ${n} does not fit in ${podCidr}`);
  return formatIpv4(address);
}

/** Pure: the endpoint record a simulated endpoint publishes (the agent's record fields; the identity as policy gives it). */
export function simulatedEndpointRecord(host: string, id: string, ip: string, identity: number): string {
  return JSON.stringify({ schema: SCHEMA_VERSION, host, id, ip, mac: "", ifname: "eth0", hostIfname: `lxc${id}`.slice(0, 15), labels: { app: `sim-${identity}` }, createdAt: new Date(0).toISOString(), identity });
}

export class SimulatedHost {
  readonly incarnation = randomUUID();
  readonly startedAt = new Date();
  readonly allocationId = randomUUID();
  podCidr: string | undefined;
  private registration: Registration | undefined;
  private readonly endpoints = new Set<string>();

  constructor(readonly o: SimulatedHostOptions) {}

  get host(): string {
    return this.o.host;
  }

  /** The pod CIDR from the real allocator (idempotent); returns it. */
  async allocate(): Promise<string> {
    const a = await allocate(this.o.client, { prefix: this.o.prefix, host: this.o.host, allocationId: this.allocationId });
    this.podCidr = a.podCidr;
    return a.podCidr;
  }

  /** Starts the registration (lease + node record) and resolves once etcd holds it. */
  async register(deadlineMs = 60_000): Promise<void> {
    const { o } = this;
    const record = (): NodeRecord => ({
      schema: SCHEMA_VERSION,
      host: o.host,
      underlayIp: o.underlayIp,
      podCidr: this.podCidr ?? "",
      agentVersion: AGENT_VERSION,
      incarnation: this.incarnation,
      startedAt: this.startedAt.toISOString(),
    });
    this.registration = new Registration(o.client, nodeKey(o.prefix, o.host), () => JSON.stringify(record()), o.leaseTtlSeconds, o.log, (existing) =>
      newerAgent(existing, this.incarnation, this.startedAt),
    );
    this.registration.start();
    const deadline = Date.now() + deadlineMs;
    while (!this.registration.registered) {
      if (Date.now() > deadline) throw new Error(`${o.host} not registered within ${deadlineMs} ms`);
      await sleep(5);
    }
  }

  /** Publishes endpoint n (an address of the pod CIDR) with `identity`, fenced by the registration. */
  async addEndpoint(n: number, identity: number): Promise<{ key: string; ip: string }> {
    if (!this.podCidr) throw new Error(`${this.o.host} has no pod CIDR yet`);
    const id = `ep${n}`;
    const ip = endpointAddress(this.podCidr, n);
    const key = endpointKey(this.o.prefix, this.o.host, id);
    await this.asOwner(key, this.o.client.put(key).value(simulatedEndpointRecord(this.o.host, id, ip, identity)));
    this.endpoints.add(key);
    return { key, ip };
  }

  async removeEndpoint(n: number): Promise<void> {
    const key = endpointKey(this.o.prefix, this.o.host, `ep${n}`);
    await this.asOwner(key, this.o.client.delete().key(key));
    this.endpoints.delete(key);
  }

  /** Leaves the network as a removed host does: endpoint records, allocation, then the lease (its node record goes with it). */
  async leave(): Promise<void> {
    for (const key of [...this.endpoints]) {
      await this.o.client.delete().key(key);
      this.endpoints.delete(key);
    }
    if (this.podCidr) await release(this.o.client, { prefix: this.o.prefix, host: this.o.host, allocationId: this.allocationId, podCidr: this.podCidr });
    await this.registration?.deregister();
  }

  /** Stops keepalives without revoking (the lease runs out; the harness's teardown). */
  async stop(): Promise<void> {
    await this.registration?.stop();
  }

  /** Fenced as the agent's endpoint-record writes are: only while etcd holds this registration. */
  private async asOwner(key: string, op: ReturnType<Etcd3["put"]> | ReturnType<Etcd3["delete"]>): Promise<void> {
    if (!this.registration) throw new Error(`not writing ${key}: not registered yet`);
    const r = await this.registration.ifOwner().then(op).commit();
    if (!r.succeeded) throw new Error(`not writing ${key}: etcd does not hold ${this.o.host}'s registration`);
  }
}
