// The Service provider against a real etcd: check refuses every bad input naming the field and
// writes nothing; create allocates the VIP from the serviceCidr and a reverse-NAT number per
// port atomically (concurrent creates never share one); update and delete apply live and keep
// or give back the claims; refresh reports hand edits; the provider runs from its serialized
// text in a fresh process (as Pulumi runs it).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { createConfig } from "../../provider/network/networkStore";
import { checkNetworkSpec } from "../../provider/network/networkSpec";
import { ServiceInputs, serviceProvider as p } from "../../provider/services/service";
import { pickRevNat, pickVip } from "../../provider/services/serviceStore";
import { parseCidr } from "../../provider/ipam/cidr";
import { UNKNOWN } from "../../provider/common/unknown";
import { startEtcd, TestEtcd } from "../support/etcd";
import { callFresh, serialize } from "../support/serialized";
import { deleteKey, dumpAll, getValue, keysUnder, putValue } from "../etcd/helpers";

let etcd: TestEtcd;
let conn: EtcdConnection;
let dir: string;
const PREFIX = "/bpfnet/svcnet";
const CIDR = "10.96.0.0/28";

beforeAll(async () => {
  etcd = await startEtcd();
  conn = etcd.connection;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-svc-"));
  const { spec } = checkNetworkSpec({ prefix: PREFIX, mode: "vxlan", clusterCidr: "10.244.0.0/16", serviceCidr: CIDR });
  await withEtcd(conn, (c) => createConfig(c, spec!, "net-1", false));
});
afterAll(async () => {
  await etcd?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function inputs(extra: Record<string, unknown> = {}): ServiceInputs {
  return {
    connection: conn,
    prefix: PREFIX,
    serviceCidr: CIDR,
    serviceName: "api",
    frontend: { ports: [{ port: 80, targetPort: 8080, protocol: "TCP" }, { port: 53, protocol: "UDP" }] },
    selector: { app: "api" },
    ...extra,
  } as ServiceInputs;
}

async function checked(extra: Record<string, unknown> = {}): Promise<ServiceInputs> {
  const r = await p.check!({} as ServiceInputs, inputs(extra));
  expect(r.failures).toEqual([]);
  return r.inputs!;
}

const fieldsOf = async (extra: Record<string, unknown>) => (await p.check!({} as ServiceInputs, inputs(extra))).failures!;

test("every bad input fails at check naming the field and the value, and nothing is written", async () => {
  const before = await dumpAll(conn);
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ frontend: { ip: "10.97.0.1", ports: [{ port: 80 }] } }, "frontend.ip", /"10\.97\.0\.1" is outside the network's serviceCidr "10\.96\.0\.0\/28"/],
    [{ frontend: { ip: "10.96.0.300", ports: [{ port: 80 }] } }, "frontend.ip", /"10\.96\.0\.300"/],
    [{ frontend: { ports: [{ port: 0 }] } }, "frontend.ports[0].port", /1-65535, got 0/],
    [{ frontend: { ports: [{ port: 70000 }] } }, "frontend.ports[0].port", /got 70000/],
    [{ frontend: { ports: [{ port: 80, targetPort: 70000 }] } }, "frontend.ports[0].targetPort", /got 70000/],
    [{ frontend: { ports: [{ port: 80 }, { port: 80, protocol: "TCP" }] } }, "frontend.ports[1].port", /repeats TCP port 80 of frontend.ports\[0\]/],
    [{ frontend: { ports: [{ port: 80, protocol: "SCTP" }] } }, "frontend.ports[0].protocol", /one of TCP, UDP, got "SCTP"/],
    [{ frontend: { ports: [] } }, "frontend.ports", /1-64 ports, got \[\]/],
    [{ frontend: undefined }, "frontend", /frontend is required/],
    [{ selector: {} }, "selector", /at least one label.*got \{\}/],
    [{ selector: undefined }, "selector", /selector is required/],
    [{ sessionAffinity: "sticky" }, "sessionAffinity", /"none" or "clientIP", got "sticky"/],
    [{ sessionAffinityTimeoutSeconds: 0 }, "sessionAffinityTimeoutSeconds", /1-65535, got 0/],
    [{ algorithm: "roundrobin" }, "algorithm", /"random" or "maglev", got "roundrobin"/],
    [{ prefix: "/bpfnet/x/../y" }, "prefix", /"\/bpfnet\/x\/\.\.\/y"/],
  ];
  for (const [extra, field, reason] of cases) {
    const failures = await fieldsOf(extra);
    expect({ field, failures: failures.map((f) => f.property) }).toEqual({ field, failures: [field] });
    expect(failures[0].reason).toMatch(reason);
  }
  // Hostile strings: spaces, ";", "$(…)", backticks, newlines, "..", quotes — each refused, named.
  const hostile = ["a b", "a;rm -rf /", "$(id)", "`id`", "a\nb", "..", "a\"b", "x'y"];
  for (const h of hostile) {
    expect((await fieldsOf({ serviceName: h })).map((f) => f.property)).toEqual(["serviceName"]);
    expect((await fieldsOf({ selector: { app: h } })).map((f) => f.property)).toEqual(["selector"]);
    expect((await fieldsOf({ selector: { [h]: "x" } })).map((f) => f.property)).toEqual(["selector"]);
    expect((await fieldsOf({ frontend: { ip: h, ports: [{ port: 80 }] } })).map((f) => f.property)).toEqual(["frontend.ip"]);
    expect((await fieldsOf({ frontend: { ports: [{ port: 80, protocol: h }] } })).map((f) => f.property)).toEqual(["frontend.ports[0].protocol"]);
    expect((await fieldsOf({ sessionAffinity: h })).map((f) => f.property)).toEqual(["sessionAffinity"]);
  }
  expect((await fieldsOf({ frontend: { ports: [{ port: 80, evil: "$(id)" }] } }))[0].reason).toMatch(/unknown field "evil"/);
  // Unknown values at preview pass (judged once known).
  expect(await fieldsOf({ selector: UNKNOWN, frontend: { ip: UNKNOWN, ports: [{ port: 80 }] } })).toEqual([]);
  expect(await dumpAll(conn)).toEqual(before);
  // create re-checks: a call that skipped check writes nothing.
  await expect(p.create!(inputs({ selector: { "$(id)": "x" } }))).rejects.toThrow(/selector key "\$\(id\)"/);
  expect(await dumpAll(conn)).toEqual(before);
});

