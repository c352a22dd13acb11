// The NetworkPolicy provider against a real etcd: check writes nothing, create/update/delete
// write exactly the record, refresh reports hand edits and removals, ownership is respected,
// and the provider works from its serialized text in a fresh process (as Pulumi runs it).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { EtcdConnection } from "../../provider/etcd/etcdClient";
import { NetworkPolicy, NetworkPolicyInputs, NetworkPolicyOutputs, networkPolicyProvider as p } from "../../provider/policy/networkPolicy";
import { policyKey } from "../../provider/policy/policyStore";
import { UNKNOWN } from "../../provider/common/unknown";
import { startEtcd, TestEtcd } from "../support/etcd";
import { callFresh, serialize } from "../support/serialized";
import { deleteKey, dumpAll, getValue, keysUnder, putValue } from "../etcd/helpers";

let etcd: TestEtcd;
let conn: EtcdConnection;
let dir: string;

beforeAll(async () => {
  etcd = await startEtcd();
  conn = etcd.connection;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-policy-"));
});
afterAll(async () => {
  await etcd?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const PREFIX = "/bpfnet/pol";

function inputs(extra: Record<string, unknown> = {}): NetworkPolicyInputs {
  return {
    connection: conn,
    prefix: PREFIX,
    policyName: "api-from-web",
    endpointSelector: { app: "api" },
    ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP" }] }, { fromEntities: ["host"] }],
    ...extra,
  } as NetworkPolicyInputs;
}

async function checked(extra: Record<string, unknown> = {}): Promise<NetworkPolicyInputs> {
  const r = await p.check!({} as NetworkPolicyInputs, inputs(extra));
  expect(r.failures).toEqual([]);
  return r.inputs!;
}

test("check refuses bad input naming field and value, and writes nothing", async () => {
  const before = await dumpAll(conn);
  const r = await p.check!({} as NetworkPolicyInputs, inputs({ ingress: [{ toPorts: [{ port: 70000, protocol: "TCP" }] }], prefix: "/bpfnet/x/../y" }));
  expect(r.failures!.map((f) => f.property).sort()).toEqual(["ingress[0].toPorts[0].port", "prefix"]);
  expect(r.failures!.find((f) => f.property === "prefix")!.reason).toContain('"/bpfnet/x/../y"');
  expect(await dumpAll(conn)).toEqual(before);
  // create re-checks: even a call that skipped check writes nothing invalid.
  await expect(p.create!(inputs({ endpointSelector: { "$(id)": "x" } }))).rejects.toThrow(/endpointSelector key "\$\(id\)"/);
  expect(await dumpAll(conn)).toEqual(before);
});

test("create writes one versioned record under policies/v1; update and delete apply live; only the owner deletes", async () => {
  const created = await p.create!(await checked());
  expect(created.id).toBe(`${PREFIX}/policies/v1/api-from-web`);
  expect(await keysUnder(conn, `${PREFIX}/`)).toEqual([created.id]);
  const stored = JSON.parse((await getValue(conn, created.id))!);
  expect(stored).toEqual({
    schema: 1,
    policyId: created.outs!.policyId,
    policyName: "api-from-web",
    endpointSelector: { app: "api" },
    audit: false,
    ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP" }] }, { fromEntities: ["host"] }],
  });
  expect(created.outs!.connection).toEqual(conn);

  // No change: diff says so, and an update rewrites nothing (agents see no event).
  const same = await p.diff!(created.id, created.outs!, await checked());
  expect(same.changes).toBe(false);
  const rev = created.outs!.revision;
  expect((await p.update!(created.id, created.outs!, await checked())).outs!.revision).toBe(rev);

  // Audit on and egress added: an update in place, not a replacement.
  const news = await checked({ audit: true, egress: [{ toCidrs: ["10.178.0.0/24"] }] });
  const d = await p.diff!(created.id, created.outs!, news);
  expect(d).toMatchObject({ changes: true, replaces: [] });
  const updated = await p.update!(created.id, created.outs!, news);
  expect(updated.outs!.revision).toBeGreaterThan(rev);
  const after = JSON.parse((await getValue(conn, created.id))!);
  expect(after.audit).toBe(true);
  expect(after.egress).toEqual([{ toCidrs: ["10.178.0.0/24"] }]);
  expect(after.policyId).toBe(created.outs!.policyId);

  // A rename is a replacement, the new record written before the old one goes.
  const renamed = await p.diff!(created.id, updated.outs!, { ...news, policyName: "api2" });
  expect(renamed).toMatchObject({ changes: true, replaces: ["policyName"], deleteBeforeReplace: false });

  await p.delete!(created.id, updated.outs!);
  expect(await keysUnder(conn, `${PREFIX}/`)).toEqual([]);
}, 30_000);

test("a second NetworkPolicy on a taken name fails naming the owner; delete of a foreign record leaves it", async () => {
  const first = await p.create!(await checked({ policyName: "taken" }));
  const key = policyKey(PREFIX, "taken");
  await expect(p.create!(await checked({ policyName: "taken", audit: true }))).rejects.toThrow(`belongs to another NetworkPolicy (policyId ${first.outs!.policyId}`);
  await p.delete!(first.id, { ...first.outs!, policyId: "someone-else" });
  expect(await getValue(conn, key)).not.toBeNull();
  await p.delete!(first.id, first.outs!);
  expect(await getValue(conn, key)).toBeNull();
  await p.delete!(first.id, first.outs!); // idempotent
});

test("refresh reports a hand edit, a hand-broken record and a removal", async () => {
  const made = await p.create!(await checked({ policyName: "drift" }));
  const key = made.id;
  expect(await p.read!(key, made.outs!)).toEqual({ id: key, props: made.outs });

  const edited = { ...JSON.parse((await getValue(conn, key))!), endpointSelector: { app: "other" } };
  await putValue(conn, key, JSON.stringify(edited));
  const r1 = await p.read!(key, made.outs!);
  expect(r1.props!.endpointSelector).toEqual({ app: "other" });
  expect((await p.diff!(key, r1.props as NetworkPolicyOutputs, await checked({ policyName: "drift" }))).changes).toBe(true);

  await putValue(conn, key, JSON.stringify({ ...edited, ingress: [{ toPorts: [{ port: 0 }] }] }));
  const r2 = await p.read!(key, made.outs!);
  expect(r2.props!.storedProblems!.join()).toContain("port");
  // The next up repairs it.
  expect((await p.diff!(key, r2.props as NetworkPolicyOutputs, await checked({ policyName: "drift" }))).changes).toBe(true);
  await p.update!(key, r2.props as NetworkPolicyOutputs, await checked({ policyName: "drift" }));
  expect(JSON.parse((await getValue(conn, key))!).endpointSelector).toEqual({ app: "api" });

  await deleteKey(conn, key);
  expect(await p.read!(key, made.outs!)).toEqual({ id: "" });
  // update re-creates a record deleted by hand.
  await p.update!(key, made.outs!, await checked({ policyName: "drift" }));
  expect(await getValue(conn, key)).not.toBeNull();
  await p.delete!(key, made.outs!);
});

test("preview: unknown values pass check; diff reports a change", async () => {
  const r = await p.check!({} as NetworkPolicyInputs, inputs({ endpointSelector: UNKNOWN, prefix: UNKNOWN }));
  expect(r.failures).toEqual([]);
  const made = await p.create!(await checked({ policyName: "prev" }));
  expect((await p.diff!(made.id, made.outs!, inputs({ policyName: "prev", endpointSelector: { app: UNKNOWN } }))).changes).toBe(true);
  await p.delete!(made.id, made.outs!);
});

test("the serialized provider runs check, create, read and delete in a fresh process", async () => {
  const { file, text } = await serialize(dir, "networkPolicy", p);
  expect(text).toContain('require("etcd3")');
  expect(text).not.toContain("__dirname");
  const bad = await callFresh(file, "check", {}, inputs({ policyName: "ser", ingress: [{ toPorts: [{ port: 80, protocol: "UDP", http: [{ path: "/" }] }] }] }));
  expect(bad.failures[0].property).toBe("ingress[0].toPorts[0].http");
  const good = await callFresh(file, "check", {}, inputs({ policyName: "ser" }));
  expect(good.failures).toEqual([]);
  const created = await callFresh(file, "create", good.inputs);
  expect(JSON.parse((await getValue(conn, created.id))!).policyId).toBe(created.outs.policyId);
  expect(await callFresh(file, "read", created.id, created.outs)).toEqual({ id: created.id, props: created.outs });
  await callFresh(file, "delete", created.id, created.outs);
  expect(await getValue(conn, created.id)).toBeNull();
}, 60_000);

describe("resource class (Pulumi mocks)", () => {
  const registered: pulumi.runtime.MockResourceArgs[] = [];
  beforeAll(() => {
    pulumi.runtime.setMocks(
      { newResource: (args) => (registered.push(args), { id: `${args.name}-id`, state: args.inputs }), call: (args) => args.inputs },
      "bpfnet",
      "test",
      false,
    );
  });

  test("takes etcd and prefix from a Network-like object, names the policy after the resource, keeps the connection secret", async () => {
    const network = { prefix: pulumi.output("/bpfnet/m"), etcdConnection: pulumi.output({ endpoints: ["https://10.0.0.5:2379"], keyPem: "KEY", certPem: "C" }) };
    const pol = new NetworkPolicy("api-from-web", { network, endpointSelector: { app: "api" }, ingress: [{ fromEntities: ["host"] }] });
    expect(await (pol.connection as any).isSecret).toBe(true);
    await new Promise<void>((r) => pol.urn.apply(() => r()));
    const args = registered.find((a) => a.name === "api-from-web")!;
    expect(args.type).toBe("pulumi-nodejs:dynamic/bpfnet:NetworkPolicy");
    expect(args.inputs).toMatchObject({ prefix: "/bpfnet/m", policyName: "api-from-web", endpointSelector: { app: "api" } });
    expect(args.inputs.connection["4dabf18193072939515e22adb298388d"]).toBe("1b47061264138c4ac30d75fd1eb44270");
    expect(() => new NetworkPolicy("lost", { endpointSelector: {}, ingress: [] })).toThrow(/give network/);
  });
});
