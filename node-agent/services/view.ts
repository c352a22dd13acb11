// The agent's view of what services depend on in etcd: the service records and every host's
// endpoint records (address and labels). Fed by prefix-watch batches; pure. Nothing is computed
// before both subtrees were listed once (`synced`), so a partial view never removes a row.
import { endpointsDir, serviceSpecsDir } from "../../provider/etcd/keys";
import { parseIpv4 } from "../../provider/ipam/cidr";
import { parseStoredService, StoredService } from "../../provider/services/serviceSpec";
import type { WatchBatch } from "../daemon/watch";
import type { ServiceEndpoint } from "./desired";

export class ServiceInputs {
  readonly services = new Map<string, StoredService>();
  /** Service records that do not parse or validate (hand edits), with why: ignored, reported. */
  readonly problems = new Map<string, string[]>();
  /** Endpoint record key → host, address, labels. */
  readonly endpoints = new Map<string, ServiceEndpoint>();
  readonly synced = { services: false, endpoints: false };

  constructor(readonly prefix: string) {}

  get allSynced(): boolean {
    return this.synced.services && this.synced.endpoints;
  }

  applyServices(b: WatchBatch): void {
    const dir = serviceSpecsDir(this.prefix);
    for (const ev of b.events) {
      const name = ev.key.slice(dir.length);
      if (!ev.key.startsWith(dir) || name === "" || name.includes("/")) continue;
      this.services.delete(name);
      this.problems.delete(name);
      if (ev.type === "delete") continue;
      const { service, problems } = parseStoredService(ev.value);
      if (service && service.serviceName === name) this.services.set(name, service);
      else this.problems.set(name, service ? [`names itself ${JSON.stringify(service.serviceName)}`] : problems);
    }
    if (b.relist) this.synced.services = true;
  }

  applyEndpoints(b: WatchBatch): void {
    for (const ev of b.events) {
      if (!ev.key.startsWith(endpointsDir(this.prefix))) continue;
      const ep = ev.type === "put" ? parseServiceEndpoint(ev.value) : undefined;
      if (ep) this.endpoints.set(ev.key, ep);
      else this.endpoints.delete(ev.key);
    }
    if (b.relist) this.synced.endpoints = true;
  }
}

/** Host, address and labels of an endpoint record; undefined when it has no valid address. */
export function parseServiceEndpoint(text: string): ServiceEndpoint | undefined {
  try {
    const v = JSON.parse(text);
    if (!v || typeof v !== "object" || typeof v.ip !== "string" || parseIpv4(v.ip) === undefined || typeof v.host !== "string") return undefined;
    const labels: Record<string, string> = {};
    if (v.labels && typeof v.labels === "object") for (const [k, l] of Object.entries(v.labels)) if (typeof l === "string") labels[k] = l;
    return { host: v.host, ip: v.ip, labels };
  } catch {
    return undefined;
  }
}
