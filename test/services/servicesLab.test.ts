/**
 * Services end to end (lab tsvc1, vxlan, 3 hosts, real agents and BPF, the Service resource
 * through the real Pulumi CLI): a VIP with TCP 80 → 8080 and UDP 53 → 5353 over api backends on
 * all three hosts, and a second service on another port of the same VIP.
 * - 300 TCP connections from containers on every host (and from a host namespace through the
 *   socket hooks) spread with every backend ≥ 20%; UDP request/response answered from the VIP;
 *   the second port works; `bpfnet service list` on each host names VIP, ports, backends, hosts.
 * - a backend deleted: new connections stop going to it on every host (the delay after the etcd
 *   change is measured and printed), established connections to the others are untouched; a
 *   backend added receives new connections.
 * - an agent restart and a rolling upgrade (client's and backend's host) with a long
 *   connection through the VIP: no reset, every byte echoed, backend ids unchanged.
 * - sessionAffinity clientIP through `pulumi up`: 50 connections from one client, one backend.
 * - bad inputs fail at `pulumi preview` naming the field; nothing is written.
 * Needs root and dist/ built.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as path from "path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { withEtcd } from "../../provider/etcd/etcdClient";
import { endpointKey, servicesDir } from "../../provider/etcd/keys";
import { listPrefix } from "../../provider/etcd/etcdOps";
import type { ServiceList } from "../../node-agent/api/types";
import { REPO, TOOLS, pulumiEnv, removeStack } from "../support/pulumi";
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "../agent/support/etcd";
import { addContainerNetns, checkBuilt, LabAgent, removeContainers, sleep, waitFor } from "../agent/support/agents";
import { unpackUpgrade, UnpackedUpgrade } from "../agent/support/upgrade";

const PROJECT = path.join(REPO, "test", "projects", "services");
const LAB = "tsvc1";
const OCTET = 105;
const PREFIX = `/bpfnet/${LAB}`;
const VIP = `10.${OCTET}.96.10`;
const API = { ports: [{ port: 80, targetPort: 8080, protocol: "TCP" }, { port: 53, targetPort: 5353, protocol: "UDP" }] };
const SERVICES: Record<string, unknown> = {
  api: { frontend: { ip: VIP, ...API }, selector: { app: "api" } },
  // Another service on a second port of the same VIP.
  admin: { frontend: { ip: VIP, ports: [{ port: 8443, protocol: "TCP" }] }, selector: { app: "api" } },
};
/** Backends api<i> on host i-1 (api4 is added later on h2); clients cli<i> on host i-1. */
const NS = { api1: "tsvcc1a", api2: "tsvcc2a", api3: "tsvcc3a", api4: "tsvcc4a", cli1: "tsvcc1c", cli2: "tsvcc2c", cli3: "tsvcc3c" };

/** A backend: TCP on each port writes its name and a newline, then echoes; UDP answers "<name>:<data>". */
const SERVER = `
  const net = require("net"), dgram = require("dgram");
  const [name, tcp, udp] = process.argv.slice(1);
  const tp = tcp.split(",").map(Number), up = udp.split(",").map(Number);
  let n = tp.length + up.length;
  const ready = () => --n === 0 && console.log("listening");
  for (const p of tp) net.createServer((s) => { s.on("error", () => {}); s.write(name + "\\n"); s.pipe(s); }).listen(p, "0.0.0.0", ready);
  for (const p of up) { const u = dgram.createSocket("udp4"); u.on("message", (m, r) => u.send(name + ":" + m, r.port, r.address)); u.bind(p, "0.0.0.0", ready); }`;

/** count sequential TCP connections; prints {counts: name → n, errors, wrongPeer (peer address not the VIP)}. */
const CONNECTS = `
  const net = require("net");
  const [ip, port, count] = process.argv.slice(1);
  const counts = {}; let errors = 0, wrongPeer = 0;
  const one = () => new Promise((res) => {
    const s = net.connect({ host: ip, port: Number(port) });
    let buf = "";
    const t = setTimeout(() => { errors++; s.destroy(); res(); }, 3000);
    s.on("data", (d) => {
      buf += d; const i = buf.indexOf("\\n");
      if (i < 0) return;
      if (s.remoteAddress !== ip) wrongPeer++;
      const name = buf.slice(0, i); counts[name] = (counts[name] || 0) + 1;
      clearTimeout(t); s.destroy(); res();
    });
    s.on("error", () => { errors++; clearTimeout(t); res(); });
  });
  (async () => { for (let i = 0; i < Number(count); i++) await one(); console.log(JSON.stringify({ counts, errors, wrongPeer })); process.exit(0); })();`;

