// The agent's desired service state, pure: frontends from services and endpoint records,
// health skipping, stable backend ids, draining of backends and reverse-NAT entries.
import { LbBackendFlags, LbServiceFlags, MAGLEV_M } from "../../bpf/abi";
import type { LbBackend } from "../../bpf/abi";
import { assignBackendIds, backendName, desiredFrontends, planMaps, ServiceEndpoint } from "../../node-agent/services/desired";
import type { StoredService } from "../../provider/services/serviceSpec";

const svc = (extra: Partial<StoredService> = {}): StoredService => ({
  schema: 1,
  serviceId: "id-api",
  serviceName: "api",
  frontend: {
    ip: "10.96.0.10",
    ports: [
      { port: 80, targetPort: 8080, protocol: "TCP", revNatIndex: 1 },
      { port: 53, targetPort: 53, protocol: "UDP", revNatIndex: 2 },
    ],
  },
  selector: { app: "api" },
  sessionAffinity: "none",
  sessionAffinityTimeoutSeconds: 10800,
  algorithm: "random",
  ipAllocated: false,
  ...extra,
});

const eps: ServiceEndpoint[] = [
  { host: "h2", ip: "10.1.2.5", labels: { app: "api", tier: "x" } },
  { host: "h1", ip: "10.1.1.5", labels: { app: "api" } },
  { host: "h3", ip: "10.1.3.5", labels: { app: "api" } },
  { host: "h1", ip: "10.1.1.6", labels: { app: "web" } },
];

test("each port of a service is a frontend with every matching endpoint as a backend, sorted, on the target port", () => {
  const f = desiredFrontends([svc()], eps);
  expect(f.map((x) => [x.key, x.revNatIndex, x.flags, x.affinityTimeoutS])).toEqual([
    [{ vip: "10.96.0.10", port: 80, proto: 6 }, 1, 0, 0],
    [{ vip: "10.96.0.10", port: 53, proto: 17 }, 2, 0, 0],
  ]);
  expect(f[0].backends.map((b) => [b.name, b.host])).toEqual([
    ["10.1.1.5:8080/6", "h1"],
    ["10.1.2.5:8080/6", "h2"],
    ["10.1.3.5:8080/6", "h3"],
  ]);
  expect(f[1].backends.map((b) => b.name)).toEqual(["10.1.1.5:53/17", "10.1.2.5:53/17", "10.1.3.5:53/17"]);
  expect(f[0].maglev).toEqual([]);
  // A selector with two labels needs both.
  expect(desiredFrontends([svc({ selector: { app: "api", tier: "x" } })], eps)[0].backends.map((b) => b.host)).toEqual(["h2"]);
  // No endpoint matches: a frontend with no backends (the datapath drops and counts).
  expect(desiredFrontends([svc({ selector: { app: "none" } })], eps)[0].backends).toEqual([]);
});

test("affinity and Maglev set the row flags; the Maglev table is over the backends' names", () => {
  const [f] = desiredFrontends([svc({ sessionAffinity: "clientIP", sessionAffinityTimeoutSeconds: 60, algorithm: "maglev" })], eps);
  expect(f.flags).toBe(LbServiceFlags.AFFINITY | LbServiceFlags.MAGLEV);
  expect(f.affinityTimeoutS).toBe(60);
  expect(f.maglev).toHaveLength(MAGLEV_M);
  expect(new Set(f.maglev)).toEqual(new Set(f.backends.map((b) => b.name)));
});

test("backends on a host whose health path is down are skipped, unless none would remain", () => {
  const [f] = desiredFrontends([svc()], eps, (h) => h === "h2");
  expect(f.backends.map((b) => b.host)).toEqual(["h1", "h3"]);
  expect(f.skipped.map((b) => b.host)).toEqual(["h2"]);
  const [all] = desiredFrontends([svc()], eps, () => true);
  expect(all.backends).toHaveLength(3);
});

test("backend ids are stable: kept by name, new ones take the lowest free id, draining ids are not reused", () => {
  const existing = new Map([
    [4, "b"],
    [1, "a"],
  ]);
  expect([...assignBackendIds(["c", "a", "b", "d"], existing)]).toEqual([
    ["a", 1],
    ["b", 4],
    ["c", 2],
    ["d", 3],
  ]);
  expect(assignBackendIds(["x"], new Map(), [1, 2]).get("x")).toBe(3);
});

