// The agent's service inputs from watch batches (pure) and `bpfnet service list`'s text.
import { ServiceInputs, parseServiceEndpoint } from "../../node-agent/services/view";
import { formatServices } from "../../node-agent/cli/service";

const P = "/bpfnet/v";
const rec = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    schema: 1,
    serviceId: "id",
    serviceName: "api",
    frontend: { ip: "10.96.0.1", ports: [{ port: 80, targetPort: 8080, protocol: "TCP", revNatIndex: 4 }] },
    selector: { app: "api" },
    sessionAffinity: "none",
    sessionAffinityTimeoutSeconds: 10800,
    algorithm: "random",
    ipAllocated: true,
    ...extra,
  });
const batch = (events: { type: "put" | "delete"; key: string; value?: string }[], relist = false) => ({
  events: events.map((e) => ({ value: "", modRevision: 1, ...e })),
  relist,
  revision: 1,
});

test("services and endpoints are read from their records; bad records are reported, not used; nothing counts before both were listed", () => {
  const v = new ServiceInputs(P);
  v.applyServices(batch([{ type: "put", key: `${P}/services/v1/specs/api`, value: rec() }], true));
  expect(v.allSynced).toBe(false);
  v.applyEndpoints(batch([{ type: "put", key: `${P}/state/endpoints/v1/h1/a`, value: JSON.stringify({ host: "h1", ip: "10.1.1.5", labels: { app: "api" } }) }], true));
  expect(v.allSynced).toBe(true);
  expect(v.services.get("api")!.frontend.ports[0].revNatIndex).toBe(4);
  expect([...v.endpoints.values()]).toEqual([{ host: "h1", ip: "10.1.1.5", labels: { app: "api" } }]);
  // Hand edits: a record naming another service, a broken one, one with a hostile selector.
  v.applyServices(
    batch([
      { type: "put", key: `${P}/services/v1/specs/web`, value: rec() },
      { type: "put", key: `${P}/services/v1/specs/bad`, value: "{" },
      { type: "put", key: `${P}/services/v1/specs/evil`, value: rec({ serviceName: "evil", selector: { app: "$(id)" } }) },
      { type: "put", key: `${P}/services/v1/specs/dup`, value: rec({ serviceName: "dup", frontend: { ip: "10.96.0.1", ports: [{ port: 80, targetPort: 1, protocol: "TCP", revNatIndex: 0 }] } }) },
    ]),
  );
  expect([...v.services.keys()]).toEqual(["api"]);
  expect(Object.fromEntries(v.problems)).toEqual({
    web: ['names itself "api"'],
    bad: ["not JSON"],
    evil: [expect.stringContaining("selector.app must be a label value")],
    dup: [expect.stringContaining("revNatIndex must be an integer in 1-65535, got 0")],
  });
  v.applyServices(batch([{ type: "delete", key: `${P}/services/v1/specs/api` }]));
  expect(v.services.size).toBe(0);
  expect(parseServiceEndpoint(JSON.stringify({ host: "h1", ip: "10.1.1.300" }))).toBeUndefined();
  expect(parseServiceEndpoint(JSON.stringify({ host: "h1", ip: "10.1.1.3", labels: { a: 1, b: "x" } }))).toEqual({ host: "h1", ip: "10.1.1.3", labels: { b: "x" } });
});

test("service list text names VIP, ports, backends with host, state and id, draining backends and problems", () => {
  const text = formatServices({
    synced: true,
    programmed: true,
    services: [
      {
        name: "api",
        vip: "10.96.0.1",
        sessionAffinity: "clientIP",
        algorithm: "maglev",
        ports: [
          {
            port: 80,
            protocol: "TCP",
            targetPort: 8080,
            revNatIndex: 4,
            backends: [
              { address: "10.1.1.5", port: 8080, host: "h1", state: "active", id: 1 },
              { address: "10.1.2.5", port: 8080, host: "h2", state: "health-down" },
            ],
          },
        ],
      },
    ],
    draining: [{ id: 3, backend: "10.1.3.5:8080/6" }],
    problems: ["service bad ignored: not JSON"],
  });
  expect(text.split("\n")).toEqual([
    "api  10.96.0.1  affinity=clientIP  algorithm=maglev",
    "  80/TCP → 8080  [revnat 4]  10.1.1.5:8080@h1(active #1) 10.1.2.5:8080@h2(health-down)",
    "draining: 10.1.3.5:8080/6 #3 (terminating: established flows only)",
    "problem: service bad ignored: not JSON",
  ]);
  expect(formatServices({ synced: false, programmed: false, services: [], draining: [], problems: [] })).toBe(
    "(not synced with etcd yet: nothing programmed)\n(no datapath maps: computed only)\nno services",
  );
});