/** count UDP request/responses, each on its own connected socket (a reply from any address but VIP:port never arrives). */
const UDP = `
  const dgram = require("dgram");
  const [ip, port, count] = process.argv.slice(1);
  const replies = [];
  const one = () => new Promise((res) => {
    const u = dgram.createSocket("udp4");
    const t = setTimeout(() => { replies.push(null); u.close(); res(); }, 2000);
    u.on("message", (m, r) => { replies.push({ reply: String(m), from: r.address + ":" + r.port }); clearTimeout(t); u.close(); res(); });
    u.connect(Number(port), ip, () => u.send("q"));
  });
  (async () => { for (let i = 0; i < Number(count); i++) await one(); console.log(JSON.stringify(replies)); process.exit(0); })();`;

/** One TCP connection for \`seconds\`: a byte every 50 ms; prints {backend, sent, echoed, error}. */
const LONG = `
  const [ip, port, seconds] = process.argv.slice(1);
  const out = { backend: "", sent: 0, echoed: 0, error: "" };
  let buf = "";
  const s = require("net").connect({ host: ip, port: Number(port) });
  s.on("data", (d) => {
    if (out.backend) return void (out.echoed += d.length);
    buf += d; const i = buf.indexOf("\\n");
    if (i >= 0) { out.backend = buf.slice(0, i); out.echoed += buf.length - i - 1; console.error("backend " + out.backend); }
  });
  s.on("error", (e) => (out.error = e.code || e.message));
  s.on("close", () => out.error || (out.error = "closed"));
  const t = setInterval(() => { out.sent++; s.write("x"); }, 50);
  setTimeout(() => { clearInterval(t); setTimeout(() => { console.log(JSON.stringify(out)); process.exit(0); }, 700); }, Number(seconds) * 1000);`;

const UPGRADE_VERSION = "0.1.0-services-upgrade";
let upgrade: UnpackedUpgrade | undefined;
let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let stack: Stack | undefined;
let agents: LabAgent[] = [];
const children: ChildProcess[] = [];
const ips: Record<string, string> = {};