test("a backend that leaves drains TERMINATING while a flow uses it, then goes; its reverse-NAT entry likewise", () => {
  const frontends = desiredFrontends([svc()], eps);
  const first = planMaps(frontends, new Map(), { backends: new Map(), revNat: new Map() }, { backends: new Set(), revNat: new Set() }, new Map(), 0, 60_000);
  const current = new Map<number, LbBackend>(first.target.backends);
  expect([...current.values()].map(backendName).sort()).toEqual(frontends.flatMap((f) => f.backends.map((b) => b.name)).sort());
  const row = first.target.services.get("10.96.0.10:80/6")!;
  expect(row.backendIds).toHaveLength(3);

  // h2's endpoint goes: its TCP backend is used by a flow (CT), its UDP one is not.
  const gone = eps.filter((e) => e.host !== "h2");
  const tcpId = [...current].find(([, b]) => backendName(b) === "10.1.2.5:8080/6")![0];
  const udpId = [...current].find(([, b]) => backendName(b) === "10.1.2.5:53/17")![0];
  const inUse = { backends: new Set([tcpId]), revNat: new Set<number>() };
  const second = planMaps(desiredFrontends([svc()], gone), current, first.draining, inUse, first.target.revNat, 1000, 60_000);
  expect(second.target.backends.get(tcpId)!.flags).toBe(LbBackendFlags.TERMINATING);
  expect(second.target.backends.has(udpId)).toBe(false);
  expect(second.target.services.get("10.96.0.10:80/6")!.backendIds).not.toContain(tcpId);
  expect(second.draining.backends.get(tcpId)).toBe(1000);
  // Other backends keep their ids (established flows to them are untouched).
  expect(second.target.services.get("10.96.0.10:80/6")!.backendIds).toEqual(row.backendIds.filter((id) => id !== tcpId));

  // Still in use, within the grace period: kept; past it: removed.
  const cur2 = new Map(second.target.backends);
  expect(planMaps(desiredFrontends([svc()], gone), cur2, second.draining, inUse, first.target.revNat, 30_000, 60_000).target.backends.has(tcpId)).toBe(true);
  expect(planMaps(desiredFrontends([svc()], gone), cur2, second.draining, inUse, first.target.revNat, 61_001, 60_000).target.backends.has(tcpId)).toBe(false);
  // The flow ended: removed at once.
  expect(planMaps(desiredFrontends([svc()], gone), cur2, second.draining, { backends: new Set(), revNat: new Set() }, first.target.revNat, 2000, 60_000).target.backends.has(tcpId)).toBe(false);
  // It comes back while draining: same id, active again.
  const back = planMaps(desiredFrontends([svc()], eps), cur2, second.draining, inUse, first.target.revNat, 2000, 60_000);
  expect(back.target.backends.get(tcpId)!.flags).toBe(0);
  expect(back.target.services.get("10.96.0.10:80/6")!.backendIds).toContain(tcpId);

  // The service is deleted: rows go; the reverse-NAT entry of a port with live flows stays.
  const none = planMaps([], current, { backends: new Map(), revNat: new Map() }, { backends: new Set(), revNat: new Set([1]) }, first.target.revNat, 0, 60_000);
  expect(none.target.services.size).toBe(0);
  expect([...none.target.revNat.keys()]).toEqual([1]);
  expect(none.target.backends.size).toBe(0);
});

test("with a cache, a pass recomputes only the services whose record or endpoints changed, with the same result", () => {
  const cache = new Map();
  const a = svc();
  const b = svc({ serviceName: "web", selector: { app: "web" }, frontend: { ip: "10.96.0.11", ports: [{ port: 80, targetPort: 80, protocol: "TCP", revNatIndex: 3 }] } });
  const first = desiredFrontends([a, b], eps, undefined, cache);
  expect(first).toEqual(desiredFrontends([a, b], eps));
  // Same objects, same endpoints: the very same frontends come back.
  const again = desiredFrontends([a, b], eps, undefined, cache);
  expect(again[0]).toBe(first[0]);
  // b's record replaced: b recomputed, a reused.
  const b2 = { ...b, sessionAffinity: "clientIP" as const };
  const third = desiredFrontends([a, b2], eps, undefined, cache);
  expect(third[0]).toBe(first[0]);
  expect(third.find((f) => f.service === "web")!.flags).toBe(LbServiceFlags.AFFINITY);
  // An endpoint change or a host's health: everything recomputed; a deleted service leaves the cache.
  const fewer = desiredFrontends([a], eps.slice(1), undefined, cache);
  expect(fewer[0]).not.toBe(first[0]);
  expect(fewer).toEqual(desiredFrontends([a], eps.slice(1)));
  expect([...cache.keys()]).toEqual(["api"]);
  expect(desiredFrontends([a], eps.slice(1), (h) => h === "h3", cache)[0].backends.map((x) => x.host)).toEqual(["h1"]);
});
