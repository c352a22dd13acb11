/**
 * The node agent end to end in a 3-host vxlan lab: real agents (one process per host, inside
 * the host's namespace), a real etcd on the lab's management bridge, containers (namespaces
 * tagtc…) added through the CLI, the API and cnitool + bpfnet-cni. Traffic between containers
 * on different hosts must go through our programs: the counters grow with it, detaching the
 * programs breaks it, and an agent restart does not interrupt it.
 *
 * Needs root, and dist/ built (`npx tsc -p .`; scripts/setup runs it before the tests).
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DatapathMaps, DropReason, openDatapathMaps, TcHook, Verdict } from "../../bpf";
import { hostVethName, tempPeerName } from "../../node-agent/daemon/endpoints";
import { cidrKey, endpointKey, hostKey, nodeKey } from "../../provider/etcd/keys";
import { allocate } from "../../provider/ipam/ipamStore";
import { withEtcd } from "../../provider/etcd/etcdClient";
import { startTestLab, TestLab } from "../support/lab";
import { LabEtcd, startEtcdOn } from "./support/etcd";
import { addContainerNetns, checkBuilt, inNetns, LabAgent, ping, REPO, removeContainers, seedNetwork, sleep, tcpTransfer, waitFor } from "./support/agents";
import { cleanupAll } from "../support/cleanup";

const LAB = "tagt1";
const OCTET = 231;
const PREFIX = "/bpfnet/tagt1";
const CONTAINERS = ["tagtca", "tagtcb", "tagtcc", "tagtcd", "tagtce"];
const CNITOOL = path.join(REPO, ".tools", "bin", "cnitool");

let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let agents: LabAgent[] = [];
let cidrs: Record<string, string> = {};
const maps: DatapathMaps[] = [];
let netconfDir: string | undefined;
let cniCacheExisted = true;
const children: ChildProcess[] = [];
/** Container name → its IP, filled as endpoints are added. */
const ips: Record<string, string> = {};

const conn = () => etcd!.connection;
const host = (i: number) => lab!.inventory.hosts[i];

function counter(i: number, ifindex: number, direction: "ingress" | "egress", reason: number = Verdict.FORWARDED, what: "packets" | "bytes" = "packets"): bigint {
  return maps[i].metrics.get({ id: ifindex, direction, reason })[what];
}

async function etcdGet(key: string): Promise<{ value: string; lease: string } | undefined> {
  return withEtcd(conn(), async (c) => {
    const r = await c.get(key).exec();
    return r.kvs[0] ? { value: r.kvs[0].value.toString(), lease: r.kvs[0].lease } : undefined;
  });
}

beforeAll(async () => {
  checkBuilt();
  cniCacheExisted = fs.existsSync("/var/lib/cni");
  lab = await startTestLab(LAB, OCTET, "vxlan", 3);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  cidrs = await seedNetwork(conn(), { prefix: PREFIX, mode: "vxlan", clusterCidr: "10.80.0.0/16", vni: 7 }, lab.inventory.hosts.map((h) => h.name));
  agents = lab.inventory.hosts.map((h) => new LabAgent(h, { prefix: PREFIX, etcd: conn(), leaseTtlSeconds: 10 }));
  await Promise.all(agents.map((a) => a.start()));
  for (const h of lab.inventory.hosts) maps.push(openDatapathMaps(h.bpffsDir));
  for (const c of CONTAINERS) addContainerNetns(c);
}, 90_000);

afterAll(async () => {
  const steps: (() => unknown)[] = [
    ...children.map((c) => () => c.kill("SIGKILL")),
    ...agents.map((a) => () => a.stop()),
    () => maps.forEach((m) => m.close()),
    () => removeContainers(CONTAINERS),
    () => etcd?.stop(),
    () => lab?.down(),
    () => netconfDir && fs.rmSync(netconfDir, { recursive: true, force: true }),
    () => !cniCacheExisted && fs.rmSync("/var/lib/cni", { recursive: true, force: true }),
  ];
  await cleanupAll(steps);
}, 60_000);