function run(netns: string, script: string, ...args: string[]): string {
  const r = spawnSync("ip", ["netns", "exec", netns, process.execPath, "-e", script, ...args], { encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${netns}: exit ${r.status}: ${r.stderr}`);
  return r.stdout.trim().split("\n").pop()!;
}
const connects = (netns: string, port: number, count: number, ip = VIP) =>
  JSON.parse(run(netns, CONNECTS, ip, String(port), String(count))) as { counts: Record<string, number>; errors: number; wrongPeer: number };

/** A long connection; resolves with its figures, and `backend` once the first line came. */
function longFlow(netns: string, seconds: number): { backend: Promise<string>; done: Promise<{ backend: string; sent: number; echoed: number; error: string }> } {
  const child = spawn("ip", ["netns", "exec", netns, process.execPath, "-e", LONG, VIP, "80", String(seconds)], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  const backend = new Promise<string>((resolve) => child.stderr!.on("data", (d) => /backend (\S+)/.test(String(d)) && resolve(/backend (\S+)/.exec(String(d))![1])));
  const done = new Promise<{ backend: string; sent: number; echoed: number; error: string }>((resolve, reject) =>
    child.on("exit", () => (out.trim() ? resolve(JSON.parse(out.trim().split("\n").pop()!)) : reject(new Error(`long flow from ${netns} printed nothing`)))),
  );
  return { backend, done };
}

async function startServer(name: keyof typeof NS): Promise<void> {
  const child = spawn("ip", ["netns", "exec", NS[name], process.execPath, "-e", SERVER, name, "8080,8443", "5353"], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d) => String(d).includes("listening") && resolve());
    child.on("exit", (code) => reject(new Error(`server ${name} exited ${code}`)));
  });
}

async function addEndpoint(name: keyof typeof NS, host: number, labels: Record<string, string>): Promise<void> {
  addContainerNetns(NS[name]);
  ips[name] = (await agents[host].client.addEndpoint({ id: name, netns: `/run/netns/${NS[name]}`, labels })).endpoint.ip;
}

/** Active backends of a service port on one host, as its agent programs them. */
async function activeBackends(i: number, service: string, port: number): Promise<string[]> {
  const l: ServiceList = await agents[i].client.services();
  const p = l.services.find((s) => s.name === service)?.ports.find((x) => x.port === port);
  return (p?.backends ?? []).filter((b) => b.state === "active" && b.id !== undefined).map((b) => b.address);
}

const servicesKeys = () => withEtcd(etcd!.connection, async (c) => (await listPrefix(c, servicesDir(PREFIX))).map((kv) => `${kv.key}=${kv.value}`));

beforeAll(async () => {
  checkBuilt();
  upgrade = unpackUpgrade(UPGRADE_VERSION, "tsvc1-bundle-");
  lab = await startTestLab(LAB, OCTET, "vxlan", 3);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  stack = await LocalWorkspace.createOrSelectStack({ stackName: `svc-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: pulumiEnv() });
  await stack.setAllConfig({
    "servicetest:etcd": { value: etcd.connection.endpoints[0] },
    "servicetest:networkName": { value: LAB },
    "servicetest:hosts": { value: lab.inventory.hosts.map((h) => h.name).join(",") },
    "servicetest:clusterCidr": { value: `10.${OCTET}.128.0/17` },
    "servicetest:serviceCidr": { value: `10.${OCTET}.96.0/24` },
    "servicetest:services": { value: JSON.stringify(SERVICES) },
  });
  const up = await stack.up();
  expect(up.summary.resourceChanges).toMatchObject({ create: 7 });
  expect(up.outputs.vips.value).toEqual({ api: VIP, admin: VIP });
  agents = lab.inventory.hosts.map((h) => new LabAgent(h, { prefix: PREFIX, etcd: etcd!.connection }));
  await Promise.all(agents.map((a) => a.start()));
  for (const [name, host] of [["api1", 0], ["api2", 1], ["api3", 2]] as const) {
    await addEndpoint(name, host, { app: "api" });
    await startServer(name);
  }
  for (const [name, host] of [["cli1", 0], ["cli2", 1], ["cli3", 2]] as const) await addEndpoint(name, host, { app: "client" });
  await waitFor("every host programs the three backends", async () => {
    for (let i = 0; i < 3; i++) if ((await activeBackends(i, "api", 80)).length !== 3) return false;
    return true;
  }, 60_000);
}, 300_000);

afterAll(async () => {
  await cleanupAll([
    ...children.map((c) => () => c.kill("SIGKILL")),
    () => stack && removeStack(stack),
    ...agents.map((a) => () => a.stop()),
    () => removeContainers(Object.values(NS)),
    () => etcd?.stop(),
    () => lab?.down(),
    () => upgrade?.remove(),
  ]);
}, 300_000);

