/**
 * The l3 fast path in a 2-host l3 lab (tpf2, real agents): bpf_lxc sends another host's pod
 * traffic (a bpfnet_routes row) straight out of the underlay device with the FIB's next hop and
 * MACs (bpf_fib_lookup + bpf_redirect), and the receiving host's bpf_netdev delivers it into the
 * container with bpf_redirect_peer, skipping bpfnet_host. The fallbacks: a missing neighbour →
 * bpf_redirect_neigh (the kernel resolves it, the packet is answered) and the next packet fast; a
 * FIB that would not forward (an unreachable route) → the host stack, which answers with its ICMP
 * error; a destination without a route row → the host stack (and answered); without bpf_netdev
 * the stack path and bpf_host still deliver. Each path is counted.
 *
 * Needs root, and dist/ built (`npx tsc -p tsconfig.build.json`).
 */
import { ChildProcess, execFileSync } from "child_process";
import { DatapathMaps, openDatapathMaps, TcHook, Verdict } from "../../bpf";
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "./support/etcd";
import { addContainerNetns, checkBuilt, inNetns, LabAgent, ping, removeContainers, seedNetwork, tcpTransfer, waitFor } from "./support/agents";

const LAB = "tpf2";
const OCTET = 121;
const PREFIX = "/bpfnet/tpf2";
const CONTAINERS = ["tpfcl1", "tpfcl2"];

let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let agents: LabAgent[] = [];
let cidrs: Record<string, string> = {};
const maps: DatapathMaps[] = [];
const children: ChildProcess[] = [];
const ips: string[] = [];
const hostIfindex: number[] = [];
const host = (i: number) => lab!.inventory.hosts[i];
const underlayIfindex = (i: number) => Number(inNetns(host(i).netns!, ["cat", `/sys/class/net/${host(i).underlayInterface}/ifindex`]).stdout.trim());
const count = (i: number, id: number, direction: "ingress" | "egress", reason: number) => maps[i].metrics.get({ id, direction, reason }).packets;

beforeAll(async () => {
  checkBuilt();
  lab = await startTestLab(LAB, OCTET, "l3", 2);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  cidrs = await seedNetwork(etcd.connection, { prefix: PREFIX, mode: "l3", clusterCidr: "10.82.0.0/16" }, lab.inventory.hosts.map((h) => h.name));
  agents = lab.inventory.hosts.map((h) => new LabAgent(h, { prefix: PREFIX, etcd: etcd!.connection }));
  await Promise.all(agents.map((a) => a.start()));
  for (const h of lab.inventory.hosts) execFileSync("ip", ["-n", lab.inventory.router!.netns!, "route", "add", cidrs[h.name], "via", h.underlayIp]);
  for (const h of lab.inventory.hosts) maps.push(openDatapathMaps(h.bpffsDir));
  for (const [i, c] of CONTAINERS.entries()) {
    addContainerNetns(c);
    const ep = (await agents[i].client.addEndpoint({ id: c, netns: `/run/netns/${c}` })).endpoint;
    ips.push(ep.ip);
    hostIfindex.push(ep.hostIfindex!);
  }
}, 90_000);

afterAll(async () => {
  await cleanupAll([
    ...children.map((c) => () => c.kill("SIGKILL")),
    ...agents.map((a) => () => a.stop()),
    () => maps.forEach((m) => m.close()),
    () => removeContainers(CONTAINERS),
    () => etcd?.stop(),
    () => lab?.down(),
  ]);
}, 60_000);

test("each agent routes the other host's pod CIDR to its underlay device and runs bpf_netdev on it", async () => {
  for (const i of [0, 1]) {
    const other = host(1 - i).name;
    await waitFor(`${host(i).name}'s route row for ${other}`, () => maps[i].routes.entries().length === 1);
    expect(maps[i].routes.entries()).toEqual([[cidrs[other], { ifindex: underlayIfindex(i), flags: 0 }]]);
    const s = await agents[i].status();
    expect(s.programs.find((p) => p.program === "netdev")).toMatchObject({ device: host(i).underlayInterface, current: true, direction: "ingress" });
  }
});

