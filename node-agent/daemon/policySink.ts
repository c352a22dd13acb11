// Puts computed policy into the datapath's pinned maps (bpfnet_ipcache, bpfnet_policy and the
// flags of bpfnet_endpoints) without a window in which a denied packet passes:
//   1. ipcache rows added or changed (a new peer is known before a row names it)
//   2. per endpoint: policy rows added or changed, then its flags, then its stale rows deleted
//      (enforcement turns on only after its allows are in, off before they go)
//   3. rows of endpoints that are no longer computed
//   4. stale ipcache rows
// The current state is read back from the maps on a full pass (the first, the periodic one), so
// a restarted agent continues from what the previous one left pinned; until its first pass
// nothing is removed. Between full passes the ipcache is diffed over the rows a change touched
// only, against what this sink wrote (an LPM lookup answers the longest prefix, not the row).
import type { EndpointMap, IpcacheMap, PolicyMap } from "../../bpf/maps";
import { EndpointFlags } from "../../bpf/abi";
import { ComputedPolicy, PolicyEntry } from "../policy/compute";
import type { IpcacheRows } from "../policy/ipcache";
import { diffKeys, diffRows, planEndpoint } from "../policy/plan";
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

  /** The ipcache's rows as of the last full pass and this sink's writes since. */
  private ipcache = new Map<string, number>();

  apply(computed: ComputedPolicy | undefined, rows: IpcacheRows, changed: ReadonlySet<string> | undefined): void {
    const { maps } = this;
    if (changed === undefined) this.ipcache = new Map(maps.ipcache.entries());
    const same = (a: number, b: number) => a === b;
    const ipDiff = changed === undefined ? diffRows(this.ipcache, rows.rows(), same) : diffKeys(changed, this.ipcache, (k) => rows.row(k), same);
    for (const [cidr, id] of ipDiff.upserts) {
      maps.ipcache.set(cidr, id);
      this.ipcache.set(cidr, id);
    }
    this.stats.ipcacheWritten += ipDiff.upserts.length;
    if (computed) this.applyPolicy(computed);
    for (const cidr of ipDiff.deletes) {
      maps.ipcache.delete(cidr);
      this.ipcache.delete(cidr);
    }
    this.stats.ipcacheDeleted += ipDiff.deletes.length;
    this.stats.passes++;
  }

  private applyPolicy(computed: ComputedPolicy): void {
    const { maps } = this;

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
