// Probes every peer's underlay address and health endpoint each interval, keeps this host's
// view (view.ts), and hands changed results to `publish` (the agent writes them to etcd).
// Rounds never overlap: the next starts one interval after the previous one ended.
import type { Logger } from "../daemon/log";
import { endpointProbe, icmpProbe } from "./probe";
import { needsPublish, nextPeerHealth, PeerHealth, ProbeOutcome, ProbeTarget } from "./view";

export interface ProberOptions {
  intervalMs: number;
  /** The peers right now (from the agent's view of etcd). */
  targets: () => ProbeTarget[];
  /** Writes one peer's result (or deletes it: undefined) where other hosts can read it. */
  publish: (peer: string, health: PeerHealth | undefined) => Promise<void>;
  log: Logger;
  /** Called after every round (metrics). */
  onRound?: (view: PeerHealth[]) => void;
  /** Probes; the real ones by default (tests of the loop can pass others). */
  probeHost?: (ip: string, timeoutMs: number) => Promise<ProbeOutcome>;
  probeEndpoint?: (ip: string | undefined, timeoutMs: number) => Promise<ProbeOutcome>;
}

export class HealthProber {
  private readonly state = new Map<string, PeerHealth>();
  private readonly published = new Map<string, PeerHealth>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  rounds = 0;

  constructor(private readonly o: ProberOptions) {}

  /** This host's view of every peer, sorted by name. */
  view(): PeerHealth[] {
    return [...this.state.values()].sort((a, b) => (a.peer < b.peer ? -1 : 1));
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round()
        .catch((e) => this.o.log.warn("health round failed", { error: e as Error }))
        .finally(() => this.schedule(this.o.intervalMs));
    }, ms);
    this.timer.unref();
  }

  /** One round: every peer's two paths in parallel, each probe bounded by the interval. */
  async round(): Promise<void> {
    const timeoutMs = Math.max(500, Math.min(2000, this.o.intervalMs - 200));
    const targets = this.o.targets();
    const probeHost = this.o.probeHost ?? icmpProbe;
    const probeEndpoint = this.o.probeEndpoint ?? endpointProbe;
    await Promise.all(
      targets.map(async (t) => {
        const [host, endpoint] = await Promise.all([probeHost(t.underlayIp, timeoutMs), probeEndpoint(t.healthIp, timeoutMs)]);
        const prev = this.state.get(t.peer);
        const next = nextPeerHealth(prev, t, host, endpoint, new Date().toISOString());
        if (prev && prev.reachable !== next.reachable) this.o.log.warn(next.reachable ? "peer reachable again" : "peer unreachable", { peer: t.peer, error: next.lastError });
        this.state.set(t.peer, next);
      }),
    );
    // Peers that left the network: forget them here and in etcd.
    const names = new Set(targets.map((t) => t.peer));
    for (const peer of [...this.state.keys()]) if (!names.has(peer)) this.state.delete(peer);
    for (const peer of [...this.published.keys()]) {
      if (names.has(peer)) continue;
      await this.o.publish(peer, undefined).then(() => this.published.delete(peer), (e) => this.o.log.warn("cannot delete a health record", { peer, error: e as Error }));
    }
    for (const p of this.state.values()) {
      if (!needsPublish(this.published.get(p.peer), p, 10 * this.o.intervalMs)) continue;
      await this.o.publish(p.peer, p).then(() => this.published.set(p.peer, p), (e) => this.o.log.warn("cannot publish a health record", { peer: p.peer, error: e as Error }));
    }
    this.rounds++;
    this.o.onRound?.(this.view());
  }
}
