// Writes a MapTarget into the datapath's service maps in the order of the contract
// (bpf/README.md, "Service load balancing") so the datapath never sees a half-written service:
// backends, reverse-NAT entries and Maglev tables first; then rows (LbServiceMap.set writes
// slots before the count); then what left: rows, Maglev tables, backends, reverse-NAT entries
// last (replies of live flows need them). Only entries that differ are written.
import type { CtMap, LbBackend, LbMaps } from "../../bpf";
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

export class ServiceMapSink {
  readonly stats = { writes: 0, deletes: 0 };

  constructor(private readonly lb: LbMaps) {}

  /** The backend and reverse-NAT maps as they are (read back after a restart: ids stay stable). */
  read(): ServiceMapState {
    return { backends: new Map(this.lb.backends.entries()), revNat: new Map(this.lb.revNat.entries()) };
  }

  apply(target: MapTarget): void {
    const { lb } = this;
    const write = (f: () => void) => (f(), this.stats.writes++);
    const del = (f: () => unknown) => (f(), this.stats.deletes++);

    for (const [id, b] of target.backends) {
      const cur = lb.backends.get(id);
      if (!cur || !sameBackend(cur, b)) write(() => lb.backends.set(id, b));
    }
    for (const [n, r] of target.revNat) {
      const cur = lb.revNat.get(n);
      if (!cur || cur.vip !== r.vip || cur.port !== r.port) write(() => lb.revNat.set(n, r));
    }
    for (const [n, table] of target.maglev) {
      const cur = lb.maglev.get(n);
      if (!cur || !sameList(cur, table)) write(() => lb.maglev.set(n, table));
    }
    const rows = lb.services.entries();
    const current = new Map(rows.map((r) => [frontendName(r), r]));
    for (const [name, s] of target.services) {
      const cur = current.get(name);
      const same = cur && cur.revNatIndex === s.revNatIndex && (cur.flags ?? 0) === s.flags && (cur.affinityTimeoutS ?? 0) === s.affinityTimeoutS && sameList(cur.backendIds, s.backendIds);
      if (same) continue;
      write(() => lb.services.set(s.key, { revNatIndex: s.revNatIndex, backendIds: s.backendIds, flags: s.flags, affinityTimeoutS: s.affinityTimeoutS }));
      // Affinity switched off: its sessions must not pin new flows when it is switched on again.
      if (cur && cur.flags !== undefined && cur.flags & LbServiceFlags.AFFINITY && !(s.flags & LbServiceFlags.AFFINITY)) lb.affinity.deleteService(s.revNatIndex);
    }
    for (const [name, cur] of current) {
      if (target.services.has(name)) continue;
      del(() => lb.services.delete(cur));
      lb.affinity.deleteService(cur.revNatIndex);
    }
    for (const stray of lb.services.strays()) del(() => lb.services.deleteSlot(stray, stray.slot));
    for (const [n] of lb.maglev.entries()) if (!target.maglev.has(n)) del(() => lb.maglev.delete(n));
    for (const [id] of lb.backends.entries()) if (!target.backends.has(id)) del(() => lb.backends.delete(id));
    for (const [n] of lb.revNat.entries()) if (!target.revNat.has(n)) del(() => lb.revNat.delete(n));
  }
}