test("VIP and reverse-NAT picks are the lowest free ones (pure)", () => {
  const c = parseCidr("10.96.0.0/30")!;
  expect(pickVip(c, new Set())).toBe("10.96.0.1");
  expect(pickVip(c, new Set(["10.96.0.1"]))).toBe("10.96.0.2");
  expect(pickVip(c, new Set(["10.96.0.1", "10.96.0.2"]))).toBeUndefined(); // .0 and .3 are network and broadcast
  expect(pickVip(parseCidr("10.96.0.8/32")!, new Set())).toBe("10.96.0.8");
  expect(pickRevNat(new Set([1, 3]), 3)).toEqual([2, 4, 5]);
  expect(pickRevNat(new Set(Array.from({ length: 65535 }, (_, i) => i + 1)), 1)).toBeUndefined();
});

test("create allocates a VIP and a reverse-NAT number per port; update keeps them; delete gives them back; ownership holds", async () => {
  const created = await p.create!(await checked());
  const outs = created.outs!;
  expect(created.id).toBe(`${PREFIX}/services/v1/specs/api`);
  expect(outs.ip).toBe("10.96.0.1");
  expect(outs.frontend.ports).toEqual([
    { port: 80, targetPort: 8080, protocol: "TCP", revNatIndex: 1 },
    { port: 53, targetPort: 53, protocol: "UDP", revNatIndex: 2 },
  ]);
  expect(await keysUnder(conn, `${PREFIX}/services/`)).toEqual([
    `${PREFIX}/services/v1/revnat/1`,
    `${PREFIX}/services/v1/revnat/2`,
    `${PREFIX}/services/v1/specs/api`,
    `${PREFIX}/services/v1/vips/10.96.0.1/TCP-80`,
    `${PREFIX}/services/v1/vips/10.96.0.1/UDP-53`,
  ]);
  const stored = JSON.parse((await getValue(conn, created.id))!);
  expect(stored).toMatchObject({ schema: 1, serviceId: outs.serviceId, serviceName: "api", ipAllocated: true, sessionAffinity: "none", algorithm: "random", sessionAffinityTimeoutSeconds: 10800 });

  // No change: diff says so; an update rewrites nothing.
  expect((await p.diff!(created.id, outs, await checked())).changes).toBe(false);
  expect((await p.update!(created.id, outs, await checked())).outs!.revision).toBe(outs.revision);

  // Drop UDP 53, add TCP 443: TCP 80 keeps 1, 2 is given back (not reused by the same write), 443 gets 3.
  const ports = { ports: [{ port: 80, targetPort: 8080 }, { port: 443, targetPort: 8443 }] };
  expect((await p.diff!(created.id, outs, await checked({ frontend: ports }))).changes).toBe(true);
  const up = (await p.update!(created.id, outs, await checked({ frontend: ports, sessionAffinity: "clientIP", algorithm: "maglev" }))).outs!;
  expect(up.ip).toBe("10.96.0.1");
  expect(up.frontend.ports.map((x) => [x.port, x.revNatIndex])).toEqual([[80, 1], [443, 3]]);

  // A second service on a taken frontend (VIP, protocol, port) is refused, naming the holder;
  // another port of the same VIP is its own.
  const other = await checked({ serviceName: "web", frontend: { ip: "10.96.0.1", ports: [{ port: 80 }] } });
  await expect(p.create!(other)).rejects.toThrow(/frontend 10\.96\.0\.1 TCP port 80 is held by service "api"/);
  const web = (await p.create!(await checked({ serviceName: "web", frontend: { ip: "10.96.0.1", ports: [{ port: 8443 }] } }))).outs!;
  expect(web.frontend.ports[0].revNatIndex).toBe(2);
  // A new service without an IP never gets one in use on any port.
  const third = (await p.create!(await checked({ serviceName: "third" }))).outs!;
  expect(third.ip).toBe("10.96.0.2");
  await p.delete!("x", third);
  // Moving web to another explicit IP releases the old claim in the same transaction.
  const moved = (await p.update!("x", web, await checked({ serviceName: "web", frontend: { ip: "10.96.0.6", ports: [{ port: 80 }] } }))).outs!;
  expect(moved.ip).toBe("10.96.0.6");
  expect((await keysUnder(conn, `${PREFIX}/services/v1/vips/`)).sort()).toEqual(
    [`${PREFIX}/services/v1/vips/10.96.0.1/TCP-80`, `${PREFIX}/services/v1/vips/10.96.0.1/TCP-443`, `${PREFIX}/services/v1/vips/10.96.0.6/TCP-80`].sort(),
  );

  // Another resource with the same serviceName is refused; its delete leaves ours alone.
  await expect(p.create!(await checked())).rejects.toThrow(/belongs to another Service/);
  await p.delete!(created.id, { ...up, serviceId: "someone-else" });
  expect(await getValue(conn, created.id)).not.toBeNull();

  await p.delete!(created.id, up);
  await p.delete!("x", moved);
  expect(await keysUnder(conn, `${PREFIX}/services/`)).toEqual([]);
});

