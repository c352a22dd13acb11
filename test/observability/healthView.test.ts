// The pure part of host-to-host health: state transitions, the etcd record, the publish rule,
// the matrix and its text.
import { formatHealth, formatMatrix, healthMatrix, healthRecordJson, needsPublish, nextPeerHealth, parseHealthRecord, peerReachable, PeerHealth } from "../../node-agent/health/view";
import { parseNodeRecord } from "../../node-agent/daemon/view";

const target = { peer: "h2", underlayIp: "10.1.1.2", healthIp: "10.244.2.5" };
const up = { ok: true, latencyMs: 0.4321 };
const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

describe("nextPeerHealth", () => {
  test("first round: since = now; both paths ok = reachable", () => {
    const h = nextPeerHealth(undefined, target, up, { ok: true, latencyMs: 1.5 }, t(0));
    expect(h).toEqual({
      peer: "h2", underlayIp: "10.1.1.2", healthIp: "10.244.2.5",
      host: { ok: true, latencyMs: 0.432, since: t(0) }, endpoint: { ok: true, latencyMs: 1.5, since: t(0) },
      reachable: true, since: t(0), checkedAt: t(0),
    });
  });

  test("since moves only on a change; the last error is kept after recovery", () => {
    const a = nextPeerHealth(undefined, target, up, up, t(0));
    const b = nextPeerHealth(a, target, up, up, t(2));
    expect(b.since).toBe(t(0));
    expect(b.checkedAt).toBe(t(2));
    const c = nextPeerHealth(b, target, up, { ok: false, error: "no ICMP echo reply within 1 s" }, t(4));
    expect(c).toMatchObject({ reachable: false, since: t(4), lastError: "endpoint 10.244.2.5: no ICMP echo reply within 1 s", lastErrorAt: t(4) });
    expect(c.host.since).toBe(t(0));
    expect(c.endpoint).toEqual({ ok: false, error: "no ICMP echo reply within 1 s", since: t(4) });
    const d = nextPeerHealth(c, target, up, up, t(6));
    expect(d).toMatchObject({ reachable: true, since: t(6), lastError: c.lastError, lastErrorAt: t(4) });
    expect(d.endpoint.error).toBeUndefined();
  });

  test("a host path failure alone makes the peer unreachable, named by its underlay address", () => {
    const h = nextPeerHealth(undefined, { peer: "h3", underlayIp: "10.1.1.3" }, { ok: false, error: "Network is unreachable" }, { ok: true }, t(0));
    expect(h).toMatchObject({ reachable: false, lastError: "host 10.1.1.3: Network is unreachable" });
    expect(h.healthIp).toBeUndefined();
  });
});

test("a peer without a health endpoint (health off, an older agent) is judged by its host path", () => {
  const older = { peer: "h4", underlayIp: "10.1.1.4" };
  const none = { ok: false, error: "the peer has published no health endpoint yet" };
  const h = nextPeerHealth(undefined, older, up, none, t(0));
  expect(h).toMatchObject({ reachable: true, endpoint: { ok: false } });
  expect(h.lastError).toBeUndefined();
  expect(nextPeerHealth(h, older, { ok: false, error: "no ICMP echo reply within 1 s" }, none, t(2))).toMatchObject({ reachable: false, lastError: "host 10.1.1.4: no ICMP echo reply within 1 s" });
  expect(formatHealth({ intervalSeconds: 2, peers: [h] })[1]).toBe(`  h4       reachable since ${t(0)}: host 10.1.1.4 0.43 ms, no health endpoint published`);
});

describe("peerReachable (what services ask)", () => {
  const view = [nextPeerHealth(undefined, target, up, up, t(0)), nextPeerHealth(undefined, { ...target, peer: "h3" }, up, { ok: false, error: "x" }, t(0))];
  test("reachable, unreachable and never probed", () => {
    expect(peerReachable(view, "h2")).toBe(true);
    expect(peerReachable(view, "h3")).toBe(false);
    expect(peerReachable(view, "h4")).toBe(false);
    expect(peerReachable([], "h2")).toBe(false);
  });
});

