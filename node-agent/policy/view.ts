// The agent's view of what policy depends on in etcd: policies, identities and every host's
// endpoint records (their addresses and identities, for the ipcache). Fed by prefix-watch
// batches; pure. Nothing is computed from a subtree before it was listed once (`synced`), so a
// partial view never removes a row.
import { endpointsDir, identitiesDir, policiesDir } from "../../provider/etcd/keys";
import { parseIpv4 } from "../../provider/ipam/cidr";
import { PolicySpec, parseStoredPolicy } from "../../provider/policy/policySpec";
import { Labels } from "./identity";
import { parseIdentityRecord } from "./identityAllocator";
import { IpcacheRows } from "./ipcache";
import type { WatchBatch } from "../daemon/watch";

export interface PeerEndpoint {
  ip: string;
  identity: number;
}

export class PolicyInputs {
  readonly policies = new Map<string, PolicySpec>();
  /** Policy records that do not parse or validate (hand edits), with why: ignored, reported. */
  readonly problems = new Map<string, string[]>();
  readonly identities = new Map<number, Labels>();
  /**
   * The ipcache's rows: every endpoint record's claim (address and identity; records without an
   * identity make none), kept as they arrive; the agent adds its own sources. The records
   * themselves are not kept beside them (at 5,000 hosts × 10 endpoints that is ~6 MiB per agent).
   */
  readonly ipcache = new IpcacheRows();
  readonly synced = { policies: false, identities: false, endpoints: false };

  constructor(readonly prefix: string) {}

  get allSynced(): boolean {
    return this.synced.policies && this.synced.identities && this.synced.endpoints;
  }

  applyPolicies(b: WatchBatch): void {
    const dir = policiesDir(this.prefix);
    for (const ev of b.events) {
      const name = ev.key.slice(dir.length);
      if (!ev.key.startsWith(dir) || name === "" || name.includes("/")) continue;
      this.policies.delete(name);
      this.problems.delete(name);
      if (ev.type === "delete") continue;
      const { policy, problems } = parseStoredPolicy(ev.value);
      if (policy && policy.policyName === name) {
        const { schema: _s, policyId: _i, ...spec } = policy;
        this.policies.set(name, spec);
      } else this.problems.set(name, policy ? [`names itself ${JSON.stringify(policy.policyName)}`] : problems);
    }
    if (b.relist) this.synced.policies = true;
  }

  applyIdentities(b: WatchBatch): void {
    for (const ev of b.events) {
      const m = /^id\/([0-9]{1,8})$/.exec(ev.key.slice(identitiesDir(this.prefix).length));
      if (!m) continue; // the per-host use keys are the allocator's business
      const id = Number(m[1]);
      const rec = ev.type === "put" ? parseIdentityRecord(this.prefix, { key: ev.key, value: ev.value, createRevision: 0, modRevision: ev.modRevision }) : undefined;
      if (rec) this.identities.set(id, rec.labels);
      else this.identities.delete(id);
    }
    if (b.relist) this.synced.identities = true;
  }

  applyEndpoints(b: WatchBatch): void {
    for (const ev of b.events) {
      if (!ev.key.startsWith(endpointsDir(this.prefix))) continue;
      this.ipcache.setRecord(ev.key, ev.type === "put" ? parseEndpointIdentity(ev.value) : undefined, ev.modRevision);
    }
    if (b.relist) this.synced.endpoints = true;
  }
}

/** Address and identity of an endpoint record; undefined when it has no valid pair. */
export function parseEndpointIdentity(text: string): PeerEndpoint | undefined {
  try {
    const v = JSON.parse(text);
    if (!v || typeof v !== "object" || typeof v.ip !== "string" || parseIpv4(v.ip) === undefined) return undefined;
    if (!Number.isInteger(v.identity) || v.identity < 1 || v.identity >= 2 ** 24) return undefined;
    return { ip: v.ip, identity: v.identity };
  } catch {
    return undefined;
  }
}