test("container to container across hosts: out by the FIB's next hop (bpf_redirect), in by redirect_peer, bpfnet_host skipped, TTL as on the stack path", async () => {
  const h2Host = (await agents[1].status()).devices.find((d) => d.name === "bpfnet_host")!.ifindex!;
  const before = {
    fast: count(0, hostIfindex[0], "ingress", Verdict.ROUTE_FAST),
    neigh: count(0, hostIfindex[0], "ingress", Verdict.ROUTE_NEIGH),
    stack: count(0, hostIfindex[0], "ingress", Verdict.ROUTE_STACK) + count(0, hostIfindex[0], "ingress", Verdict.ROUTE_FIB_STACK),
    peer: count(1, underlayIfindex(1), "ingress", Verdict.PEER),
    viaHost: count(1, h2Host, "egress", Verdict.FORWARDED),
  };
  const r = inNetns(CONTAINERS[0], ["ping", "-n", "-c", "5", "-i", "0.1", "-W", "2", ips[1]]);
  expect(r.stdout).toMatch(/5 received/);
  // Three routing hops as before (h1, router, h2): 64 - 3 on the reply's way back too.
  expect(r.stdout).toMatch(/ttl=61/);
  // The first packet may find the router's neighbour entry unresolved (route-neigh); the rest go fast.
  const neigh = count(0, hostIfindex[0], "ingress", Verdict.ROUTE_NEIGH) - before.neigh;
  expect(neigh).toBeLessThanOrEqual(1n);
  expect(count(0, hostIfindex[0], "ingress", Verdict.ROUTE_FAST) - before.fast + neigh).toBeGreaterThanOrEqual(5n);
  expect(count(0, hostIfindex[0], "ingress", Verdict.ROUTE_STACK) + count(0, hostIfindex[0], "ingress", Verdict.ROUTE_FIB_STACK) - before.stack).toBe(0n);
  expect(count(1, underlayIfindex(1), "ingress", Verdict.PEER) - before.peer).toBeGreaterThanOrEqual(5n);
  expect(count(1, h2Host, "egress", Verdict.FORWARDED) - before.viaHost).toBe(0n);

  // Bulk TCP (GSO packets redirected whole, segmented by the device): intact.
  const t = await tcpTransfer(CONTAINERS[0], CONTAINERS[1], ips[1], 10 * 1024 * 1024, 7101, children);
  expect(t.received).toEqual({ n: t.sent, sha: t.sha });
});

test("neighbour missing: bpf_redirect_neigh, the kernel resolves the next hop and answers; then the FIB's MACs, fast", async () => {
  const dev = host(0).underlayInterface;
  const gw = lab!.inventory.router!.hostGateways[host(0).name];
  const c = () => ({
    fast: count(0, hostIfindex[0], "ingress", Verdict.ROUTE_FAST),
    neigh: count(0, hostIfindex[0], "ingress", Verdict.ROUTE_NEIGH),
    stack: count(0, hostIfindex[0], "ingress", Verdict.ROUTE_STACK) + count(0, hostIfindex[0], "ingress", Verdict.ROUTE_FIB_STACK),
  });
  // The host's own traffic (the agent's health probes) may resolve the router again between the
  // flush and the ping; such a try shows nothing and is repeated.
  let c1 = c();
  for (let attempt = 0; attempt < 5; attempt++) {
    execFileSync("ip", ["-n", host(0).netns!, "neigh", "flush", "dev", dev]);
    expect(inNetns(host(0).netns!, ["ip", "neigh", "show", gw, "dev", dev]).stdout).not.toMatch(/lladdr/);
    const c0 = c1;
    expect(ping(CONTAINERS[0], ips[1], 1, 0.2, 3)).toMatchObject({ ok: true, received: 1 });
    c1 = c();
    if (c1.neigh - c0.neigh === 0n && c1.fast - c0.fast === 1n) continue;
    expect([c1.fast - c0.fast, c1.neigh - c0.neigh, c1.stack - c0.stack]).toEqual([0n, 1n, 0n]);
    break;
  }
  expect(c1.neigh).toBeGreaterThan(0n);
  // The router's neighbour entry came back (resolved for the redirected packet) …
  expect(inNetns(host(0).netns!, ["ip", "neigh", "show", gw, "dev", dev]).stdout).toMatch(/lladdr/);
  // … so the next packets go by the FIB's MACs.
  expect(ping(CONTAINERS[0], ips[1], 3, 0.2, 3)).toMatchObject({ ok: true, received: 3 });
  const c2 = c();
  expect([c2.fast - c1.fast, c2.neigh - c1.neigh, c2.stack - c1.stack]).toEqual([3n, 0n, 0n]);
});