test("agents register on leases, learn their peers and program the tunnel map", async () => {
  for (const [i, a] of agents.entries()) {
    const rec = await etcdGet(nodeKey(PREFIX, a.host.name));
    expect(rec).toBeDefined();
    expect(rec!.lease).not.toBe("0");
    expect(JSON.parse(rec!.value)).toMatchObject({ schema: 1, host: a.host.name, underlayIp: a.host.underlayIp, podCidr: cidrs[a.host.name], agentVersion: "0.1.0" });
    const others = agents.filter((o) => o !== a);
    await waitFor(`${a.host.name}'s tunnel map`, () => maps[i].tunnel.entries().length === 2);
    expect(new Map(maps[i].tunnel.entries().map(([c, t]) => [c, t.remote]))).toEqual(new Map(others.map((o) => [cidrs[o.host.name], o.host.underlayIp])));
    const s = await a.status();
    expect(s.agent.ready).toBe(true);
    expect(s.peers.map((p) => p.host).sort()).toEqual(others.map((o) => o.host.name).sort());
    expect(s.devices.map((d) => `${d.name} ${d.up}`)).toEqual(["bpfnet_vxlan true", "bpfnet_host true"]);
    expect(s.programs.every((p) => p.current)).toBe(true);
    expect(s.problems).toEqual([]);
  }
  expect(agents[0].cli("status")).toMatch(/programs\s+2\/2 attached/);
});

