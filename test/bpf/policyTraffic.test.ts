/**
 * Policy enforcement on real traffic in a real kernel: a host namespace with two containers
 * (only bpf_lxc moves packets between them, as in datapath.test.ts). Container 2 enforces
 * ingress and egress and allows TCP 7001 from container 1: that connection carries data both
 * ways (its replies pass container 2's egress by connection tracking), everything else fails,
 * audit mode lets it through counted, and removing the allow cuts the live connection.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DropReason, EndpointFlags, PolicyAction, PolicyDirection, TcHook, Verdict } from "../../bpf";
import type { PolicyRow } from "../../bpf";
import { cleanupAll } from "../support/cleanup";
import { loadTestDatapath, TestDatapath } from "./support/datapath";
import { execInNetns } from "./support/netns";
import { addContainer, addNetns, Container, deleteNetns } from "./support/topology";

const HOST = "bftph";
const C1 = "bftpc1";
const C2 = "bftpc2";
const ID1 = 1000;
const ID2 = 1001;

let t: TestDatapath | undefined;
let c1: Container;
let c2: Container;
let dir: string;
const hooks: TcHook[] = [];
const children: ReturnType<typeof spawn>[] = [];

/** An echo server in container 2 on each port. */
const SERVER = `
  const net = require("net");
  for (const port of process.argv.slice(1).map(Number)) net.createServer((s) => s.pipe(s)).listen(port, "0.0.0.0");
  console.log("listening");`;

/**
 * Connects from `netns` to ip:port, sends "1" and waits for the echo; then, if `gate` is given,
 * prints "first", waits for that file, sends "2" and waits for its echo. Prints what came back
 * as JSON (the last line).
 */
const CLIENT = `
  const net = require("net"), fs = require("fs");
  const [ip, port, gate] = process.argv.slice(1);
  const out = { connected: false, first: false, second: false };
  const done = () => { console.log(JSON.stringify(out)); process.exit(0); };
  const s = net.connect({ host: ip, port: Number(port) }, () => { out.connected = true; s.write("1"); });
  s.on("error", done);
  let got = "";
  s.on("data", (d) => {
    got += d;
    if (got === "1") {
      out.first = true;
      if (!gate) return done();
      console.log("first");
      const wait = setInterval(() => { if (fs.existsSync(gate)) { clearInterval(wait); s.write("2"); setTimeout(done, 2000); } }, 50);
    } else if (got === "12") { out.second = true; done(); }
  });
  setTimeout(done, gate ? 30000 : 2000);`;

interface ClientResult {
  connected: boolean;
  first: boolean;
  second: boolean;
}

interface Client {
  /** The first echo came back (gated clients only). */
  firstEcho: Promise<void>;
  result: Promise<ClientResult>;
}

function startClient(netns: string, ip: string, port: number, gate?: string): Client {
  const args = ["netns", "exec", netns, process.execPath, "-e", CLIENT, ip, String(port), ...(gate ? [gate] : [])];
  const child = spawn("ip", args, { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  let out = "";
  const firstEcho = new Promise<void>((resolve) => child.stdout!.on("data", (d) => ((out += d), out.includes("first") && resolve())));
  const result = new Promise<ClientResult>((resolve, reject) => {
    child.on("exit", () => {
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()!) as ClientResult);
      } catch {
        reject(new Error(`client printed ${JSON.stringify(out)}`));
      }
    });
  });
  return { firstEcho, result };
}

const runClient = (netns: string, ip: string, port: number) => startClient(netns, ip, port).result;

const maps = () => t!.maps;
const row = (endpointId: number, direction: number, identity: number, dport: number, proto: number): PolicyRow => ({
  endpointId,
  direction,
  identity,
  dport,
  proto,
  action: PolicyAction.ALLOW,
  proxyPort: 0,
  ruleId: 1,
});
const allow7001 = () => row(c2.hostSide.ifindex, PolicyDirection.INGRESS, ID1, 7001, 6);
const counted = (c: Container, reason: number) => maps().metrics.get({ id: c.hostSide.ifindex, direction: "ingress", reason }).packets;

