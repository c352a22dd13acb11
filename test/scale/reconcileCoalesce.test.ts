// The reconciler's coalescing window: kicks that arrive while a pass runs or within the window
// after it make one more pass, not one each (a pass recomputes a whole map: docs/scale.md).
import { silentLogger } from "../../node-agent/daemon/log";
import { Reconciler } from "../../node-agent/daemon/reconcile";

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