test("300 TCP connections from every host spread over the 3 backends (each >= 20%); UDP and the second port work; service list on each host", async () => {
  const total: Record<string, number> = {};
  for (const cli of ["cli1", "cli2", "cli3"] as const) {
    const r = connects(NS[cli], 80, 100);
    expect({ cli, errors: r.errors, wrongPeer: r.wrongPeer }).toEqual({ cli, errors: 0, wrongPeer: 0 });
    for (const [k, n] of Object.entries(r.counts)) total[k] = (total[k] ?? 0) + n;
  }
  expect(Object.keys(total).sort()).toEqual(["api1", "api2", "api3"]);
  for (const n of Object.values(total)) expect(n).toBeGreaterThanOrEqual(60);
  console.log(`spread of 300 connections: ${JSON.stringify(total)}`);

  // UDP: every request answered by a backend, from VIP:53 (replies reverse-NATed).
  const replies = JSON.parse(run(NS.cli2, UDP, VIP, "53", "12")) as ({ reply: string; from: string } | null)[];
  expect(replies.every((r) => r !== null && r.from === `${VIP}:53` && /^api[123]:q$/.test(r.reply))).toBe(true);

  // The second service, on port 8443 of the same VIP.
  const admin = connects(NS.cli3, 8443, 30);
  expect(admin.errors).toBe(0);
  expect(Object.keys(admin.counts).every((k) => /^api[123]$/.test(k))).toBe(true);

  // bpfnet service list on each host: VIP, ports, backends with their hosts and state.
  for (const a of agents) {
    const text = a.cli("service", "list");
    expect(text).toContain(`api  ${VIP}  affinity=none  algorithm=random`);
    expect(text).toMatch(new RegExp(`80/TCP → 8080 .*${ips.api1.replace(/\./g, "\\.")}:8080@${lab!.inventory.hosts[0].name}\\(active #\\d+\\)`));
    expect(text).toMatch(new RegExp(`53/UDP → 5353 .*${ips.api3.replace(/\./g, "\\.")}:5353@${lab!.inventory.hosts[2].name}\\(active`));
    expect(text).toContain(`admin  ${VIP}`);
  }
}, 240_000);

test("a client in a host's own namespace reaches the VIP through the socket hooks; getpeername shows the VIP", () => {
  const host = connects(lab!.inventory.hosts[0].netns!, 80, 60);
  expect({ errors: host.errors, wrongPeer: host.wrongPeer }).toEqual({ errors: 0, wrongPeer: 0 });
  expect(Object.keys(host.counts).length).toBeGreaterThanOrEqual(2);
});

test("a deleted backend takes no new connections on any host, established ones to the others go on; an added one receives new connections", async () => {
  // Long connections pinned to api1 and api2 (from cli1), held across the change.
  const flows: ReturnType<typeof longFlow>[] = [];
  const pinned = new Set<string>();
  for (let i = 0; i < 12 && !(pinned.has("api1") && pinned.has("api2")); i++) {
    const f = longFlow(NS.cli1, 8);
    const b = await f.backend;
    if (b === "api3") continue;
    pinned.add(b);
    flows.push(f);
  }
  expect([...pinned].sort()).toEqual(["api1", "api2"]);

  // Delete api3's endpoint; time from its etcd delete event to each host's reprogramming.
  const key = endpointKey(PREFIX, lab!.inventory.hosts[2].name, "api3");
  const deletedAt = withEtcd(etcd!.connection, async (c) => {
    const w = await c.watch().key(key).create();
    const at = await new Promise<number>((resolve) => w.on("delete", () => resolve(Date.now())));
    await w.cancel();
    return at;
  });
  await sleep(200);
  await agents[2].client.deleteEndpoint("api3");
  const etcdAt = await deletedAt;
  const delays = await Promise.all(
    agents.map(async (_, i) => {
      await waitFor(`host ${i} drops api3`, async () => !(await activeBackends(i, "api", 80)).includes(ips.api3), 10_000, 20);
      return Date.now() - etcdAt;
    }),
  );
  console.log(`backend delete → no new connections, ms after the etcd change, per host: ${delays.join(", ")}`);
  for (const cli of ["cli1", "cli2", "cli3"] as const) {
    const r = connects(NS[cli], 80, 30);
    expect({ cli, errors: r.errors, api3: r.counts.api3 ?? 0 }).toEqual({ cli, errors: 0, api3: 0 });
  }
  for (const f of flows) {
    const r = await f.done;
    expect({ backend: r.backend, error: r.error, lost: r.sent - r.echoed }).toEqual({ backend: r.backend, error: "", lost: 0 });
  }

  // Add api4 on h2: every host programs it, and it receives new connections.
  await addEndpoint("api4", 1, { app: "api" });
  await startServer("api4");
  await waitFor("every host programs api4", async () => {
    for (let i = 0; i < 3; i++) if (!(await activeBackends(i, "api", 80)).includes(ips.api4)) return false;
    return true;
  }, 30_000);
  const r = connects(NS.cli3, 80, 60);
  expect(r.errors).toBe(0);
  expect(r.counts.api4 ?? 0).toBeGreaterThanOrEqual(5);
}, 240_000);

