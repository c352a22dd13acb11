/**
 * A closed datapath, end to end in a 3-host vxlan lab with real agents: h1 and h2 are members
 * of the network, h3 sits on the same underlay but is not one. VXLAN that h3 sends to h1 with
 * the network's VNI reaches no pod and is counted as unknown-peer on h1; once h3 registers as a
 * member the same packets are delivered (so the setup itself would deliver), while another VNI
 * is still refused (bad-vni). A container that
 * sends with another container's source address gets nothing through (spoofed-source).
 *
 * Needs root, and dist/ built (`npx tsc -p .`; scripts/setup runs it before the tests).
 */
import { DatapathMaps, DropReason, openDatapathMaps, Verdict } from "../../bpf";
import { nodeKey } from "../../provider/etcd/keys";
import { allocate, release } from "../../provider/ipam/ipamStore";
import { withEtcd } from "../../provider/etcd/etcdClient";
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "./support/etcd";
import { addContainerNetns, checkBuilt, echoesIn, inNetns, LabAgent, ping, removeContainers, seedNetwork, waitFor } from "./support/agents";

const LAB = "tcl1";
const OCTET = 160;
const PREFIX = "/bpfnet/tcl1";
const VNI = 9;
const CONTAINERS = ["tagtcla", "tagtclb", "tagtclc"];
const ATTACK_DEV = "tclvx"; // h3's own VXLAN device: a plain, static one, as any underlay process could make
const WRONG_VNI_DEV = "tclvx2"; // the same, with another VNI

let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let agents: LabAgent[] = [];
const maps: DatapathMaps[] = [];
const ips: Record<string, string> = {};

const host = (i: number) => lab!.inventory.hosts[i];
const conn = () => etcd!.connection;

function ipIn(netns: string, ...args: string[]): void {
  const r = inNetns(netns, ["ip", ...args]);
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")} in ${netns}: ${r.stderr}`);
}

beforeAll(async () => {
  checkBuilt();
  lab = await startTestLab(LAB, OCTET, "vxlan", 3);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  // Only h1 and h2 are members; h3 is a bystander on the underlay.
  await seedNetwork(conn(), { prefix: PREFIX, mode: "vxlan", clusterCidr: "10.161.0.0/16", vni: VNI }, ["h1", "h2"]);
  agents = [0, 1].map((i) => new LabAgent(host(i), { prefix: PREFIX, etcd: conn(), leaseTtlSeconds: 10, resyncSeconds: 2 }));
  await Promise.all(agents.map((a) => a.start()));
  for (const a of agents) maps.push(openDatapathMaps(a.host.bpffsDir));
  for (const c of CONTAINERS) addContainerNetns(c);
  const add = async (i: number, id: string, netns: string) => {
    ips[netns] = (await agents[i].client.addEndpoint({ id, netns: `/run/netns/${netns}` })).endpoint.ip;
  };
  await add(0, "ca", "tagtcla");
  await add(1, "cb", "tagtclb");
  await add(0, "cc", "tagtclc");
}, 120_000);

afterAll(async () => {
  await cleanupAll([
    ...agents.map((a) => () => a.stop()),
    () => maps.forEach((m) => m.close()),
    () => removeContainers(CONTAINERS),
    () => etcd?.stop(),
    () => lab?.down(),
  ]);
}, 60_000);

test("each member's VXLAN device is bound to its underlay address and admits exactly the other members", async () => {
  for (const [i, a] of agents.entries()) {
    const link = JSON.parse(inNetns(a.netns, ["ip", "-d", "-j", "link", "show", "bpfnet_vxlan"]).stdout)[0];
    expect(link.linkinfo.info_data).toMatchObject({ external: true, local: a.host.underlayIp });
    const other = agents[1 - i].host.underlayIp;
    await waitFor(`${a.host.name}'s peer map`, () => maps[i].peers.entries().length === 1);
    expect(maps[i].peers.entries().map(([ip]) => ip)).toEqual([other]);
  }
  // Members still talk: the closed overlay admits them.
  expect(ping("tagtcla", ips.tagtclb, 3, 0.1)).toMatchObject({ ok: true, received: 3 });
});

