// Maglev table properties: permutations cover every position, the table is full and balanced,
// it depends only on the backend set, and a backend change moves few entries.
import { MAGLEV_M } from "../../bpf/abi";
import { maglevTable, permutationOf } from "../../node-agent/services/maglev";

const names = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `10.1.${(from + i) >> 8}.${(from + i) & 255}:8080/6`);
const moved = (a: string[], b: string[]) => a.filter((x, i) => x !== b[i]).length;

test("M is prime and every backend's permutation visits each position once", () => {
  expect(Array.from({ length: MAGLEV_M - 2 }, (_, i) => i + 2).some((d) => MAGLEV_M % d === 0)).toBe(false);
  for (const name of names(20)) {
    const { offset, skip } = permutationOf(name);
    expect(skip).toBeGreaterThanOrEqual(1);
    expect(skip).toBeLessThan(MAGLEV_M);
    const seen = new Set(Array.from({ length: MAGLEV_M }, (_, j) => (offset + j * skip) % MAGLEV_M));
    expect(seen.size).toBe(MAGLEV_M);
  }
  // Different backends get different permutations.
  expect(new Set(names(20).map((n) => JSON.stringify(permutationOf(n)))).size).toBe(20);
});

test("the table is full, balanced, and depends only on the backend set", () => {
  expect(maglevTable([])).toEqual([]);
  expect(maglevTable(["a"])).toEqual(new Array(MAGLEV_M).fill("a"));
  for (const n of [2, 3, 7, 50]) {
    const set = names(n);
    const t = maglevTable(set);
    expect(t).toHaveLength(MAGLEV_M);
    const counts = set.map((b) => t.filter((x) => x === b).length);
    // Each backend gets floor(M/N) or ceil(M/N) entries (the turns stop when the table is full).
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(Math.floor(MAGLEV_M / n));
    expect(Math.max(...counts)).toBeLessThanOrEqual(Math.ceil(MAGLEV_M / n));
    // Another order, duplicates: the same table (every host agrees).
    expect(maglevTable([...set].reverse().concat(set[0]))).toEqual(t);
  }
});

test("removing or adding a backend moves few entries besides the ones it must", () => {
  for (const n of [3, 10, 20]) {
    const set = names(n);
    const before = maglevTable(set);
    // Remove one: its entries must move; of the others' entries, few move.
    const gone = set[1];
    const after = maglevTable(set.filter((b) => b !== gone));
    const forced = before.filter((b) => b === gone).length;
    const extra = moved(before, after) - forced;
    expect(after.includes(gone)).toBe(false);
    expect(extra / MAGLEV_M).toBeLessThan(0.1);
    // Add one: it takes about its share, and few entries move between the old backends.
    const added = maglevTable([...set, names(1, 999)[0]]);
    const toNew = added.filter((b) => b === names(1, 999)[0]).length;
    expect(toNew).toBeGreaterThanOrEqual(Math.floor(MAGLEV_M / (n + 1)));
    expect((moved(before, added) - toNew) / MAGLEV_M).toBeLessThan(0.1);
    // Far better than a modulo table, where a removal moves about (N-1)/N of the flows.
    const modulo = (s: string[]) => Array.from({ length: MAGLEV_M }, (_, i) => s[i % s.length]);
    expect(moved(before, after)).toBeLessThan(moved(modulo(set), modulo(set.filter((b) => b !== gone))));
  }
});