test("concurrent creates never share a VIP or a reverse-NAT number; a full serviceCidr is refused by name", async () => {
  // 10.96.0.0/28: 14 usable addresses.
  const made = await Promise.all(Array.from({ length: 14 }, async (_, i) => (await p.create!(await checked({ serviceName: `s${i}` }))).outs!));
  expect(new Set(made.map((o) => o.ip)).size).toBe(14);
  const nums = made.flatMap((o) => o.frontend.ports.map((x) => x.revNatIndex));
  expect(new Set(nums).size).toBe(28);
  expect(Math.max(...nums)).toBe(28);
  await expect(p.create!(await checked({ serviceName: "s14" }))).rejects.toThrow(/serviceCidr 10\.96\.0\.0\/28 of network \/bpfnet\/svcnet is full/);
  for (const o of made) await p.delete!("x", o);
  expect(await keysUnder(conn, `${PREFIX}/services/`)).toEqual([]);
});

test("refresh reports a hand edit and a removal; the next update writes the spec back", async () => {
  const created = await p.create!(await checked());
  const outs = created.outs!;
  const rec = JSON.parse((await getValue(conn, created.id))!);
  await putValue(conn, created.id, JSON.stringify({ ...rec, selector: { app: "evil" } }));
  const read = await p.read!(created.id, outs);
  expect(read.props!.selector).toEqual({ app: "evil" });
  expect((await p.diff!(created.id, read.props as never, await checked())).changes).toBe(true);
  await putValue(conn, created.id, JSON.stringify({ ...rec, frontend: { ...rec.frontend, ports: [{ port: 0 }] } }));
  const broken = await p.read!(created.id, outs);
  expect(broken.props!.storedProblems!.join()).toMatch(/revNatIndex/);
  expect((await p.diff!(created.id, broken.props as never, await checked())).changes).toBe(true);
  const fixed = (await p.update!(created.id, broken.props as never, await checked())).outs!;
  expect(JSON.parse((await getValue(conn, created.id))!).selector).toEqual({ app: "api" });
  expect(fixed.ip).toBe(outs.ip);
  await deleteKey(conn, created.id);
  expect((await p.read!(created.id, fixed)).id).toBe("");
  await p.delete!(created.id, fixed); // gives back the claims even with the record gone
  expect(await keysUnder(conn, `${PREFIX}/services/`)).toEqual([]);
});

test("the serialized provider creates and deletes from a fresh process", async () => {
  const { file } = await serialize(dir, "service", p);
  const c = await callFresh(file, "create", await checked({ frontend: { ip: "10.96.0.9", ports: [{ port: 80 }] } }));
  expect(c.outs.ip).toBe("10.96.0.9");
  expect(await getValue(conn, `${PREFIX}/services/v1/vips/10.96.0.9/TCP-80`)).toContain(c.outs.serviceId);
  await callFresh(file, "delete", c.id, c.outs);
  expect(await keysUnder(conn, `${PREFIX}/services/`)).toEqual([]);
});
