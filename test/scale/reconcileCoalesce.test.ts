// The reconciler's coalescing window: kicks that arrive while a pass runs or within the window
// after it make one more pass, not one each (a pass recomputes a whole map: docs/scale.md).
import { silentLogger } from "../../node-agent/daemon/log";
import { coalesceWait, MAX_COALESCE_WAIT_MS, Reconciler, WINDOW_PER_PASS } from "../../node-agent/daemon/reconcile";

function counting(desired: Map<string, number>) {
  const actual = new Map<string, number>();
  let passes = 0;
  const target = {
    name: "counting",
    desired: () => {
      passes++;
      return desired;
    },
    actual: () => actual,
    equal: (a: number, b: number) => a === b,
    upsert: (k: string, v: number) => void actual.set(k, v),
    remove: (k: string) => void actual.delete(k),
  };
  return { target, actual, passes: () => passes };
}

test("without a window every settled kick is a pass; with one, a burst of kicks is one more pass and the map still converges", async () => {
  const want = new Map<string, number>();
  const plain = counting(want);
  const r0 = new Reconciler(plain.target, silentLogger, 3_600_000);
  r0.start();
  await r0.settled();
  for (let i = 0; i < 20; i++) {
    want.set(`k${i}`, i);
    r0.kick();
    await r0.settled();
  }
  expect(plain.passes()).toBe(21);
  expect(plain.actual).toEqual(want);
  await r0.stop();

  const windowed = counting(want);
  const r1 = new Reconciler(windowed.target, silentLogger, 3_600_000, {}, 300);
  r1.start();
  // Let the first pass run; it then waits out its window. The kicks below are synchronous, so
  // whether or not the window is over they all land before the next pass starts.
  while (windowed.passes() === 0) await new Promise((r) => setImmediate(r));
  for (let i = 20; i < 70; i++) {
    want.set(`k${i}`, i);
    r1.kick();
  }
  await r1.settled();
  expect(windowed.passes()).toBe(2);
  expect(windowed.actual).toEqual(want);
  await r1.stop();
});

test("the window grows with the pass: at least WINDOW_PER_PASS passes' time, so recomputing never takes more than a fifth of the agent", async () => {
  expect(coalesceWait(0, 500)).toBe(0); // no window: unchanged
  expect(coalesceWait(50, 2)).toBe(50); // a cheap pass: the configured window
  expect(coalesceWait(50, 30)).toBe(30 * WINDOW_PER_PASS); // a pass of a large map: proportional
  expect(coalesceWait(50, 900)).toBe(MAX_COALESCE_WAIT_MS); // one slow pass (GC, a starved CPU): capped
  expect(coalesceWait(800, 900)).toBe(800); // never below the configured window
  expect(WINDOW_PER_PASS).toBeGreaterThanOrEqual(1);

  // A real reconciler whose pass takes >= 80 ms (a map too big to recompute cheaply) with a 10 ms
  // window: the next pass starts no sooner than WINDOW_PER_PASS x 80 ms after the first ended.
  const want = new Map([["k", 1]]);
  const slow = counting(want);
  const starts: number[] = [];
  const ends: number[] = [];
  const target = {
    ...slow.target,
    desired: () => {
      starts.push(Date.now());
      const until = Date.now() + 80;
      while (Date.now() < until); // the pass's own work
      return slow.target.desired();
    },
    upsert: (k: string, v: number) => {
      slow.target.upsert(k, v);
      ends.push(Date.now());
    },
  };
  const r = new Reconciler(target, silentLogger, 3_600_000, {}, 10);
  r.start();
  while (ends.length === 0) await new Promise((res) => setTimeout(res, 5));
  want.set("k", 2);
  r.kick();
  while (starts.length < 2) await new Promise((res) => setTimeout(res, 5));
  expect(starts[1] - ends[0]).toBeGreaterThanOrEqual(WINDOW_PER_PASS * 80 - 5);
  await r.settled();
  expect(slow.actual.get("k")).toBe(2);
  await r.stop();
});
