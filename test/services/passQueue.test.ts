// PassQueue (the policy and service agents' passes): passes never overlap, a burst of kicks
// while one runs makes exactly one more, a failure is counted and the next pass still runs,
// nothing runs while not ready or after stop().
import { createLogger } from "../../node-agent/daemon/log";
import { PassQueue } from "../../node-agent/daemon/passQueue";

test("passes never overlap and kicks during a pass coalesce into one more", async () => {
  const lines: string[] = [];
  const log = createLogger("warn", "test", (l) => void lines.push(l));
  const stats = { passes: 0, errors: 0, lastError: "" };
  let running = 0;
  let maxRunning = 0;
  let release: () => void = () => undefined;
  let fail = false;
  const q = new PassQueue(
    "test",
    async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise<void>((r) => (release = r));
      running--;
      if (fail) throw new Error("boom");
    },
    stats,
    log,
  );
  const first = q.kick();
  await new Promise((r) => setImmediate(r));
  expect(running).toBe(1);
  const burst = [q.kick(), q.kick(), q.kick()];
  release();
  await first;
  await new Promise((r) => setImmediate(r));
  expect(running).toBe(1); // the one coalesced pass
  fail = true;
  release();
  await Promise.all(burst);
  expect(stats).toEqual({ passes: 1, errors: 1, lastError: "boom" });
  expect(maxRunning).toBe(1);
  expect(lines.join("")).toContain("test pass failed");

  // After stop(): kicks run nothing.
  await q.stop();
  await q.kick();
  expect(stats.passes + stats.errors).toBe(2);
});

test("a kick while not ready runs nothing", async () => {
  const stats = { passes: 0, errors: 0, lastError: "" };
  let ready = false;
  let runs = 0;
  const q = new PassQueue("test", () => void runs++, stats, createLogger("error", "test", () => undefined), () => ready);
  await q.kick();
  expect(runs).toBe(0);
  ready = true;
  await q.kick();
  expect(runs).toBe(1);
});