test("a non-member on the underlay sending VXLAN with the network's VNI delivers nothing; h1 counts unknown-peer", async () => {
  const h1 = agents[0];
  const h3 = host(2);
  const vx1 = (await h1.status()).devices.find((d) => d.name === "bpfnet_vxlan")!.ifindex!;
  const podA = ips.tagtcla;
  // h3 tunnels to h1 with the right VNI and port; the inner packet claims to come from pod B.
  ipIn(h3.netns!, "link", "add", ATTACK_DEV, "type", "vxlan", "id", String(VNI), "remote", h1.host.underlayIp, "local", h3.underlayIp, "dstport", "8472");
  ipIn(h3.netns!, "link", "set", ATTACK_DEV, "up");
  ipIn(h3.netns!, "addr", "add", `${ips.tagtclb}/32`, "dev", ATTACK_DEV);
  ipIn(h3.netns!, "route", "add", `${podA}/32`, "dev", ATTACK_DEV);
  ipIn(h3.netns!, "neigh", "replace", podA, "lladdr", "02:00:00:00:00:aa", "dev", ATTACK_DEV, "nud", "permanent");

  const counted = (reason: number) => maps[0].metrics.get({ id: vx1, direction: "ingress", reason }).packets;
  const rxBefore = echoesIn("tagtcla");
  const droppedBefore = counted(DropReason.UNKNOWN_PEER);
  const forwardedBefore = counted(Verdict.FORWARDED);
  const r = ping(h3.netns!, podA, 5, 0.1, 1);
  expect(r.received).toBe(0);
  await waitFor("h1 to count the non-member's packets", () => counted(DropReason.UNKNOWN_PEER) - droppedBefore >= 5n, 10_000);
  expect(counted(Verdict.FORWARDED)).toBe(forwardedBefore);
  expect(echoesIn("tagtcla")).toBe(rxBefore);
  expect((await h1.status()).counters.dropped["unknown-peer"]).toBeDefined();

  // Control: the very same packets are delivered once h3 is a member (registration + allocation).
  await withEtcd(conn(), async (c) => {
    await allocate(c, { prefix: PREFIX, host: "h3", allocationId: "alloc-h3" });
    const record = { schema: 1, host: "h3", underlayIp: h3.underlayIp, podCidr: "", agentVersion: "test", incarnation: "test", startedAt: new Date().toISOString() };
    await c.put(nodeKey(PREFIX, "h3")).value(JSON.stringify(record)).exec();
  });
  try {
    await waitFor("h1 to admit h3", () => maps[0].peers.get(h3.underlayIp) !== undefined);
    const delivered = await waitFor("h3's packets to reach pod A", () => {
      ping(h3.netns!, podA, 2, 0.1, 1); // replies go to pod B's address on h2, so only delivery is checked
      return echoesIn("tagtcla") > rxBefore;
    }, 15_000, 200);
    expect(delivered).toBe(true);

    // A member with another VNI is refused too (bad-vni), and nothing reaches the pod.
    ipIn(h3.netns!, "link", "add", WRONG_VNI_DEV, "type", "vxlan", "id", String(VNI + 1), "remote", h1.host.underlayIp, "local", h3.underlayIp, "dstport", "8472");
    ipIn(h3.netns!, "link", "set", WRONG_VNI_DEV, "up");
    ipIn(h3.netns!, "route", "replace", `${podA}/32`, "dev", WRONG_VNI_DEV);
    ipIn(h3.netns!, "neigh", "replace", podA, "lladdr", "02:00:00:00:00:aa", "dev", WRONG_VNI_DEV, "nud", "permanent");
    const echoes = echoesIn("tagtcla");
    const badVni = counted(DropReason.BAD_VNI);
    expect(ping(h3.netns!, podA, 3, 0.1, 1).received).toBe(0);
    await waitFor("h1 to count the wrong VNI", () => counted(DropReason.BAD_VNI) - badVni >= 3n, 10_000);
    expect(echoesIn("tagtcla")).toBe(echoes);
    ipIn(h3.netns!, "route", "replace", `${podA}/32`, "dev", ATTACK_DEV);
  } finally {
    await withEtcd(conn(), async (c) => {
      await c.delete().key(nodeKey(PREFIX, "h3")).exec();
      await release(c, { prefix: PREFIX, host: "h3", allocationId: "alloc-h3" });
    });
  }
  // Removed again: refused again.
  await waitFor("h1 to drop h3 from its peers", () => maps[0].peers.get(h3.underlayIp) === undefined);
  const rxAfterControl = echoesIn("tagtcla");
  const droppedAgain = counted(DropReason.UNKNOWN_PEER);
  expect(ping(h3.netns!, podA, 3, 0.1, 1).received).toBe(0);
  await waitFor("h1 to count them again", () => counted(DropReason.UNKNOWN_PEER) - droppedAgain >= 3n, 10_000);
  expect(echoesIn("tagtcla")).toBe(rxAfterControl);
}, 90_000);

test("a container sending with another container's source address gets nothing through", async () => {
  const c = (await agents[0].client.getEndpoint("cc"))!;
  const counted = (reason: number) => maps[0].metrics.get({ id: c.hostIfindex!, direction: "ingress", reason }).packets;
  const before = { spoofed: counted(DropReason.SPOOFED_SOURCE), forwarded: counted(Verdict.FORWARDED) };
  const rxB = echoesIn("tagtclb");
  const rxA = echoesIn("tagtcla");
  const rxHost = echoesIn(agents[0].netns);

  // C claims A's address (a pod of its own host) towards a pod on another host and towards
  // the host itself, then B's (a pod of another host) towards a pod on its own host. One claimed
  // address at a time: a destination that is local to C would never leave C.
  const gateway = (await agents[0].status()).agent.gateway;
  const pingFrom = (src: string, dst: string) => inNetns("tagtclc", ["ping", "-n", "-q", "-c", "3", "-i", "0.1", "-W", "1", "-I", src, dst]);
  for (const [src, dsts] of [[ips.tagtcla, [ips.tagtclb, gateway]], [ips.tagtclb, [ips.tagtcla]]] as const) {
    ipIn("tagtclc", "addr", "add", `${src}/32`, "dev", "eth0");
    try {
      for (const dst of dsts) expect(pingFrom(src, dst).status).not.toBe(0);
    } finally {
      ipIn("tagtclc", "addr", "del", `${src}/32`, "dev", "eth0");
    }
  }
  expect(counted(DropReason.SPOOFED_SOURCE) - before.spoofed).toBeGreaterThanOrEqual(9n);
  expect(counted(Verdict.FORWARDED)).toBe(before.forwarded);
  expect(echoesIn(agents[0].netns)).toBe(rxHost); // (C's own IPv6/ARP chatter still passes to the stack)
  expect(echoesIn("tagtclb")).toBe(rxB);
  expect(echoesIn("tagtcla")).toBe(rxA);

  // C's own address still works.
  expect(ping("tagtclc", ips.tagtclb, 3, 0.1).received).toBe(3);
}, 60_000);
