// The allocator's free-slot hint: which pool slots this process believes are taken, read once
// and kept up to date by its own claims, conflicts and releases, so a dense pool costs one
// round trip per allocation instead of a failed guess, a scan of every CIDR key and a retry.
// Each process walks the pool from its own random cursor (concurrent allocators start far
// apart) and reserves a slot while its claim is in flight (concurrent allocations of one
// process never pick the same one). A hint is never trusted for correctness: every claim is
// a transaction that compares the slot's key absent and the config unchanged.
//
// Pulumi's engine runs all dynamic resources in one provider process but deserializes each
// resource's provider separately: the hints live on globalThis (as the router channels do).

/** The globalThis key; bumped when the shape changes (old and new provider code may share a process). */
const REGISTRY = "__bpfnetFreeSlotHints_v1";

/**
 * A plain object and functions, not a class: Pulumi's closure serialization of the provider
 * does not carry class field initializers.
 */
export interface FreeSlotHint<P = unknown> {
  /** What the hint was read from (the pool at a config revision): a changed pool makes it void. */
  readonly pool: P;
  readonly total: number;
  readonly used: Set<number>;
  /** Slots whose claim is in flight in this process. */
  readonly reserved: Set<number>;
  cursor: number;
}

export function newHint<P>(pool: P, total: number, used: Iterable<number>, random: () => number = Math.random): FreeSlotHint<P> {
  return { pool, total, used: new Set(used), reserved: new Set(), cursor: Math.floor(random() * total) };
}

/** Believed free and not reserved: the `preferred` slot if so, else the next from the cursor; reserves it. */
export function takeSlot(h: FreeSlotHint, preferred: number): number | undefined {
  const free = (i: number) => !h.used.has(i) && !h.reserved.has(i);
  let pick: number | undefined = free(preferred) ? preferred : undefined;
  for (let n = 0; pick === undefined && n < h.total; n++) {
    const i = (h.cursor + n) % h.total;
    if (free(i)) pick = i;
  }
  if (pick === undefined) return undefined;
  h.reserved.add(pick);
  if (pick !== preferred) h.cursor = (pick + 1) % h.total;
  return pick;
}

/** The claim of `i` succeeded, or lost to someone else: either way it is taken now. */
export function slotTaken(h: FreeSlotHint, i: number): void {
  h.reserved.delete(i);
  h.used.add(i);
}

/** The claim of `i` was not made (it failed for another reason): hand it back. */
export function unreserveSlot(h: FreeSlotHint, i: number): void {
  h.reserved.delete(i);
}

/** Slot `i` was released. */
export function slotFreed(h: FreeSlotHint, i: number): void {
  h.used.delete(i);
}

function registry(): Map<string, FreeSlotHint> {
  const g = globalThis as unknown as Record<string, Map<string, FreeSlotHint> | undefined>;
  return (g[REGISTRY] ??= new Map());
}

/** The hint of `scope` (the cluster's endpoints and the network's prefix), if any. */
export function hintFor<P>(scope: string): FreeSlotHint<P> | undefined {
  return registry().get(scope) as FreeSlotHint<P> | undefined;
}

export function setHint<P>(scope: string, hint: FreeSlotHint<P> | undefined): void {
  if (hint) registry().set(scope, hint);
  else registry().delete(scope);
}