function setFlags(c: Container, flags: number): void {
  maps().endpoints.set(c.ip, { ifindex: c.hostSide.ifindex, endpointId: c.hostSide.ifindex, mac: c.inside.mac, nodeMac: c.hostSide.mac, flags });
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "bftpolicy-"));
  addNetns(HOST);
  c1 = addContainer(HOST, C1, "bftpv1", "bftpe1", "10.251.3.11");
  c2 = addContainer(HOST, C2, "bftpv2", "bftpe2", "10.251.3.12");
  t = loadTestDatapath();
  maps().config.set({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 0 });
  setFlags(c1, 0);
  setFlags(c2, EndpointFlags.ENFORCE_INGRESS | EndpointFlags.ENFORCE_EGRESS);
  maps().ipcache.set(`${c1.ip}/32`, ID1);
  maps().ipcache.set(`${c2.ip}/32`, ID2);
  maps().policy.set(allow7001());
  for (const c of [c1, c2]) {
    const hook = TcHook.open(c.hostSide.ifindex, "ingress", { netns: HOST });
    hooks.push(hook);
    hook.attach(t.dp.programs.lxc);
  }
  const server = spawn("ip", ["netns", "exec", C2, process.execPath, "-e", SERVER, "7001", "7002"], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(server);
  await new Promise<void>((resolve, reject) => {
    server.stdout!.on("data", (d) => String(d).includes("listening") && resolve());
    server.on("exit", (code) => reject(new Error(`echo server exited with ${code}`)));
  });
  // Container 1 runs a server too, to try connections container 2 may not open.
  const server1 = spawn("ip", ["netns", "exec", C1, process.execPath, "-e", SERVER, "7003"], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(server1);
  await new Promise<void>((resolve) => server1.stdout!.on("data", (d) => String(d).includes("listening") && resolve()));
}, 60_000);

afterAll(async () => {
  await cleanupAll([
    ...children.map((c) => () => c.kill("SIGKILL")),
    ...hooks.map((h) => () => void h.destroy()),
    () => t?.close(),
    () => deleteNetns(C1, C2, HOST),
    () => fs.rmSync(dir, { recursive: true, force: true }),
  ]);
});

test("the allowed port carries data both ways; other ports, ICMP and connections from the enforcing side fail", async () => {
  const deniedBefore = counted(c1, DropReason.POLICY_DENIED);
  expect(await runClient(C1, c2.ip, 7001)).toEqual({ connected: true, first: true, second: false });
  // The replies left container 2 through its egress enforcement on the strength of CT alone.
  expect(maps().ct.entries().some((e) => e.hook === "ingress" && e.daddr === c2.ip && e.dport === 7001 && e.seenReply)).toBe(true);
  expect(counted(c2, Verdict.FORWARDED)).toBeGreaterThan(0n);

  expect((await runClient(C1, c2.ip, 7002)).connected).toBe(false);
  expect(execInNetns(C1, ["ping", "-n", "-q", "-c", "1", "-W", "1", c2.ip])).not.toBe(0);
  expect(counted(c1, DropReason.POLICY_DENIED) - deniedBefore).toBeGreaterThanOrEqual(2n);
  // Container 2 has no egress rows: it cannot open a connection to container 1.
  const egressDenied = counted(c2, DropReason.POLICY_DENIED);
  expect((await runClient(C2, c1.ip, 7003)).connected).toBe(false);
  expect(counted(c2, DropReason.POLICY_DENIED)).toBeGreaterThan(egressDenied);
}, 30_000);

test("audit mode: the denied port connects, and each would-be drop is counted as an audit verdict", async () => {
  setFlags(c2, EndpointFlags.ENFORCE_INGRESS | EndpointFlags.AUDIT_INGRESS | EndpointFlags.ENFORCE_EGRESS);
  try {
    const audited = counted(c1, Verdict.POLICY_AUDIT);
    expect(await runClient(C1, c2.ip, 7002)).toEqual({ connected: true, first: true, second: false });
    expect(counted(c1, Verdict.POLICY_AUDIT)).toBeGreaterThan(audited);
  } finally {
    setFlags(c2, EndpointFlags.ENFORCE_INGRESS | EndpointFlags.ENFORCE_EGRESS);
  }
}, 30_000);

test("removing the allow cuts a live connection: the next data of the established flow is dropped", async () => {
  const gate = path.join(dir, "go");
  const client = startClient(C1, c2.ip, 7001, gate);
  // The connection is established and has echoed once: its CT entries exist.
  await Promise.race([client.firstEcho, client.result.then((r) => Promise.reject(new Error(`client ended early: ${JSON.stringify(r)}`)))]);
  const denied = counted(c1, DropReason.POLICY_DENIED);
  maps().policy.delete(allow7001());
  try {
    fs.writeFileSync(gate, "");
    const r = await client.result;
    expect(r.connected).toBe(true);
    expect(r.second).toBe(false);
    expect(counted(c1, DropReason.POLICY_DENIED)).toBeGreaterThan(denied);
  } finally {
    maps().policy.set(allow7001());
  }
}, 45_000);