describe("the etcd record", () => {
  const h = nextPeerHealth(undefined, target, up, up, t(0));
  test("round trip, with schema and the probing host", () => {
    const rec = parseHealthRecord(healthRecordJson("h1", h));
    expect(rec).toEqual({ schema: 1, from: "h1", ...h });
  });
  test("anything else is refused, not guessed", () => {
    for (const bad of ["", "{", "null", "[]", JSON.stringify({ ...h, schema: 2, from: "h1" }), JSON.stringify({ ...h, schema: 1 }), JSON.stringify({ schema: 1, from: "h1", peer: "h2" })]) {
      expect(parseHealthRecord(bad)).toBeUndefined();
    }
  });
  test("republished on a change of state, else only every refresh period", () => {
    const a = nextPeerHealth(undefined, target, up, up, t(0));
    const b = nextPeerHealth(a, target, { ok: true, latencyMs: 9 }, up, t(2)); // only latency moved
    expect(needsPublish(undefined, a, 20_000)).toBe(true);
    expect(needsPublish(a, b, 20_000)).toBe(false);
    expect(needsPublish(a, nextPeerHealth(a, target, up, up, t(20)), 20_000)).toBe(true);
    expect(needsPublish(a, nextPeerHealth(a, target, up, { ok: false, error: "x" }, t(2)), 20_000)).toBe(true);
    expect(needsPublish(a, nextPeerHealth(a, { ...target, healthIp: "10.244.2.9" }, up, up, t(2)), 20_000)).toBe(true);
  });
});

describe("the node record carries the health address", () => {
  const base = { schema: 1, host: "h1", underlayIp: "10.1.1.1", podCidr: "10.244.1.0/24", agentVersion: "0.1.0", incarnation: "i", startedAt: t(0) };
  test("a valid address is kept; anything else dropped", () => {
    expect(parseNodeRecord(JSON.stringify({ ...base, healthIp: "10.244.1.7" }))?.healthIp).toBe("10.244.1.7");
    for (const bad of ["10.244.1.7; rm -rf /", "$(reboot)", "`id`", "10.244.1.7\n10.0.0.1", "../x", "'", 7]) {
      expect(parseNodeRecord(JSON.stringify({ ...base, healthIp: bad }))?.healthIp).toBeUndefined();
    }
  });
});

describe("the matrix", () => {
  const ok = (peer: string): PeerHealth => nextPeerHealth(undefined, { ...target, peer }, up, up, t(0));
  const down = (peer: string): PeerHealth => nextPeerHealth(undefined, { ...target, peer }, up, { ok: false, error: "no ICMP echo reply within 1 s" }, t(0));
  const hosts = ["h1", "h2", "h3"];

  test("every ordered pair, ok only when every path is up", () => {
    const m = healthMatrix(hosts, [
      { from: "h1", peers: [ok("h2"), ok("h3")] },
      { from: "h2", peers: [ok("h1"), ok("h3")] },
      { from: "h3", peers: [ok("h1"), ok("h2")] },
    ]);
    expect(m.allOk).toBe(true);
    expect(m.cells.map((c) => `${c.from}${c.to}`)).toEqual(["h1h2", "h1h3", "h2h1", "h2h3", "h3h1", "h3h2"]);
    expect(formatMatrix(hosts, m)).toBe(["from\\to h1    h2    h3", "h1      -     ok    ok", "h2      ok    -     ok", "h3      ok    ok    -", "all 6 paths ok"].join("\n"));
  });

  test("a down path, a host without a view, a peer not probed yet: not ok, each named", () => {
    const m = healthMatrix(hosts, [
      { from: "h1", peers: [ok("h2"), down("h3")] },
      { from: "h2", peers: [ok("h1")] },
      { from: "h3", error: "ssh root@10.0.0.3:22: connect ECONNREFUSED", peers: [] },
    ]);
    expect(m.allOk).toBe(false);
    const state = Object.fromEntries(m.cells.map((c) => [`${c.from}${c.to}`, c.state]));
    expect(state).toEqual({ h1h2: "ok", h1h3: "down", h2h1: "ok", h2h3: "unknown", h3h1: "unknown", h3h2: "unknown" });
    const text = formatMatrix(hosts, m);
    expect(text).toContain("h1 → h3: down: since 2026-01-01T00:00:00.000Z: endpoint no ICMP echo reply within 1 s");
    expect(text).toContain("h2 → h3: unknown: h2 does not probe h3 (not a peer yet)");
    expect(text).toContain("h3 → h1: unknown: ssh root@10.0.0.3:22: connect ECONNREFUSED");
    expect(text).toMatch(/4 of 6 paths not ok$/);
  });

  test("a host missing from the rows is unknown, never ok", () => {
    expect(healthMatrix(["a", "b"], []).cells.map((c) => c.state)).toEqual(["unknown", "unknown"]);
  });
});

