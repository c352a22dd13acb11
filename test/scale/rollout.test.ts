// The agents' rolling-update gate: updates of one network restart at most maxUnavailable agents
// at once, in arrival order, while other networks (and first creates, which never take the
// gate) are not held; maxUnavailable is checked at preview, naming the field and the value.
import { networkArgsProblems } from "../../components/networkValidation";
import type { NetworkArgs } from "../../components/network";
import { nodeAgentProvider } from "../../provider/agent/nodeAgent";
import { maxUnavailableProblem, rolling, rolloutPeak } from "../../provider/agent/rollout";

const HOSTILE: unknown[] = [0, -1, 1.5, 1001, NaN, null, "1", "1; rm -rf /", "$(reboot)", "`id`", "1\n2", "..", "'1'", '"2"', "a b", [1], { n: 1 }];

test.each(HOSTILE)("maxUnavailable %j is refused, naming the field and the value", (bad) => {
  const p = maxUnavailableProblem("agents.maxUnavailable", bad);
  expect(p).toContain("agents.maxUnavailable must be an integer from 1 to 1000");
  expect(p).toContain(JSON.stringify(bad));
});

test("sane values and the default pass", () => {
  for (const ok of [undefined, 1, 2, 50, 1000]) expect(maxUnavailableProblem("agents.maxUnavailable", ok)).toBeUndefined();
});

test("Network refuses a hostile agents.maxUnavailable at construction; NodeAgent's check refuses it at preview", async () => {
  const args = { hosts: [], mode: "vxlan", clusterCidr: "10.244.0.0/16", etcd: { existing: { endpoints: ["https://127.0.0.1:2379"] } }, agents: { maxUnavailable: "2; reboot" } } as unknown as NetworkArgs;
  expect(networkArgsProblems("prod", args)).toContain('agents.maxUnavailable must be an integer from 1 to 1000 (agents restarted at once during an update), got "2; reboot"');
  expect(networkArgsProblems("prod", { ...args, agents: { maxUnavailable: 3 } }).filter((p) => p.includes("maxUnavailable"))).toEqual([]);
  const checked = await nodeAgentProvider.check!({}, { connection: {}, spec: {}, maxUnavailable: "$(reboot)" });
  expect(checked.failures).toContainEqual({ property: "maxUnavailable", reason: expect.stringContaining('got "$(reboot)"') });
});

/** Starts `n` updates of `network` at once; each holds its slot until released. */
function updates(network: string, n: number, limit: number) {
  const order: number[] = [];
  const running = new Set<number>();
  const release: (() => void)[] = [];
  const done = Array.from({ length: n }, (_, i) =>
    rolling(network, limit, async () => {
      running.add(i);
      order.push(i);
      await new Promise<void>((r) => release.push(r));
      running.delete(i);
      return i;
    }),
  );
  return { order, running, release, done };
}

async function drain(u: ReturnType<typeof updates>, limit: number): Promise<void> {
  for (;;) {
    await new Promise((r) => setImmediate(r));
    expect(u.running.size).toBeLessThanOrEqual(limit);
    const next = u.release.shift();
    if (!next) break;
    next();
  }
}

test.each([1, 3])("with maxUnavailable %d, 12 concurrent updates run at most that many at once, in arrival order, and all finish", async (limit) => {
  const net = `/bpfnet/troll-${limit}`;
  const u = updates(net, 12, limit);
  await new Promise((r) => setImmediate(r));
  expect(u.running.size).toBe(limit);
  await drain(u, limit);
  expect(await Promise.all(u.done)).toEqual([...Array(12).keys()]);
  expect(u.order).toEqual([...Array(12).keys()]);
  expect(rolloutPeak(net)).toBe(limit);
});

test("another network's updates are not held by this one's, and a failed update frees its slot", async () => {
  const a = updates("/bpfnet/troll-a", 2, 1);
  const b = updates("/bpfnet/troll-b", 1, 1);
  await new Promise((r) => setImmediate(r));
  expect(a.running.size).toBe(1);
  expect(b.running.size).toBe(1);
  await drain(a, 1);
  await drain(b, 1);
  await expect(rolling("/bpfnet/troll-a", 1, async () => Promise.reject(new Error("deploy failed")))).rejects.toThrow("deploy failed");
  expect(await rolling("/bpfnet/troll-a", 1, async () => "next")).toBe("next");
});
