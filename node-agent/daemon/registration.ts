// The node's registration: <prefix>/state/nodes/v1/<host>, bound to a lease the agent keeps
// alive. Losing the lease is normal (etcd leader stalls, long partitions): the key went with
// it, so a new lease is granted and the key written again. A key deleted by hand while the
// lease lives is written again too (the agent's view tells us, via kick()).
//
// A record written by a NEWER agent of the same host is never overwritten (a host that was
// frozen or cut off and comes back must not undo its replacement): each write is a
// compare-and-put against the revision just read, and `newerThanUs` judges what is there.
// The registration then stands down (`superseded`) until kicked again.
//
// Stopping the agent releases the lease without revoking it: the key stays until the TTL runs
// out, so a restart (which writes the key again at once) never makes other hosts drop their
// tunnel entries to this one.
import type { ComparatorBuilder, Etcd3, Lease } from "etcd3";
import { Backoff, sleep } from "./backoff";
import { Logger } from "./log";

export interface RegistrationStats {
  leasesGranted: number;
  leasesLost: number;
  writes: number;
  /** Writes not made because a newer agent's record was there. */
  refusals: number;
}

/** Why the record in etcd must not be overwritten by us, or undefined when we may write. */
export type NewerCheck = (existing: string) => string | undefined;

export class Registration {
  readonly stats: RegistrationStats = { leasesGranted: 0, leasesLost: 0, writes: 0, refusals: 0 };
  private supersededBy: string | undefined;
  /** The record as last written by us: the fence for writes made on the host's behalf. */
  private written: string | undefined;
  private lease: Lease | undefined;
  private leaseId: string | undefined;
  private dirty = true;
  private isRegistered = false;
  private wake: (() => void) | undefined;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private readonly backoff = new Backoff({ initialMs: 200, maxMs: 5000 });

  constructor(
    private readonly client: Etcd3,
    readonly key: string,
    private readonly value: () => string,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
    private readonly newerThanUs: NewerCheck = () => undefined,
  ) {}

  /**
   * A transaction that goes through only while etcd holds exactly the record this agent wrote:
   * writes on the host's behalf (endpoint records) use it, so an agent that was frozen or cut
   * off and has been replaced never overwrites its replacement's state.
   */
  ifOwner(): ComparatorBuilder {
    if (this.written === undefined) throw new Error(`not registered yet: nothing is written on behalf of ${this.key}`);
    return this.client.if(this.key, "Value", "==", this.written);
  }

  /** Set when a newer agent's record holds the key: why we stood down. */
  get superseded(): string | undefined {
    return this.supersededBy;
  }

  get registered(): boolean {
    return this.isRegistered;
  }

  get currentLeaseId(): string | undefined {
    return this.leaseId;
  }

  start(): void {
    if (!this.running) this.running = this.loop();
  }

  /** Writes the key again (it was deleted or changed by someone else, or our value changed). */
  kick(): void {
    this.dirty = true;
    this.wake?.();
  }

  /** Stops keepalives; the key expires with the lease unless a new agent writes it first. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.wake?.();
    await this.running;
    this.lease?.release();
  }

  /** Revokes the lease: the key disappears now (used when the host leaves the network). */
  async deregister(): Promise<void> {
    await this.stop();
    await this.lease?.revoke().catch(() => undefined);
    this.isRegistered = false;
  }

  private newLease(): Lease {
    const lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    lease.on("lost", (err: Error) => {
      if (this.lease !== lease) return;
      this.stats.leasesLost++;
      this.isRegistered = false;
      this.lease = undefined;
      this.leaseId = undefined;
      this.log.warn("registration lease lost; granting a new one", { error: err });
      this.kick();
    });
    return lease;
  }

  private async loop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      if (!this.dirty && this.lease) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      try {
        if (!this.lease) {
          const lease = this.newLease();
          this.lease = lease;
          this.leaseId = await lease.grant();
          this.stats.leasesGranted++;
          this.log.info("registration lease granted", { lease: this.leaseId, ttlSeconds: this.ttlSeconds });
        }
        this.dirty = false;
        if (await this.writeUnlessNewer()) {
          this.stats.writes++;
          this.isRegistered = true;
          this.supersededBy = undefined;
          this.log.info("registered", { key: this.key, lease: this.leaseId });
        }
        this.backoff.reset();
      } catch (e) {
        this.dirty = true;
        const message = (e as Error).message ?? String(e);
        if (/lease not found/i.test(message) || this.lease?.revoked()) {
          this.lease?.release();
          this.lease = undefined;
          this.leaseId = undefined;
        }
        const delay = this.backoff.next();
        this.log.warn("registration failed, retrying", { error: message, retryInMs: delay });
        await sleep(delay, this.abort.signal);
      }
    }
  }

  /** Puts our record unless a newer one is there; false when we stood down. */
  private async writeUnlessNewer(): Promise<boolean> {
    for (;;) {
      const cur = (await this.client.get(this.key).exec()).kvs[0];
      const newer = cur ? this.newerThanUs(cur.value.toString()) : undefined;
      if (newer) {
        this.stats.refusals++;
        this.isRegistered = false;
        if (this.supersededBy !== newer) this.log.error("a newer agent holds this host's registration; not overwriting it", { key: this.key, newer });
        this.supersededBy = newer;
        return false;
      }
      const value = this.value();
      const put = this.client.put(this.key).value(value).lease(this.leaseId!);
      const cmp = cur ? this.client.if(this.key, "Mod", "==", cur.mod_revision) : this.client.if(this.key, "Create", "==", 0);
      if ((await cmp.then(put).commit()).succeeded) {
        this.written = value;
        return true;
      }
      // Someone wrote between our read and our put: judge again.
    }
  }
}
