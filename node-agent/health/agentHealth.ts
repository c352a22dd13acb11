// The agent's health component: its health endpoint, then the prober, and their state for the
// API. Started once the agent is ready; a failure to make the endpoint is reported (status,
// log) and retried, and never stops the agent.
import type { Logger } from "../daemon/log";
import type { HealthStatus } from "../api/types";
import { EndpointOps, HealthEndpoint } from "./endpoint";
import { HealthProber } from "./prober";
import { PeerHealth, ProbeTarget } from "./view";

export interface AgentHealthOptions {
  endpoints: EndpointOps;
  intervalSeconds: number;
  targets: () => ProbeTarget[];
  /** Writes (or deletes) this host's record about `peer`. */
  publish: (peer: string, health: PeerHealth | undefined) => Promise<void>;
  /** The endpoint's address changed: the node record must carry it. */
  onEndpoint: (ip: string | undefined) => void;
  onRound?: (view: PeerHealth[]) => void;
  log: Logger;
}

export class AgentHealth {
  private readonly endpoint: HealthEndpoint;
  private readonly prober: HealthProber;
  private error: string | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  private starting: Promise<void> | undefined;

  constructor(private readonly o: AgentHealthOptions) {
    this.endpoint = new HealthEndpoint(o.endpoints);
    this.prober = new HealthProber({ intervalMs: o.intervalSeconds * 1000, targets: o.targets, publish: o.publish, log: o.log, ...(o.onRound ? { onRound: o.onRound } : {}) });
  }

  get ip(): string | undefined {
    return this.endpoint.endpoint?.ip;
  }

  /** This host's view of its peers (view.ts: `peerReachable(view, peer)`). */
  view(): PeerHealth[] {
    return this.prober.view();
  }

  start(): void {
    this.prober.start();
    this.starting = this.startEndpoint();
  }

  private async startEndpoint(): Promise<void> {
    try {
      const ep = await this.endpoint.start();
      this.error = undefined;
      this.o.log.info("health endpoint ready", { ip: ep.ip, responder: this.endpoint.responderPid });
      this.o.onEndpoint(ep.ip);
    } catch (e) {
      this.error = `health endpoint: ${(e as Error).message}`;
      this.o.log.warn("cannot start the health endpoint; retrying", { error: e as Error });
      await this.endpoint.stop().catch(() => undefined);
      if (!this.stopped) {
        this.retry = setTimeout(() => (this.starting = this.startEndpoint()), this.o.intervalSeconds * 1000);
        this.retry.unref();
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.starting?.catch(() => undefined);
    await this.prober.stop();
    await this.endpoint.stop();
  }

  status(): HealthStatus {
    const ep = this.endpoint.endpoint;
    return {
      intervalSeconds: this.o.intervalSeconds,
      ...(ep ? { endpoint: { ip: ep.ip, ...(this.endpoint.responderPid ? { responderPid: this.endpoint.responderPid } : {}) } } : {}),
      ...(this.error ? { error: this.error } : {}),
      rounds: this.prober.rounds,
      peers: this.prober.view(),
    };
  }
}