test("the FIB would not forward (an unreachable route for the peer's pod CIDR): the host stack gets it and answers with its ICMP error; the route gone, fast again", async () => {
  const ns = host(0).netns!;
  const peerCidr = cidrs[host(1).name];
  const fibStack = () => count(0, hostIfindex[0], "ingress", Verdict.ROUTE_FIB_STACK);
  const fast = () => count(0, hostIfindex[0], "ingress", Verdict.ROUTE_FAST);
  execFileSync("ip", ["-n", ns, "route", "add", "unreachable", peerCidr]);
  let r: ReturnType<typeof ping>;
  const [s0, f0] = [fibStack(), fast()];
  try {
    r = ping(CONTAINERS[0], ips[1], 2, 0.2, 2);
  } finally {
    execFileSync("ip", ["-n", ns, "route", "del", "unreachable", peerCidr]);
  }
  expect(r.received).toBe(0);
  expect(r.output).toMatch(/\+2 errors/); // h1's stack answered each with ICMP unreachable
  expect(fibStack() - s0).toBe(2n);
  expect(fast() - f0).toBe(0n);
  expect(ping(CONTAINERS[0], ips[1], 2, 0.2).received).toBe(2);
  expect(fast() - f0).toBe(2n);
});

test("no route row: the host stack gets the packet (its own address, the router, a deleted row) and answers it", async () => {
  const stack = () => count(0, hostIfindex[0], "ingress", Verdict.ROUTE_STACK);
  const fast = () => count(0, hostIfindex[0], "ingress", Verdict.ROUTE_FAST);
  const s0 = stack();
  const f0 = fast();
  expect(ping(CONTAINERS[0], host(0).underlayIp, 2, 0.2).received).toBe(2);
  expect(ping(CONTAINERS[0], lab!.inventory.router!.hostGateways[host(0).name], 2, 0.2).received).toBe(2);
  expect(stack() - s0).toBeGreaterThanOrEqual(4n);
  expect(fast() - f0).toBe(0n);
  // The row of h2's pod CIDR gone (the agent stopped, so nothing puts it back): the stack path
  // still delivers; the next agent writes the row again.
  await agents[0].stop();
  maps[0].routes.delete(cidrs[host(1).name]);
  const s1 = stack();
  expect(ping(CONTAINERS[0], ips[1], 2, 0.2).received).toBe(2);
  expect(stack() - s1).toBeGreaterThanOrEqual(2n);
  await agents[0].start();
  await waitFor("the route row back after the restart", () => maps[0].routes.entries().length === 1);
  expect(maps[0].routes.entries().map(([c]) => c)).toEqual([cidrs[host(1).name]]);
}, 60_000);

test("without bpf_netdev the host stack and bpf_host still deliver; a restart attaches it again", async () => {
  const s2 = await agents[1].status();
  const netdev = s2.programs.find((p) => p.program === "netdev")!;
  const h2Host = s2.devices.find((d) => d.name === "bpfnet_host")!.ifindex!;
  TcHook.open(netdev.ifindex, netdev.direction, { netns: agents[1].netns }).detach();
  const viaHost0 = count(1, h2Host, "egress", Verdict.FORWARDED);
  expect(ping(CONTAINERS[0], ips[1], 3, 0.2).received).toBe(3);
  expect(count(1, h2Host, "egress", Verdict.FORWARDED) - viaHost0).toBeGreaterThanOrEqual(3n);
  await agents[1].stop();
  await agents[1].start();
  expect((await agents[1].status()).programs.find((p) => p.program === "netdev")).toMatchObject({ current: true });
  const peer0 = count(1, underlayIfindex(1), "ingress", Verdict.PEER);
  expect(ping(CONTAINERS[0], ips[1], 3, 0.2).received).toBe(3);
  expect(count(1, underlayIfindex(1), "ingress", Verdict.PEER) - peer0).toBeGreaterThanOrEqual(3n);
}, 60_000);
