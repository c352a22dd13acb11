// Puts computed policy into the datapath's pinned maps (bpfnet_ipcache, bpfnet_policy and the
// flags of bpfnet_endpoints) without a window in which a denied packet passes:
//   1. ipcache rows added or changed (a new peer is known before a row names it)
//   2. per endpoint: policy rows added or changed, then its flags, then its stale rows deleted
//      (enforcement turns on only after its allows are in, off before they go)
//   3. rows of endpoints that are no longer computed
//   4. stale ipcache rows
// The current state is read back from the maps each time, so a restarted agent continues from
// what the previous one left pinned; until its first pass nothing is removed.
import type { EndpointMap, IpcacheMap, PolicyMap } from "../../bpf/maps";
import { EndpointFlags } from "../../bpf/abi";
import { ComputedPolicy, PolicyEntry } from "../policy/compute";
import { diffRows, planEndpoint } from "../policy/plan";
import type { PolicySink } from "./policy";

export interface PolicyMaps {
  ipcache: IpcacheMap;
  policy: PolicyMap;
  endpoints: EndpointMap;
}

export class DatapathPolicySink implements PolicySink {
  /**
   * Endpoint number → the flags this sink applied. The endpoint-map reconciler writes these
   * too (never 0 over them); it starts as what the pinned map holds, so a restart keeps
   * enforcement on until the first pass says otherwise.
   */
  readonly flags = new Map<number, number>();
  readonly stats = { passes: 0, rowsWritten: 0, rowsDeleted: 0, ipcacheWritten: 0, ipcacheDeleted: 0, flagChanges: 0 };

  constructor(private readonly maps: PolicyMaps) {
    // Policy's bits only: TRACE belongs to the node monitor (a trace left by a previous agent goes).
    for (const [, ep] of maps.endpoints.entries()) {
      const flags = (ep.flags ?? 0) & ~EndpointFlags.TRACE;
      if (flags) this.flags.set(ep.endpointId, flags);
    }
  }

  flagsOf(endpointNumber: number): number {
    return this.flags.get(endpointNumber) ?? 0;
  }

  apply(computed: ComputedPolicy, ipcache: Map<string, number>): void {
    const { maps } = this;
    const ipDiff = diffRows(new Map(maps.ipcache.entries()), ipcache, (a, b) => a === b);
    for (const [cidr, id] of ipDiff.upserts) maps.ipcache.set(cidr, id);
    this.stats.ipcacheWritten += ipDiff.upserts.length;

    const rows = new Map<number, PolicyEntry[]>();
    for (const r of maps.policy.entries()) rows.set(r.endpointId, [...(rows.get(r.endpointId) ?? []), r]);
    for (const ep of computed.endpoints) {
      const plan = planEndpoint(this.flagsOf(ep.endpointId), rows.get(ep.endpointId) ?? [], ep);
      for (const r of plan.upserts) maps.policy.set(r);
      if (plan.flags !== undefined) this.setFlags(ep.endpointId, plan.flags);
      for (const r of plan.deletes) maps.policy.delete(r);
      this.stats.rowsWritten += plan.upserts.length;
      this.stats.rowsDeleted += plan.deletes.length;
      rows.delete(ep.endpointId);
    }
    // Endpoints gone (or without an identity): no enforcement, no rows.
    for (const [n, stale] of rows) {
      this.setFlags(n, 0);
      for (const r of stale) maps.policy.delete(r);
      this.stats.rowsDeleted += stale.length;
    }
    for (const n of [...this.flags.keys()]) if (!computed.endpoints.some((e) => e.endpointId === n)) this.setFlags(n, 0);

    for (const cidr of ipDiff.deletes) maps.ipcache.delete(cidr);
    this.stats.ipcacheDeleted += ipDiff.deletes.length;
    this.stats.passes++;
  }

  /** Writes the flags into the endpoint's map entry (if plumbed) and remembers them. */
  private setFlags(endpointNumber: number, flags: number): void {
    if (flags) this.flags.set(endpointNumber, flags);
    else this.flags.delete(endpointNumber);
    for (const [ip, ep] of this.maps.endpoints.entries()) {
      const withTrace = flags | ((ep.flags ?? 0) & EndpointFlags.TRACE); // the monitor's bit stays
      if (ep.endpointId === endpointNumber && (ep.flags ?? 0) !== withTrace) {
        this.maps.endpoints.set(ip, { ...ep, flags: withTrace });
        this.stats.flagChanges++;
      }
    }
  }
}