test("endpoints are added through the CLI and the API, with an address recorded before use", async () => {
  const outA = agents[0].cli("endpoint", "add", "--netns", "/run/netns/tagtca", "--id", "ca", "--labels", "app=web,tier=front");
  expect(outA).toMatch(/^added\tca\t10\.80\./);
  const b = await agents[1].client.addEndpoint({ id: "cb", netns: "/run/netns/tagtcb", labels: { app: "db" } });
  expect(b.created).toBe(true);
  const d = await agents[0].client.addEndpoint({ id: "cd", netns: "/run/netns/tagtcd" });
  const a = (await agents[0].client.getEndpoint("ca"))!;
  Object.assign(ips, { tagtca: a.ip, tagtcb: b.endpoint.ip, tagtcd: d.endpoint.ip });

  // Inside the pod CIDR, never network or gateway; two endpoints of one host differ.
  expect(a.address).toBe(`${a.ip}/32`);
  expect(a.gateway).toBe(cidrs.h1.replace(/0\/24$/, "1"));
  expect(a.ip).not.toBe(a.gateway);
  expect(d.endpoint.ip).not.toBe(a.ip);
  expect(b.endpoint.podCidr).toBe(cidrs.h2);
  expect(a.labels).toEqual({ app: "web", tier: "front" });

  // The container: /32, default route via the gateway, the gateway pinned to the host veth's MAC.
  expect(inNetns("tagtca", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout).toContain(`${a.ip}/32`);
  expect(inNetns("tagtca", ["ip", "route", "show", "default"]).stdout).toMatch(new RegExp(`default via ${a.gateway.replace(/\./g, "\\.")} dev eth0 mtu 1450`));
  expect(inNetns("tagtca", ["ip", "neigh", "show", a.gateway]).stdout).toMatch(new RegExp(`lladdr ${a.hostMac} PERMANENT`));
  expect(inNetns("tagtca", ["cat", "/sys/class/net/eth0/mtu"]).stdout.trim()).toBe("1450");

  // The endpoint map, endpoints.json and the etcd record.
  expect(maps[0].endpoints.get(a.ip)).toMatchObject({ ifindex: a.hostIfindex, mac: a.mac, nodeMac: a.hostMac });
  const state = JSON.parse(fs.readFileSync(path.join(host(0).stateDir, "endpoints.json"), "utf8"));
  expect(state.endpoints.ca).toMatchObject({ ip: a.ip, status: "ready" });
  await waitFor("ca's etcd record", async () => (await etcdGet(endpointKey(PREFIX, "h1", "ca")))?.value.includes(a.ip));

  // Adding the same id again is idempotent; the same id for another namespace is refused.
  const again = await agents[0].client.addEndpoint({ id: "ca", netns: "/run/netns/tagtca", labels: { app: "web", tier: "front" } });
  expect(again).toMatchObject({ created: false, endpoint: { ip: a.ip } });
  await expect(agents[0].client.addEndpoint({ id: "ca", netns: "/run/netns/tagtcd" })).rejects.toMatchObject({ status: 409 });
  expect(agents[0].cli("endpoint", "list")).toMatch(/^ca\t.*\ncd\t/);
});

test("container A on host 1 and B on host 2 reach each other over VXLAN, through our programs", async () => {
  const [a, b] = [await agents[0].client.getEndpoint("ca"), await agents[1].client.getEndpoint("cb")];
  const s1 = await agents[0].status();
  const s2 = await agents[1].status();
  const vx1 = s1.devices[0].ifindex!;
  const vx2 = s2.devices[0].ifindex!;
  const before = {
    aOut: counter(0, a!.hostIfindex!, "ingress"),
    bIn: counter(1, vx2, "ingress"),
    bOut: counter(1, b!.hostIfindex!, "ingress"),
    aIn: counter(0, vx1, "ingress"),
  };
  const ab = ping("tagtca", ips.tagtcb, 10, 0.1);
  const ba = ping("tagtcb", ips.tagtca, 10, 0.1);
  expect(ab).toMatchObject({ ok: true, received: 10 });
  expect(ba).toMatchObject({ ok: true, received: 10 });
  console.log(`ping A→B: avg RTT ${ab.rttAvgMs} ms, B→A: ${ba.rttAvgMs} ms`);
  // Requests and replies each pass bpf_lxc on the sender and bpf_overlay on the receiver.
  expect(counter(0, a!.hostIfindex!, "ingress") - before.aOut).toBeGreaterThanOrEqual(20n);
  expect(counter(1, vx2, "ingress") - before.bIn).toBeGreaterThanOrEqual(20n);
  expect(counter(1, b!.hostIfindex!, "ingress") - before.bOut).toBeGreaterThanOrEqual(20n);
  expect(counter(0, vx1, "ingress") - before.aIn).toBeGreaterThanOrEqual(20n);

  // Same host (A → D) goes veth to veth; the host reaches its own containers through bpf_host.
  expect(ping("tagtca", ips.tagtcd, 3).ok).toBe(true);
  const hostBefore = counter(0, s1.devices[1].ifindex!, "egress");
  expect(ping(host(0).netns!, ips.tagtca, 3).ok).toBe(true);
  expect(counter(0, s1.devices[1].ifindex!, "egress") - hostBefore).toBeGreaterThanOrEqual(3n);
});

test("TCP: 10 MB from A to B arrive intact; iperf3 measures the throughput", async () => {
  const a = (await agents[0].client.getEndpoint("ca"))!;
  const before = counter(0, a.hostIfindex!, "ingress", Verdict.FORWARDED, "bytes");
  const r = await tcpTransfer("tagtca", "tagtcb", ips.tagtcb, 10 * 1024 * 1024, 7000, children);
  expect(r.received).toEqual({ n: r.sent, sha: r.sha });
  // Every byte left A through bpf_lxc, into the tunnel (GSO makes it a few hundred packets).
  expect(counter(0, a.hostIfindex!, "ingress", Verdict.FORWARDED, "bytes") - before).toBeGreaterThan(10n * 1024n * 1024n);

  const server = spawn("ip", ["netns", "exec", "tagtcb", "iperf3", "-s", "-1", "-p", "5201"], { stdio: "ignore" });
  children.push(server);
  // The server may not listen yet: iperf3 then reports {"error": …}.
  const result = await waitFor("iperf3 to run", () => {
    const run = inNetns("tagtca", ["iperf3", "-c", ips.tagtcb, "-p", "5201", "-t", "2", "-J"], 60_000);
    try {
      const j = JSON.parse(run.stdout);
      return run.status === 0 && !j.error ? j : undefined;
    } catch {
      return undefined;
    }
  }, 15_000, 300);
  const gbps = (result.end.sum_received.bits_per_second as number) / 1e9;
  console.log(`TCP A→B: 10 MiB in ${r.ms} ms (sha256 verified); iperf3 2 s: ${gbps.toFixed(2)} Gbit/s, ${result.end.sum_sent.retransmits} retransmits`);
  expect(gbps).toBeGreaterThan(0.1);
});

test("a host reaches another host's containers: the replies to its gateway address come back through bpf_overlay", async () => {
  const s1 = await agents[0].status();
  const vx1 = s1.devices[0].ifindex!;
  expect(maps[0].config.get().gateway).toBe(s1.agent.gateway);
  // Host 1's packets to the cluster CIDR leave from its gateway address (the route's src); host 2's
  // container answers that address, and host 1's bpf_overlay hands the answer to the host stack.
  const passedBefore = counter(0, vx1, "ingress", Verdict.PASSED);
  const droppedBefore = counter(0, vx1, "ingress", DropReason.UNKNOWN_ENDPOINT);
  const r = ping(host(0).netns!, ips.tagtcb, 5, 0.1);
  expect(r).toMatchObject({ ok: true, received: 5 });
  expect(counter(0, vx1, "ingress", Verdict.PASSED) - passedBefore).toBeGreaterThanOrEqual(5n);
  expect(counter(0, vx1, "ingress", DropReason.UNKNOWN_ENDPOINT)).toBe(droppedBefore);

  // TCP from the host to the container, checked end to end.
  const t = await tcpTransfer(host(0).netns!, "tagtcb", ips.tagtcb, 1024 * 1024, 7001, children);
  expect(t.received).toEqual({ n: t.sent, sha: t.sha });

  // The other host's gateway address is reached the same way, both directions tunnelled.
  const gw2 = (await agents[1].status()).agent.gateway;
  expect(ping(host(0).netns!, gw2, 3).ok).toBe(true);
});

test("an agent started over a config slot from before the gateway field fills the gateway in", async () => {
  // What an older agent left pinned: the same 32-byte value, the gateway's bytes zero (padding then).
  const { gateway, ...old } = maps[0].config.get();
  maps[0].config.set(old);
  expect(maps[0].config.get().gateway).toBe("0.0.0.0");
  expect(ping(host(0).netns!, ips.tagtcb, 2, 0.2, 1).received).toBe(0); // replies dropped as unknown endpoint
  await agents[0].stop();
  await agents[0].start();
  expect(maps[0].config.get().gateway).toBe(gateway);
  expect(ping(host(0).netns!, ips.tagtcb, 3).ok).toBe(true);
}, 60_000);

test("cnitool adds, checks and deletes a container through bpfnet-cni", async () => {
  expect(fs.existsSync(CNITOOL)).toBe(true); // built by scripts/build-cnitool.sh (scripts/setup)
  netconfDir = fs.mkdtempSync(path.join(os.tmpdir(), "tagt-netconf-"));
  fs.writeFileSync(
    path.join(netconfDir, "10-tagt.conflist"),
    JSON.stringify({ cniVersion: "1.0.0", name: "tagt", plugins: [{ type: "bpfnet-cni", agentSocket: agents[2].socket, labels: { via: "cni" } }] }),
  );
  const env = { ...process.env, CNI_PATH: path.join(REPO, "bin"), NETCONFPATH: netconfDir };
  const cni = (...args: string[]) => spawnSync(CNITOOL, args, { env, encoding: "utf8", timeout: 60_000 });

  const add = cni("add", "tagt", "/run/netns/tagtcc");
  expect(add.stderr).toBe("");
  expect(add.status).toBe(0);
  const result = JSON.parse(add.stdout);
  expect(result.cniVersion).toBe("1.0.0");
  expect(result.interfaces[1]).toMatchObject({ name: "eth0", sandbox: "/run/netns/tagtcc" });
  const address = result.ips[0].address as string;
  expect(address).toMatch(/^10\.80\.\d+\.\d+\/32$/);
  ips.tagtcc = address.split("/")[0];
  const eps = await agents[2].client.listEndpoints();
  expect(eps).toHaveLength(1);
  expect(eps[0]).toMatchObject({ id: expect.stringMatching(/^cnitool-/), ip: ips.tagtcc, labels: { via: "cni", "cni.network": "tagt" } });

  expect(ping("tagtca", ips.tagtcc, 3).ok).toBe(true); // h1 → h3
  expect(cni("check", "tagt", "/run/netns/tagtcc").status).toBe(0);

  const del = cni("del", "tagt", "/run/netns/tagtcc");
  expect(del.status).toBe(0);
  expect(await agents[2].client.listEndpoints()).toEqual([]);
  expect(inNetns("tagtcc", ["ip", "link", "show", "eth0"]).status).not.toBe(0);
  expect(cni("del", "tagt", "/run/netns/tagtcc").status).toBe(0); // DEL is repeatable
  const check = cni("check", "tagt", "/run/netns/tagtcc");
  expect(check.status).not.toBe(0);

  // Direct invocation: errors in the spec's JSON on stdout.
  const bad = spawnSync(path.join(REPO, "bin", "bpfnet-cni"), [], {
    env: { ...process.env, CNI_COMMAND: "ADD", CNI_CONTAINERID: "x", CNI_NETNS: "/run/netns/tagtcc", CNI_IFNAME: "eth0", CNI_PATH: "/nowhere" },
    input: JSON.stringify({ cniVersion: "0.3.1", name: "tagt", type: "bpfnet-cni" }),
    encoding: "utf8",
  });
  expect(bad.status).toBe(1);
  expect(JSON.parse(bad.stdout)).toMatchObject({ code: 1, msg: expect.stringContaining("incompatible CNI version") });
});

test("restarting the agents does not interrupt traffic: no ping lost, counters grow while an agent is down", async () => {
  const b = (await agents[1].client.getEndpoint("cb"))!;
  const progBefore = (await agents[1].status()).programs.map((p) => p.attachedProgId);
  // 50 pings a second for ~8 s while both agents restart.
  const pinger = spawn("ip", ["netns", "exec", "tagtca", "ping", "-n", "-q", "-c", "400", "-i", "0.02", "-W", "1", ips.tagtcb], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(pinger);
  let out = "";
  pinger.stdout!.on("data", (d) => (out += d));
  const done = new Promise<number | null>((resolve) => pinger.on("exit", (code) => resolve(code)));
  const startAt = counter(1, b.hostIfindex!, "ingress");
  await waitFor("the pings to flow", () => counter(1, b.hostIfindex!, "ingress") > startAt + 20n, 5000, 20);

  await agents[1].stop();
  const downAt = counter(1, b.hostIfindex!, "ingress");
  // Forwarding without an agent: the counter keeps growing while it is down (a condition, not a sleep).
  await waitFor("the counter to grow with the agent down", () => counter(1, b.hostIfindex!, "ingress") > downAt + 20n, 5000, 20);
  expect(await etcdGet(nodeKey(PREFIX, "h2"))).toBeDefined(); // the lease was not revoked
  await agents[1].start();
  await agents[0].stop();
  await sleep(500);
  await agents[0].start();

  const code = await done;
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  console.log(`ping across two agent restarts: ${m?.[0]}`);
  expect(code).toBe(0);
  expect(m && m[1] === m[2]).toBe(true);
  const after = await agents[1].status();
  expect(after.programs.every((p) => p.current)).toBe(true);
  expect(after.programs.map((p) => p.attachedProgId)).not.toEqual(progBefore); // new programs swapped in
  expect(after.endpoints).toEqual({ total: 1, ready: 1, lost: 0 });
  expect(maps[1].tunnel.entries().length).toBe(2);
}, 60_000);

test("with our programs detached the same traffic fails; a restart attaches them again", async () => {
  for (const i of [0, 1]) {
    for (const p of (await agents[i].status()).programs) TcHook.open(p.ifindex, p.direction, { netns: agents[i].netns }).detach();
    expect((await agents[i].status()).programs.every((p) => p.attachedProgId === undefined)).toBe(true);
  }
  const r = ping("tagtca", ips.tagtcb, 3, 0.2, 1);
  expect(r.received).toBe(0);

  for (const i of [0, 1]) {
    await agents[i].stop();
    await agents[i].start();
  }
  expect(ping("tagtca", ips.tagtcb, 3).ok).toBe(true);
}, 60_000);

test("after a crash the agent rolls back a half-made endpoint and reports a vanished container as lost", async () => {
  addContainerNetns("tagtce");
  const ce = (await agents[1].client.addEndpoint({ id: "ce", netns: "/run/netns/tagtce" })).endpoint;
  await agents[1].stop("SIGKILL");
  // While the agent is dead: the container goes away, and a crash mid-add is simulated
  // (address recorded as "creating", a veth pair left behind).
  removeContainers(["tagtce"]);
  await waitFor("ce's veth to go with its namespace", () => inNetns(host(1).netns!, ["ip", "link", "show", ce.hostIfname]).status !== 0);
  const file = path.join(host(1).stateDir, "endpoints.json");
  const state = JSON.parse(fs.readFileSync(file, "utf8"));
  const halfIp = cidrs.h2.replace(/0\/24$/, "200");
  state.endpoints.cf = { id: "cf", number: 99, ip: halfIp, netns: "/run/netns/none", ifname: "eth0", hostIfname: hostVethName("cf"), labels: {}, status: "creating", createdAt: "" };
  fs.writeFileSync(file, JSON.stringify(state));
  execFileSync("ip", ["-n", host(1).netns!, "link", "add", hostVethName("cf"), "type", "veth", "peer", "name", tempPeerName("cf")]);

  await agents[1].start(); // also finds the killed agent's socket file in its way
  const eps = await agents[1].client.listEndpoints();
  expect(eps.map((e) => `${e.id} ${e.status}`)).toEqual(["cb ready", "ce lost"]);
  expect(inNetns(host(1).netns!, ["ip", "link", "show", hostVethName("cf")]).status).not.toBe(0);
  expect(JSON.parse(fs.readFileSync(file, "utf8")).endpoints.cf).toBeUndefined();
  await waitFor("ce's map entry to go", () => maps[1].endpoints.get(ce.ip) === undefined);
  expect(ping("tagtca", ips.tagtcb, 2).ok).toBe(true);
  // A lost endpoint keeps its address until it is deleted.
  expect((await agents[1].client.deleteEndpoint("ce")).deleted).toBe(true);
  expect((await agents[1].status()).endpoints).toEqual({ total: 1, ready: 1, lost: 0 });
}, 60_000);

test("an agent restarted while etcd is unreachable brings the datapath back from its cache", async () => {
  process.kill(etcd!.pid, "SIGSTOP");
  try {
    const t0 = Date.now();
    await agents[0].stop();
    await agents[0].start();
    const s = await agents[0].status();
    console.log(`agent restart with etcd frozen: ready again after ${Date.now() - t0} ms`);
    expect(s.programs.every((p) => p.current)).toBe(true);
    expect(s.etcd.viewSynced).toBe(false);
    expect(maps[0].tunnel.entries().length).toBe(2); // nothing pruned from a partial view
    expect(ping("tagtca", ips.tagtcb, 3).ok).toBe(true);
  } finally {
    process.kill(etcd!.pid, "SIGCONT");
  }
  await waitFor("the agent to sync and register again", async () => {
    const s = await agents[0].status();
    return s.etcd.viewSynced && s.etcd.registered;
  }, 20_000);
}, 60_000);

test("removing a host's allocation or registration removes its tunnel entries on the other agents", async () => {
  const h3 = cidrs.h3;
  const has = (i: number) => maps[i].tunnel.entries().some(([c]) => c === h3);
  expect(has(0) && has(1)).toBe(true);

  // The allocation goes (both IPAM keys, as a HostAllocation delete does).
  await withEtcd(conn(), async (c) => {
    await c.delete().key(hostKey(PREFIX, "h3")).exec();
    await c.delete().key(cidrKey(PREFIX, h3)).exec();
  });
  await waitFor("h3's tunnel entries to go", () => !has(0) && !has(1), 10_000, 50);
  // …and comes back.
  await withEtcd(conn(), (c) => allocate(c, { prefix: PREFIX, host: "h3", allocationId: "alloc-h3", requestedCidr: h3 }));
  await waitFor("h3's tunnel entries to return", () => has(0) && has(1), 10_000, 50);

  // The agent stops and its node key is deleted (or expires).
  await agents[2].stop();
  await withEtcd(conn(), (c) => c.delete().key(nodeKey(PREFIX, "h3")).exec());
  await waitFor("h3's tunnel entries to go again", () => !has(0) && !has(1), 10_000, 50);
  expect((await agents[0].status()).peers.map((p) => p.host)).toEqual(["h2"]);
  expect(ping("tagtca", ips.tagtcb, 2).ok).toBe(true); // the others are untouched
});

test("a node key deleted by hand is written again by its agent", async () => {
  const key = nodeKey(PREFIX, "h1");
  await withEtcd(conn(), (c) => c.delete().key(key).exec());
  await waitFor("h1's node key", async () => (await etcdGet(key)) !== undefined, 10_000);
});

test("deleting an endpoint removes its veth, map entry and record, and frees its address", async () => {
  const d = (await agents[0].client.getEndpoint("cd"))!;
  expect(agents[0].cli("endpoint", "del", "--id", "cd")).toBe("deleted\tcd\n");
  expect(maps[0].endpoints.get(d.ip)).toBeUndefined();
  expect(maps[0].metrics.entries().filter((m) => m.id === d.hostIfindex)).toEqual([]);
  expect(inNetns(host(0).netns!, ["ip", "link", "show", d.hostIfname]).status).not.toBe(0);
  expect(inNetns("tagtcd", ["ip", "link", "show", "eth0"]).status).not.toBe(0);
  await waitFor("cd's etcd record to go", async () => (await etcdGet(endpointKey(PREFIX, "h1", "cd"))) === undefined);
  expect(agents[0].cli("endpoint", "del", "--id", "cd")).toBe("absent\tcd\n");
  const state = JSON.parse(fs.readFileSync(path.join(host(0).stateDir, "endpoints.json"), "utf8"));
  expect(Object.keys(state.endpoints)).toEqual(["ca"]);
  // Round robin: a new endpoint gets the next address, not the one just freed.
  const e = await agents[0].client.addEndpoint({ id: "cd2", netns: "/run/netns/tagtcd" });
  expect(e.endpoint.ip).not.toBe(d.ip);
  expect(ping("tagtcd", ips.tagtca, 2).ok).toBe(true);
});