test("status lines", () => {
  const lines = formatHealth({ intervalSeconds: 2, endpoint: { ip: "10.244.1.2" }, peers: [ok2(), down2()] });
  expect(lines[0]).toBe("health    endpoint 10.244.1.2, probing every 2s");
  expect(lines[1]).toBe(`  h2       reachable since ${t(0)}: host 10.1.1.2 0.43 ms, endpoint 10.244.2.5 0.43 ms`);
  expect(lines[2]).toBe(`  h3       UNREACHABLE since ${t(0)}: host 10.1.1.2 0.43 ms, endpoint 10.244.2.5 DOWN (timeout)`);
  expect(formatHealth({ intervalSeconds: 10, error: "health endpoint: boom", peers: [] })).toEqual(["health    endpoint none (health endpoint: boom), probing every 10s"]);
});
const ok2 = () => nextPeerHealth(undefined, target, up, up, t(0));
const down2 = () => nextPeerHealth(undefined, { ...target, peer: "h3" }, up, { ok: false, error: "timeout" }, t(0));

test("`bpfnet health --wait` refuses anything but a number of seconds, before reading anything", async () => {
  const { healthCommand } = await import("../../node-agent/cli/health");
  for (const bad of ["1; rm -rf /", "$(reboot)", "`id`", "5\n6", "..", "'", "-1", "1.5", "", "99999"]) {
    await expect(healthCommand(new Map([["wait", bad], ["inventory", "/nonexistent/inventory.json"]]))).rejects.toThrow(`--wait must be a number of seconds (0-9999), got ${JSON.stringify(bad)}`);
  }
});

describe("the agent config's health fields", () => {
  const base = { hostName: "h1", networkPrefix: "/bpfnet/x", etcd: { endpoints: ["http://127.0.0.1:2379"] }, stateDir: "/var/lib/bpfnet", bpffsDir: "/sys/fs/bpf/bpfnet", underlayInterface: "eth0", underlayIp: "192.168.1.10" };
  test("on by default, every 10 s", async () => {
    const { parseAgentConfig } = await import("../../node-agent/config");
    expect(parseAgentConfig(base)).toMatchObject({ health: true, healthIntervalSeconds: 10 });
    expect(parseAgentConfig({ ...base, health: false, healthIntervalSeconds: 2 })).toMatchObject({ health: false, healthIntervalSeconds: 2 });
  });
  test("anything else is refused, naming the field and the value", async () => {
    const { parseAgentConfig } = await import("../../node-agent/config");
    for (const bad of ["true; rm -rf /", "$(reboot)", "`id`", "yes\n", "..", "'", 1]) {
      expect(() => parseAgentConfig({ ...base, health: bad })).toThrow(`health must be true or false, got ${JSON.stringify(bad)}`);
    }
    for (const bad of [0, -1, 1.5, 3601, "5", "5; id", "$(id)", null]) {
      expect(() => parseAgentConfig({ ...base, healthIntervalSeconds: bad })).toThrow(`healthIntervalSeconds must be an integer from 1 to 3600, got ${JSON.stringify(bad)}`);
    }
  });
});

describe("health metrics", () => {
  const view = [nextPeerHealth(undefined, target, up, { ok: true, latencyMs: 1.5 }, t(0)), nextPeerHealth(undefined, { ...target, peer: "h3" }, up, { ok: false, error: "x" }, t(0))];
  test("rows: status per peer and path, latency only where it answered, unreachable peers", async () => {
    const { healthGaugeRows } = await import("../../node-agent/health/metrics");
    expect(healthGaugeRows(view)).toEqual({
      status: [
        { labels: { peer: "h2", path: "host" }, value: 1 }, { labels: { peer: "h2", path: "endpoint" }, value: 1 },
        { labels: { peer: "h3", path: "host" }, value: 1 }, { labels: { peer: "h3", path: "endpoint" }, value: 0 },
      ],
      latency: [{ labels: { peer: "h2", path: "host" }, value: 0.000432 }, { labels: { peer: "h2", path: "endpoint" }, value: 0.0015 }, { labels: { peer: "h3", path: "host" }, value: 0.000432 }],
      unreachable: 1,
    });
  });
  test("in the agent's registry, in Prometheus text", async () => {
    const { defineHealthMetrics } = await import("../../node-agent/health/metrics");
    const { registry } = await import("../../node-agent/metrics/registry");
    defineHealthMetrics(() => view);
    const text = await registry.metrics();
    expect(text).toContain('bpfnet_health_peer_reachable{peer="h3",path="endpoint"} 0');
    expect(text).toContain('bpfnet_health_peer_latency_seconds{peer="h2",path="endpoint"} 0.0015');
    expect(text).toContain("bpfnet_health_unreachable_peers 1");
  });
});
