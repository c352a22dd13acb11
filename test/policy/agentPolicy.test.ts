/**
 * The node agents' policy control plane in a 2-host vxlan lab: endpoints added with labels get
 * cluster-wide identities (same labels, same number on every host), their etcd records carry
 * them, `bpfnet endpoint list` shows identity and enforcement, and a NetworkPolicy written
 * through the provider switches the selected endpoint's ingress to enforced on its host only,
 * live, and back when deleted. An agent restart keeps the identities. (Traffic under policy:
 * threeTier.test.ts.) Needs root, and dist/ built (scripts/setup).
 */
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "../agent/support/etcd";
import { addContainerNetns, checkBuilt, LabAgent, removeContainers, seedNetwork, waitFor } from "../agent/support/agents";
import { endpointsDir, identitiesDir } from "../../provider/etcd/keys";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { withEtcd } from "../../provider/etcd/etcdClient";
import { networkPolicyProvider as provider, NetworkPolicyInputs } from "../../provider/policy/networkPolicy";

const LAB = "tpol1";
const OCTET = 178;
const PREFIX = "/bpfnet/tpol1";
const CONTAINERS = ["tpolca", "tpolcb", "tpolcc"];

let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let agents: LabAgent[] = [];

beforeAll(async () => {
  checkBuilt();
  lab = await startTestLab(LAB, OCTET, "vxlan", 2);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  await seedNetwork(etcd.connection, { prefix: PREFIX, mode: "vxlan", clusterCidr: "10.81.0.0/16", vni: 9 }, lab.inventory.hosts.map((h) => h.name));
  agents = lab.inventory.hosts.map((h) => new LabAgent(h, { prefix: PREFIX, etcd: etcd!.connection, leaseTtlSeconds: 10 }));
  await Promise.all(agents.map((a) => a.start()));
  for (const c of CONTAINERS) addContainerNetns(c);
}, 90_000);

afterAll(async () => {
  await cleanupAll([...agents.map((a) => () => a.stop()), () => removeContainers(CONTAINERS), () => etcd?.stop(), () => lab?.down()]);
}, 60_000);

async function records(): Promise<Record<string, { ip: string; identity?: number; labels: Record<string, string> }>> {
  return withEtcd(etcd!.connection, async (c) => Object.fromEntries((await listPrefix(c, endpointsDir(PREFIX))).map((kv) => [kv.key.split("/").pop()!, JSON.parse(kv.value)])));
}

/** `bpfnet endpoint list` as {id: "identity=… ingress=… egress=…"}. */
function listed(a: LabAgent): Record<string, string> {
  return Object.fromEntries(
    a
      .cli("endpoint", "list")
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t"))
      .map((f) => [f[0], f[6]]),
  );
}

test("identities per label set across hosts, in the records and the CLI; a policy enforces live on the selected endpoint's host", async () => {
  agents[0].cli("endpoint", "add", "--netns", "/run/netns/tpolca", "--id", "web", "--labels", "app=web");
  agents[1].cli("endpoint", "add", "--netns", "/run/netns/tpolcb", "--id", "api", "--labels", "app=api");
  // Hostile label text (it never reaches a shell) still yields an identity inside its key.
  agents[1].cli("endpoint", "add", "--netns", "/run/netns/tpolcc", "--id", "web2", "--labels", "app=web,note=a/b;$(id)`x`");

  const recs = (await waitFor("identities in the endpoint records", async () => {
    const r = await records();
    return ["web", "api", "web2"].every((id) => r[id]?.identity !== undefined) ? r : undefined;
  }))!;
  expect(recs.web.identity).toBeGreaterThanOrEqual(256);
  expect(new Set([recs.web.identity, recs.api.identity, recs.web2.identity]).size).toBe(3);
  const idKeys = await withEtcd(etcd!.connection, async (c) => (await listPrefix(c, identitiesDir(PREFIX))).map((kv) => kv.key.slice(identitiesDir(PREFIX).length)));
  expect(idKeys.every((k) => k.split("/").length === (k.startsWith("id/") ? 2 : 3))).toBe(true);

  expect(listed(agents[0])).toEqual({ web: `identity=${recs.web.identity} ingress=open egress=open` });
  expect(listed(agents[1]).api).toBe(`identity=${recs.api.identity} ingress=open egress=open`);

  // A policy selecting app=api through the provider: enforced on h2 only, applied live.
  const inputs = {
    connection: etcd!.connection,
    prefix: PREFIX,
    policyName: "api-from-web",
    endpointSelector: { app: "api" },
    ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP" }] }, { fromEntities: ["host"] }],
  } as NetworkPolicyInputs;
  const made = await provider.create!((await provider.check!({} as NetworkPolicyInputs, inputs)).inputs!);
  await waitFor("api enforced on h2", () => listed(agents[1]).api === `identity=${recs.api.identity} ingress=enforced egress=open`);
  expect(listed(agents[0]).web).toBe(`identity=${recs.web.identity} ingress=open egress=open`);
  const s = await agents[1].status();
  expect(s.policy).toMatchObject({ synced: true, policies: 1, problems: [], warnings: [] });
  expect(s.policy!.identities).toBeGreaterThanOrEqual(3);
  const api = await agents[1].client.getEndpoint("api");
  expect(api).toMatchObject({ identity: recs.api.identity, ingress: "enforced", egress: "open", policies: ["api-from-web"] });

  // Restart: the identities come back as they were (restored, not allocated anew), and no
  // record is ever written without its identity meanwhile (peers would see world for a moment).
  const written: { id: string; identity?: number }[] = [];
  const client = (await import("../../provider/etcd/etcdClient")).connect(etcd!.connection);
  const watcher = await client.watch().prefix(endpointsDir(PREFIX)).create();
  watcher.on("put", (kv) => written.push(JSON.parse(kv.value.toString())));
  try {
    await agents[1].stop();
    await agents[1].start();
    await waitFor("api enforced again after restart", () => listed(agents[1]).api === `identity=${recs.api.identity} ingress=enforced egress=open`);
    expect((await agents[1].status()).policy!.allocations).toBe(0);
    expect((await records()).web2.identity).toBe(recs.web2.identity);
    expect(written.filter((r) => r.identity === undefined)).toEqual([]);
  } finally {
    await watcher.cancel();
    client.close();
  }

  await provider.delete!(made.id, made.outs!);
  await waitFor("api open again", () => listed(agents[1]).api === `identity=${recs.api.identity} ingress=open egress=open`);
}, 120_000);
