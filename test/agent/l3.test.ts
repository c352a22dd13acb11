/**
 * The agent in an l3 lab: hosts sit in their own subnets behind a router; no VXLAN device,
 * an empty tunnel map, and the router routes each pod CIDR to its host (added by hand here, as
 * an operator or BGP would). Packets from a container leave by the underlay device (bpf_lxc's
 * fast path) and the other host's bpf_netdev delivers them; without it, they arrive on its
 * bpfnet_host, whose program delivers them (test/agent/fastPath.test.ts has the fast path).
 *
 * Needs root, and dist/ built (`npx tsc -p .`; scripts/setup runs it before the tests).
 */
import { ChildProcess, execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { DatapathMaps, openDatapathMaps, TcHook, Verdict } from "../../bpf";
import { listPrefix } from "../../provider/etcd/etcdOps";
import { withEtcd } from "../../provider/etcd/etcdClient";
import { endpointsDir, nodeKey } from "../../provider/etcd/keys";
import { startTestLab, TestLab } from "../support/lab";
import { LabEtcd, startEtcdOn } from "./support/etcd";
import { addContainerNetns, checkBuilt, CLI, inNetns, LabAgent, ping, removeContainers, seedNetwork, tcpTransfer, waitFor } from "./support/agents";
import { cleanupAll } from "../support/cleanup";

const LAB = "tagt2";
const OCTET = 232;
const PREFIX = "/bpfnet/tagt2";
const CONTAINERS = ["tagtcl1", "tagtcl2"];

let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let agents: LabAgent[] = [];
let cidrs: Record<string, string> = {};
const maps: DatapathMaps[] = [];
const children: ChildProcess[] = [];
const ips: string[] = [];

beforeAll(async () => {
  checkBuilt();
  lab = await startTestLab(LAB, OCTET, "l3", 2);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  const spec = { prefix: PREFIX, mode: "l3", clusterCidr: "10.81.0.0/16" };
  // h1's agent starts before its allocation exists: it must wait for it, then come up.
  cidrs = await seedNetwork(etcd.connection, spec, ["h2"]);
  agents = lab.inventory.hosts.map((h) => new LabAgent(h, { prefix: PREFIX, etcd: etcd!.connection }));
  const starting = Promise.all(agents.map((a) => a.start()));
  await waitFor("h1's agent to say what it waits for", () => /waiting for etcd.*ipam\/v1\/hosts\/h1/.test(agents[0].tail(5)));
  expect(agents[0].proc!.exitCode).toBeNull();
  Object.assign(cidrs, await seedNetwork(etcd.connection, spec, ["h1"]));
  await starting;
  for (const h of lab.inventory.hosts) {
    execFileSync("ip", ["-n", lab.inventory.router!.netns!, "route", "add", cidrs[h.name], "via", h.underlayIp]);
  }
  for (const h of lab.inventory.hosts) maps.push(openDatapathMaps(h.bpffsDir));
  for (const [i, c] of CONTAINERS.entries()) {
    addContainerNetns(c);
    ips.push((await agents[i].client.addEndpoint({ id: c, netns: `/run/netns/${c}` })).endpoint.ip);
  }
}, 90_000);

afterAll(async () => {
  const steps: (() => unknown)[] = [
    ...children.map((c) => () => c.kill("SIGKILL")),
    ...agents.map((a) => () => a.stop()),
    () => maps.forEach((m) => m.close()),
    () => removeContainers(CONTAINERS),
    () => etcd?.stop(),
    () => lab?.down(),
  ];
  await cleanupAll(steps);
}, 60_000);

test("l3 mode: no VXLAN device, no tunnel entries, bpf_host, bpf_netdev and bpf_lxc", async () => {
  for (const [i, a] of agents.entries()) {
    const s = await a.status();
    expect(s.agent.mode).toBe("l3");
    expect(s.devices.map((d) => d.name)).toEqual(["bpfnet_host"]);
    // bpf_lxc once per endpoint (the container's, and any the agent makes itself).
    expect(s.programs.filter((p) => p.program !== "lxc").map((p) => `${p.program}@${p.current}`)).toEqual(["host@true", "netdev@true"]);
    expect(s.programs.filter((p) => p.program === "lxc").every((p) => p.current)).toBe(true);
    expect(s.peers).toHaveLength(1); // known, but nothing uses the tunnel map
    expect(maps[i].tunnel.entries()).toEqual([]);
    expect(maps[i].config.get().mode).toBe("l3");
  }
});

test("containers on two hosts reach each other through the router and bpf_netdev", async () => {
  const s2 = await agents[1].status();
  const netdev2 = s2.programs.find((p) => p.program === "netdev")!.ifindex;
  const ep1 = (await agents[0].client.getEndpoint(CONTAINERS[0]))!;
  const delivered = () => maps[1].metrics.get({ id: netdev2, direction: "ingress", reason: Verdict.FORWARDED }).packets;
  // Sent fast: by the FIB's MACs, or (the router's neighbour not yet resolved) by bpf_redirect_neigh.
  const passed = () => [Verdict.ROUTE_FAST, Verdict.ROUTE_NEIGH].reduce((n, reason) => n + maps[0].metrics.get({ id: ep1.hostIfindex!, direction: "ingress", reason }).packets, 0n);
  const [d0, p0] = [delivered(), passed()];
  const r = ping(CONTAINERS[0], ips[1], 5, 0.1);
  expect(r).toMatchObject({ ok: true, received: 5 });
  expect(ping(CONTAINERS[1], ips[0], 5, 0.1).ok).toBe(true);
  console.log(`l3 ping h1→h2 containers: avg RTT ${r.rttAvgMs} ms`);
  expect(delivered() - d0).toBeGreaterThanOrEqual(10n); // requests of one ping, replies of the other
  expect(passed() - p0).toBeGreaterThanOrEqual(10n); // bpf_lxc sends cross-host packets out of the underlay device

  const t = await tcpTransfer(CONTAINERS[0], CONTAINERS[1], ips[1], 10 * 1024 * 1024, 7001, children);
  expect(t.received).toEqual({ n: t.sent, sha: t.sha });
  console.log(`l3 TCP: 10 MiB in ${t.ms} ms (sha256 verified)`);
});

test("without bpf_netdev and bpf_host on the receiving host the traffic stops; a restart restores it", async () => {
  const s2 = await agents[1].status();
  for (const program of ["netdev", "host"]) {
    const p = s2.programs.find((x) => x.program === program)!;
    TcHook.open(p.ifindex, p.direction, { netns: agents[1].netns }).detach();
  }
  expect(ping(CONTAINERS[0], ips[1], 2, 0.2, 1).received).toBe(0);
  await agents[1].stop();
  await agents[1].start();
  expect(ping(CONTAINERS[0], ips[1], 2).ok).toBe(true);
}, 60_000);

test("teardown removes the devices, endpoints, pins, etcd keys and state of a stopped agent", async () => {
  const a = agents[1];
  const ep = (await a.client.getEndpoint(CONTAINERS[1]))!;
  const netdev = (await a.status()).programs.find((p) => p.program === "netdev")!;
  await a.stop();
  // Run where the agent runs: inside the host's namespace.
  const out = spawnSync("ip", ["netns", "exec", a.netns, process.execPath, CLI, "agent", "teardown", "--config", a.configPath], { encoding: "utf8" });
  expect(out.status).toBe(0);
  expect(inNetns(a.netns, ["ip", "link", "show", "bpfnet_host"]).status).not.toBe(0);
  // The underlay device stays (the host's own), without bpf_netdev.
  expect(TcHook.open(netdev.ifindex, netdev.direction, { netns: a.netns }).query()).toBeUndefined();
  expect(inNetns(a.netns, ["ip", "link", "show", ep.hostIfname]).status).not.toBe(0);
  expect(fs.readdirSync(a.host.bpffsDir).filter((f) => f.startsWith("bpfnet_"))).toEqual([]);
  expect(fs.existsSync(path.join(a.host.stateDir, "endpoints.json"))).toBe(false);
  await withEtcd(etcd!.connection, async (c) => {
    expect(await c.get(nodeKey(PREFIX, a.host.name)).string()).toBeNull();
    expect((await listPrefix(c, endpointsDir(PREFIX, a.host.name))).length).toBe(0);
  });
  // Its container went with it.
  expect(ping(CONTAINERS[0], ips[1], 1, 0.2, 1).ok).toBe(false);
});
