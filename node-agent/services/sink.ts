// Writes a MapTarget into the datapath's service maps in the order of the contract
// (bpf/README.md, "Service load balancing") so the datapath never sees a half-written service:
// backends, reverse-NAT entries and Maglev tables first; then rows (LbServiceMap.set writes
// slots before the count); then what left: rows, Maglev tables, backends, reverse-NAT entries
// last (replies of live flows need them). Only entries that differ are written.
import type { CtMap, LbBackend, LbMaps, LbRevNat, LbService, LbServiceKey } from "../../bpf";
import { LbServiceFlags } from "../../bpf/abi";
import { frontendName, MapTarget } from "./desired";

/** What the sink reads back and writes. */
export interface ServiceMapState {
  backends: Map<number, LbBackend>;
  revNat: Map<number, { vip: string; port: number }>;
}

/** Backend ids and reverse-NAT numbers that tracked flows still use (CT entries of LB, sockets of the socket hooks). */
export function flowsInUse(ct: CtMap, lb: LbMaps): { backends: Set<number>; revNat: Set<number> } {
  const backends = new Set<number>();
  const revNat = new Set<number>();
  for (const e of ct.entries()) {
    if (e.hook !== "service" && e.hook !== "revnat") continue;
    if (e.backendId) backends.add(e.backendId);
    if (e.revNatIndex) revNat.add(e.revNatIndex);
  }
  for (const s of lb.sockNat.entries()) revNat.add(s.revNatIndex);
  return { backends, revNat };
}

const sameBackend = (a: LbBackend, b: LbBackend) => a.addr === b.addr && a.port === b.port && a.proto === b.proto && (a.flags ?? 0) === (b.flags ?? 0);
const sameList = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** What the maps hold, as the sink last read or wrote it. */
interface MapsView {
  services: Map<string, LbServiceKey & LbService>;
  backends: Map<number, LbBackend>;
  revNat: Map<number, LbRevNat>;
  maglev: Map<number, number[]>;
}

export class ServiceMapSink {
  readonly stats = { writes: 0, deletes: 0, fullReads: 0 };
  /**
   * The maps as last written: passes diff against it instead of reading every entry back (at
   * 10,000 services a full read is ~10^5 syscalls). Dropped by resync(), so the next pass reads
   * the maps again (after a restart, and now and then in case something else wrote them).
   */
  private view: MapsView | undefined;

  constructor(private readonly lb: LbMaps) {}

  /** The next pass reads the maps back instead of trusting what this sink wrote. */
  resync(): void {
    this.view = undefined;
  }

  private current(): MapsView {
    if (this.view) return this.view;
    const { lb } = this;
    this.stats.fullReads++;
    for (const stray of lb.services.strays()) (lb.services.deleteSlot(stray, stray.slot), this.stats.deletes++);
    this.view = {
      services: new Map(lb.services.entries().map((r) => [frontendName(r), r])),
      backends: new Map(lb.backends.entries()),
      revNat: new Map(lb.revNat.entries()),
      maglev: new Map(lb.maglev.entries()),
    };
    return this.view;
  }

  /** The backend and reverse-NAT maps as they are (read back after a restart: ids stay stable). */
  read(): ServiceMapState {
    const v = this.current();
    return { backends: new Map(v.backends), revNat: new Map(v.revNat) };
  }

  apply(target: MapTarget): void {
    const { lb } = this;
    const v = this.current();
    const write = (f: () => void) => (f(), this.stats.writes++);
    const del = (f: () => unknown) => (f(), this.stats.deletes++);
    // A failed write leaves the view unknown: the next pass reads the maps again.
    this.view = undefined;

    for (const [id, b] of target.backends) {
      const cur = v.backends.get(id);
      if (!cur || !sameBackend(cur, b)) write(() => lb.backends.set(id, b));
    }
    for (const [n, r] of target.revNat) {
      const cur = v.revNat.get(n);
      if (!cur || cur.vip !== r.vip || cur.port !== r.port) write(() => lb.revNat.set(n, r));
    }
    for (const [n, table] of target.maglev) {
      const cur = v.maglev.get(n);
      if (!cur || !sameList(cur, table)) write(() => lb.maglev.set(n, table));
    }
    const services = new Map<string, LbServiceKey & LbService>();
    for (const [name, s] of target.services) {
      const cur = v.services.get(name);
      const row = { ...s.key, revNatIndex: s.revNatIndex, backendIds: s.backendIds, flags: s.flags, affinityTimeoutS: s.affinityTimeoutS };
      services.set(name, row);
      const same = cur && cur.revNatIndex === s.revNatIndex && (cur.flags ?? 0) === s.flags && (cur.affinityTimeoutS ?? 0) === s.affinityTimeoutS && sameList(cur.backendIds, s.backendIds);
      if (same) continue;
      write(() => lb.services.set(s.key, { revNatIndex: s.revNatIndex, backendIds: s.backendIds, flags: s.flags, affinityTimeoutS: s.affinityTimeoutS }));
      // Affinity switched off: its sessions must not pin new flows when it is switched on again.
      if (cur && (cur.flags ?? 0) & LbServiceFlags.AFFINITY && !(s.flags & LbServiceFlags.AFFINITY)) lb.affinity.deleteService(s.revNatIndex);
    }
    for (const [name, cur] of v.services) {
      if (target.services.has(name)) continue;
      del(() => lb.services.delete(cur));
      if ((cur.flags ?? 0) & LbServiceFlags.AFFINITY) lb.affinity.deleteService(cur.revNatIndex);
    }
    for (const n of v.maglev.keys()) if (!target.maglev.has(n)) del(() => lb.maglev.delete(n));
    for (const id of v.backends.keys()) if (!target.backends.has(id)) del(() => lb.backends.delete(id));
    for (const n of v.revNat.keys()) if (!target.revNat.has(n)) del(() => lb.revNat.delete(n));
    this.view = { services, backends: new Map(target.backends), revNat: new Map(target.revNat), maglev: new Map(target.maglev) };
  }
}
