// How to move a BPF map from what it holds to what it should hold without a window in which a
// denied packet passes or an allowed one drops. Pure: the reconciler executes the steps in order.
import { EndpointPolicy, PolicyEntry, entryKey } from "./compute";

/** Rows to write (new or changed) and keys to delete, of any keyed table. */
export interface RowDiff<V> {
  upserts: [string, V][];
  deletes: string[];
}

export function diffRows<V>(current: ReadonlyMap<string, V>, desired: ReadonlyMap<string, V>, same: (a: V, b: V) => boolean = (a, b) => JSON.stringify(a) === JSON.stringify(b)): RowDiff<V> {
  const upserts: [string, V][] = [];
  for (const [k, v] of desired) {
    const had = current.get(k);
    if (had === undefined || !same(had, v)) upserts.push([k, v]);
  }
  const deletes = [...current.keys()].filter((k) => !desired.has(k));
  return { upserts, deletes };
}

/** The same diff for the given keys only (an incremental pass over the rows a change touched). */
export function diffKeys<V>(keys: Iterable<string>, current: ReadonlyMap<string, V>, desired: (key: string) => V | undefined, same: (a: V, b: V) => boolean): RowDiff<V> {
  const upserts: [string, V][] = [];
  const deletes: string[] = [];
  for (const k of keys) {
    const want = desired(k);
    const had = current.get(k);
    if (want === undefined) {
      if (had !== undefined) deletes.push(k);
    } else if (had === undefined || !same(had, want)) upserts.push([k, want]);
  }
  return { upserts, deletes };
}

export interface EndpointPlan {
  endpointId: number;
  /** 1. Write these entries: new allows are in place before enforcement turns on. */
  upserts: PolicyEntry[];
  /** 2. Then the flags, when they change (undefined: leave them). */
  flags?: number;
  /** 3. Last, remove these: enforcement is already off when an endpoint is opened. */
  deletes: PolicyEntry[];
}

/**
 * The steps for one endpoint. Upserts before the flags switch enforcement on; the flags switch
 * it off before deletes remove its allows; an allow removed while enforcement stays cuts the
 * flow only once the upserts (maybe its replacement) are in.
 */
export function planEndpoint(currentFlags: number, current: PolicyEntry[], desired: Omit<EndpointPolicy, "http">): EndpointPlan {
  const byKey = (es: PolicyEntry[]) => new Map(es.map((e) => [entryKey(e), e]));
  const cur = byKey(current);
  const d = diffRows(cur, byKey(desired.entries));
  return {
    endpointId: desired.endpointId,
    upserts: d.upserts.map(([, e]) => e),
    ...(currentFlags !== desired.flags ? { flags: desired.flags } : {}),
    deletes: d.deletes.map((k) => cur.get(k)!),
  };
}

/** True when the plan changes nothing. */
export function isEmptyPlan(p: EndpointPlan): boolean {
  return p.upserts.length === 0 && p.deletes.length === 0 && p.flags === undefined;
}
