// Maglev consistent hashing (Eisenbud et al., NSDI 2016), pure. Each backend has its own
// permutation of the M table positions (offset + j·skip mod M, M prime so every skip walks all
// positions); backends take turns claiming their next free position until the table is full.
// Every host computes the same table from the same backend names, whatever order it learned
// them in, and a backend set change moves only a small share of entries (the removed backend's,
// plus few others). The datapath indexes it with lbFlowHash(tuple) % M (bpf/README.md).
import { createHash } from "crypto";
import { MAGLEV_M } from "../../bpf/abi";

/** offset and skip of a backend's permutation, from a hash of its name (same on every host). */
export function permutationOf(name: string, m = MAGLEV_M): { offset: number; skip: number } {
  const d = createHash("sha256").update(name).digest();
  return { offset: d.readUInt32BE(0) % m, skip: (d.readUInt32BE(4) % (m - 1)) + 1 };
}

/**
 * The table: for each of the M positions, the backend (by name) a flow hashing there goes to.
 * Empty when there is no backend. Names are deduplicated and sorted first, so the table depends
 * only on the set.
 */
export function maglevTable(names: readonly string[], m = MAGLEV_M): string[] {
  const backends = [...new Set(names)].sort();
  if (backends.length === 0) return [];
  const perms = backends.map((n) => permutationOf(n, m));
  const next = new Array<number>(backends.length).fill(0);
  const entry = new Array<number>(m).fill(-1);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < backends.length; i++) {
      const { offset, skip } = perms[i];
      let c = (offset + next[i] * skip) % m;
      while (entry[c] >= 0) {
        next[i]++;
        c = (offset + next[i] * skip) % m;
      }
      entry[c] = i;
      next[i]++;
      if (++filled === m) return entry.map((i) => backends[i]);
    }
  }
}
