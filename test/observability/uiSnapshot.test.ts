// The status page's snapshot (pure): hosts with their state, endpoints, the matrix, drops summed.
import type { AgentStatus } from "../../node-agent/api/types";
import { nextPeerHealth } from "../../node-agent/health/view";
import { buildSnapshot } from "../../node-agent/ui/snapshot";

const now = new Date(Date.UTC(2026, 0, 1));
const status = (host: string, peer: string, dropped: Record<string, string>, problems: string[] = []): AgentStatus =>
  ({
    agent: { host, ready: true, mode: "vxlan", underlayIp: `10.1.1.${host.slice(1)}`, podCidr: `10.244.${host.slice(1)}.0/24` },
    counters: { forwarded: { packets: "0", bytes: "0" }, passed: { packets: "0", bytes: "0" }, dropped },
    health: { intervalSeconds: 2, endpoint: { ip: `10.244.${host.slice(1)}.2` }, rounds: 3, peers: [nextPeerHealth(undefined, { peer, underlayIp: "x" }, { ok: true }, { ok: true }, now.toISOString())] },
    problems,
  }) as unknown as AgentStatus;

test("hosts, endpoints, the matrix and drops summed by reason", () => {
  const s = buildSnapshot(["h1", "h2", "h3"], [
    { host: "h1", status: status("h1", "h2", { "spoofed-source": "3", "policy-denied": "1" }), endpoints: [{ id: "web", ip: "10.244.1.5", labels: { app: "web" }, status: "ready", identity: 300 } as never] },
    { host: "h2", status: status("h2", "h1", { "spoofed-source": "2" }, ["etcd unreachable"]), endpoints: [] },
    { host: "h3", error: "ssh root@10.0.0.3:22: connect ECONNREFUSED" },
  ], now);
  expect(s.at).toBe(now.toISOString());
  expect(s.hosts[0]).toEqual({ host: "h1", ok: true, state: "ready", mode: "vxlan", underlayIp: "10.1.1.1", podCidr: "10.244.1.0/24", healthIp: "10.244.1.2", endpoints: [{ id: "web", ip: "10.244.1.5", labels: { app: "web" }, status: "ready", identity: 300 }] });
  expect(s.hosts[1]).toMatchObject({ ok: false, state: "ready: etcd unreachable" });
  expect(s.hosts[2]).toEqual({ host: "h3", ok: false, state: "ssh root@10.0.0.3:22: connect ECONNREFUSED", endpoints: [] });
  expect(s.drops).toEqual({ "spoofed-source": 5, "policy-denied": 1 });
  expect(Object.fromEntries(s.matrix.cells.map((c) => [`${c.from}${c.to}`, c.state]))).toEqual({ h1h2: "ok", h1h3: "unknown", h2h1: "ok", h2h3: "unknown", h3h1: "unknown", h3h2: "unknown" });
  expect(s.matrix.allOk).toBe(false);
});

test("before any answer every host says so", () => {
  expect(buildSnapshot(["h1"], [], now).hosts).toEqual([{ host: "h1", ok: false, state: "no answer yet", endpoints: [] }]);
});