test("agent restart and rolling upgrade with a long connection through the VIP: no reset, every byte echoed, backend ids unchanged", async () => {
  const flow = longFlow(NS.cli1, 20);
  const backend = await flow.backend;
  const backendHost = { api1: 0, api2: 1, api4: 1 }[backend as "api1"]!;
  const idsBefore = JSON.stringify((await agents[0].client.services()).services);
  // A restart of the client's agent, then the client's and the backend's hosts upgraded in turn.
  await agents[0].stop();
  await sleep(500);
  await agents[0].start();
  for (const i of [...new Set([0, backendHost])]) {
    await agents[i].stop();
    await agents[i].start(60_000, upgrade!.cli);
    expect((await agents[i].status()).agent.version).toBe(UPGRADE_VERSION);
  }
  await waitFor("h1 programmed again", async () => (await agents[0].client.services()).synced, 30_000);
  expect(JSON.stringify((await agents[0].client.services()).services)).toBe(idsBefore);
  const r = await flow.done;
  expect({ error: r.error, lost: r.sent - r.echoed, backend: r.backend }).toEqual({ error: "", lost: 0, backend });
  expect(r.sent).toBeGreaterThan(100);
}, 180_000);

test("sessionAffinity clientIP through pulumi up: 50 connections from one client land on one backend", async () => {
  const sticky = { frontend: { ports: [{ port: 80, targetPort: 8080 }] }, selector: { app: "api" }, sessionAffinity: "clientIP", sessionAffinityTimeoutSeconds: 600 };
  await stack!.setConfig("servicetest:services", { value: JSON.stringify({ ...SERVICES, sticky }) });
  const up = await stack!.up();
  expect(up.summary.resourceChanges).toMatchObject({ create: 1 });
  const vip = (up.outputs.vips.value as Record<string, string>).sticky;
  expect(vip).toMatch(new RegExp(`^10\\.${OCTET}\\.96\\.\\d+$`));
  expect(vip).not.toBe(VIP);
  await waitFor("h2 programs sticky", async () => (await activeBackends(1, "sticky", 80)).length === 3, 30_000);
  const r = connects(NS.cli2, 80, 50, vip);
  expect(r.errors).toBe(0);
  expect(Object.values(r.counts)).toEqual([50]);
  // The same VIP without affinity spreads (the stickiness is the flag's doing).
  const spread = connects(NS.cli2, 80, 50, VIP);
  expect(Object.keys(spread.counts).length).toBeGreaterThanOrEqual(2);
}, 240_000);

test("bad inputs fail at pulumi preview naming each field, and nothing is written", async () => {
  const before = await servicesKeys();
  // A preview stops at the first resource whose check fails, which reports all its problems:
  // one bad service per preview, several bad fields each (service.test.ts covers every field).
  const bad: [Record<string, unknown>, RegExp[]][] = [
    [
      { frontend: { ip: "10.99.0.1", ports: [{ port: 70000 }, { port: 80, protocol: "SCTP" }] }, selector: { app: "$(reboot)" } },
      [
        /frontend\.ip "10\.99\.0\.1" is outside the network's serviceCidr "10\.105\.96\.0\/24"/,
        /frontend\.ports\[0\]\.port must be an integer in 1-65535, got 70000/,
        /frontend\.ports\[1\]\.protocol must be one of TCP, UDP, got "SCTP"/,
        /selector\.app must be a label value/,
      ],
    ],
    [{ frontend: { ports: [{ port: 80 }, { port: 80 }] }, selector: {}, sessionAffinity: "sticky" }, [/frontend\.ports\[1\] repeats TCP port 80/, /selector must name at least one label/, /sessionAffinity must be "none" or "clientIP", got "sticky"/]],
  ];
  for (const [args, whys] of bad) {
    await stack!.setConfig("servicetest:services", { value: JSON.stringify({ ...SERVICES, bad: args }) });
    const failed = await stack!.preview().then(
      () => "",
      (e: Error) => e.message,
    );
    for (const why of whys) expect(failed).toMatch(why);
  }
  await stack!.setConfig("servicetest:services", { value: JSON.stringify(SERVICES) });
  expect(await servicesKeys()).toEqual(before);
}, 240_000);
