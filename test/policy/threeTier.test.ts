/**
 * The three-tier app across three hosts, enforced in the datapath by real agents: web (h1),
 * api (h2), db (h3) and an unlabelled intruder (h1). NetworkPolicies (written through the
 * provider) let web reach api on TCP 8080, UDP 8081 and ICMP, and api reach db on TCP 5432.
 * Every allowed flow works, every denied one fails (TCP connect, UDP lost, ICMP lost), the
 * drop counters name the policy reason; 3 agent restarts deliver nothing of the intruder's
 * 100 packets/s and reset no allowed TCP flow; audit mode lets the intruder through and counts it.
 * Both modes: vxlan (lab tpol2) and l3 (lab tpol3). Needs root and dist/ built.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import { DropReason, openDatapathMaps, reasonName, Verdict } from "../../bpf";
import type { DatapathMaps } from "../../bpf";
import { networkPolicyProvider as provider, NetworkPolicyInputs, NetworkPolicyOutputs } from "../../provider/policy/networkPolicy";
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "../agent/support/etcd";
import { addContainerNetns, checkBuilt, LabAgent, ping, removeContainers, seedNetwork, waitFor } from "../agent/support/agents";

/** TCP and UDP echo servers on the given ports; prints "listening" once all are bound. */
const SERVER = `
  const net = require("net"), dgram = require("dgram");
  const [tcp, udp] = process.argv.slice(1).map((l) => (l ? l.split(",").map(Number) : []));
  let n = tcp.length + udp.length;
  const up = () => --n === 0 && console.log("listening");
  for (const p of tcp) net.createServer((s) => s.pipe(s)).listen(p, "0.0.0.0", up);
  for (const p of udp) { const u = dgram.createSocket("udp4"); u.on("message", (m, r) => u.send(m, r.port, r.address)); u.bind(p, "0.0.0.0", up); }`;

/** One TCP or UDP exchange: prints "ok" when the echo came back within 2 s, else "fail". */
const PROBE = `
  const [proto, ip, port] = process.argv.slice(1);
  const done = (ok) => { console.log(ok ? "ok" : "fail"); process.exit(0); };
  setTimeout(() => done(false), 2000);
  if (proto === "tcp") {
    const s = require("net").connect({ host: ip, port: Number(port) }, () => s.write("x"));
    s.on("data", () => done(true)); s.on("error", () => done(false));
  } else {
    const u = require("dgram").createSocket("udp4");
    u.on("message", () => done(true)); u.send("x", Number(port), ip);
  }`;

/**
 * A flow for `seconds`: "udp" sends a datagram every 10 ms (100/s) and counts echoes; "tcp"
 * holds one connection writing a byte every 50 ms and counts echoed bytes and errors. Prints
 * the figures as JSON.
 */
const FLOW = `
  const [mode, ip, port, seconds] = process.argv.slice(1);
  const out = { sent: 0, echoed: 0, error: "" };
  const end = () => { console.log(JSON.stringify(out)); process.exit(0); };
  if (mode === "udp") {
    const u = require("dgram").createSocket("udp4");
    u.on("message", () => out.echoed++);
    const t = setInterval(() => { out.sent++; u.send("x", Number(port), ip); }, 10);
    setTimeout(() => { clearInterval(t); setTimeout(end, 500); }, Number(seconds) * 1000);
  } else {
    const s = require("net").connect({ host: ip, port: Number(port) });
    s.on("data", (d) => (out.echoed += d.length));
    s.on("error", (e) => (out.error = e.code || e.message));
    s.on("close", () => out.error || (out.error = "closed"));
    const t = setInterval(() => { out.sent++; s.write("x"); }, 50);
    setTimeout(() => { clearInterval(t); setTimeout(end, 500); }, Number(seconds) * 1000);
  }`;

function startFlow(from: string, mode: "udp" | "tcp", ip: string, port: number, seconds: number): Promise<{ sent: number; echoed: number; error: string }> {
  const child = spawn("ip", ["netns", "exec", from, process.execPath, "-e", FLOW, mode, ip, String(port), String(seconds)], { stdio: ["ignore", "pipe", "inherit"] });
  let text = "";
  child.stdout!.on("data", (d) => (text += d));
  return new Promise((resolve, reject) => child.on("exit", () => (text.trim() ? resolve(JSON.parse(text.trim().split("\n").pop()!)) : reject(new Error(`flow ${mode} from ${from} printed nothing`)))));
}

function probe(from: string, proto: "tcp" | "udp", ip: string, port: number): boolean {
  const r = spawnSync("ip", ["netns", "exec", from, process.execPath, "-e", PROBE, proto, ip, String(port)], { encoding: "utf8", timeout: 10_000 });
  return r.stdout.trim() === "ok";
}

const icmp = (from: string, ip: string) => ping(from, ip, 2, 0.2, 1).received > 0;

describe.each([
  { mode: "vxlan" as const, lab: "tpol2", octet: 179 },
  { mode: "l3" as const, lab: "tpol3", octet: 180 },
])("three-tier app, $mode", ({ mode, lab: LAB, octet }) => {
  const PREFIX = `/bpfnet/${LAB}`;
  const C = { web: `tpolc${octet}w`, api: `tpolc${octet}a`, db: `tpolc${octet}d`, intruder: `tpolc${octet}i` };
  let lab: TestLab | undefined;
  let etcd: LabEtcd | undefined;
  let agents: LabAgent[] = [];
  const maps: DatapathMaps[] = [];
  const children: ChildProcess[] = [];
  const ip: Record<string, string> = {};
  const policies: { id: string; outs: NetworkPolicyOutputs }[] = [];

  async function policy(name: string, spec: Record<string, unknown>): Promise<{ id: string; outs: NetworkPolicyOutputs }> {
    const inputs = { connection: etcd!.connection, prefix: PREFIX, policyName: name, ...spec } as NetworkPolicyInputs;
    const made = await provider.create!((await provider.check!({} as NetworkPolicyInputs, inputs)).inputs!);
    const p = { id: made.id, outs: made.outs! };
    policies.push(p);
    return p;
  }

  /** Packets dropped for policy on host i (all its devices). */
  const policyDrops = (i: number) => maps[i].metrics.entries().filter((m) => m.reason === DropReason.POLICY_DENIED).reduce((a, m) => a + m.packets, 0n);
  const auditCount = (i: number) => maps[i].metrics.entries().filter((m) => m.reason === Verdict.POLICY_AUDIT).reduce((a, m) => a + m.packets, 0n);

  beforeAll(async () => {
    checkBuilt();
    lab = await startTestLab(LAB, octet, mode, 3);
    etcd = await startEtcdOn(`10.${octet}.0.254`);
    const cidrs = await seedNetwork(etcd.connection, { prefix: PREFIX, mode, clusterCidr: `10.${octet}.128.0/17`, hostPrefixLength: 24, vni: 5 }, lab.inventory.hosts.map((h) => h.name));
    if (mode === "l3") for (const h of lab.inventory.hosts) execFileSync("ip", ["-n", lab.inventory.router!.netns!, "route", "replace", cidrs[h.name], "via", h.underlayIp]);
    agents = lab.inventory.hosts.map((h) => new LabAgent(h, { prefix: PREFIX, etcd: etcd!.connection, leaseTtlSeconds: 10 }));
    await Promise.all(agents.map((a) => a.start()));
    for (const h of lab.inventory.hosts) maps.push(openDatapathMaps(h.bpffsDir));
    const place: [keyof typeof C, number, Record<string, string>][] = [["web", 0, { app: "web" }], ["api", 1, { app: "api" }], ["db", 2, { app: "db" }], ["intruder", 0, {}]];
    for (const [name, host, labels] of place) {
      addContainerNetns(C[name]);
      ip[name] = (await agents[host].client.addEndpoint({ id: name, netns: `/run/netns/${C[name]}`, labels })).endpoint.ip;
    }
    for (const [name, tcp, udp] of [["api", "8080", "8081"], ["db", "5432", "5433"], ["web", "9000", ""]] as const) {
      const child = spawn("ip", ["netns", "exec", C[name], process.execPath, "-e", SERVER, tcp, udp], { stdio: ["ignore", "pipe", "inherit"] });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on("data", (d) => String(d).includes("listening") && resolve());
        child.on("exit", (code) => reject(new Error(`server in ${C[name]} exited ${code}`)));
      });
    }
    // Open network first: every flow works before any policy.
    await waitFor("web reaches api and db", () => probe(C.web, "tcp", ip.api, 8080) && probe(C.web, "tcp", ip.db, 5432), 30_000);
  }, 180_000);

  afterAll(async () => {
    await cleanupAll([
      ...policies.map((p) => () => provider.delete!(p.id, p.outs)),
      ...children.map((c) => () => c.kill("SIGKILL")),
      ...agents.map((a) => () => a.stop()),
      () => maps.forEach((m) => m.close()),
      () => removeContainers(Object.values(C)),
      () => etcd?.stop(),
      () => lab?.down(),
    ]);
  }, 90_000);

  test("allowed flows work, denied flows fail (TCP, UDP, ICMP), drops are counted as policy-denied", async () => {

    await policy("api", {
      endpointSelector: { app: "api" },
      ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP" }, { port: 8081, protocol: "UDP" }, { protocol: "ICMP" }] }],
    });
    await policy("db", { endpointSelector: { app: "db" }, ingress: [{ fromEndpoints: [{ app: "api" }], toPorts: [{ port: 5432, protocol: "TCP" }] }] });
    await waitFor("api and db enforce", async () => {
      const [a, d] = await Promise.all([agents[1].client.getEndpoint("api"), agents[2].client.getEndpoint("db")]);
      return a?.ingress === "enforced" && d?.ingress === "enforced";
    });
    // The intruder is denied as soon as the rows are in (the flags follow them).
    await waitFor("intruder cut off from api", () => !probe(C.intruder, "tcp", ip.api, 8080), 20_000);

    const before = [policyDrops(1), policyDrops(2)];
    const allowed: [string, boolean][] = [
      ["web→api tcp 8080", probe(C.web, "tcp", ip.api, 8080)],
      ["web→api udp 8081", probe(C.web, "udp", ip.api, 8081)],
      ["web→api icmp", icmp(C.web, ip.api)],
      ["api→db tcp 5432", probe(C.api, "tcp", ip.db, 5432)],
      ["api→web tcp 9000 (web is unselected: open)", probe(C.api, "tcp", ip.web, 9000)],
      ["intruder→web tcp 9000 (open)", probe(C.intruder, "tcp", ip.web, 9000)],
    ];
    const denied: [string, boolean][] = [
      ["intruder→api tcp 8080", probe(C.intruder, "tcp", ip.api, 8080)],
      ["intruder→api udp 8081", probe(C.intruder, "udp", ip.api, 8081)],
      ["intruder→api icmp", icmp(C.intruder, ip.api)],
      ["web→db tcp 5432", probe(C.web, "tcp", ip.db, 5432)],
      ["web→db udp 5433", probe(C.web, "udp", ip.db, 5433)],
      ["api→db udp 5433 (only TCP 5432 allowed)", probe(C.api, "udp", ip.db, 5433)],
      ["web→api tcp 8081 (wrong protocol for the port)", probe(C.web, "tcp", ip.api, 8081)],
    ];
    expect(allowed.filter(([, ok]) => !ok).map(([what]) => what)).toEqual([]);
    expect(denied.filter(([, ok]) => ok).map(([what]) => what)).toEqual([]);
    expect(policyDrops(1)).toBeGreaterThan(before[0]);
    expect(policyDrops(2)).toBeGreaterThan(before[1]);
    expect(reasonName(DropReason.POLICY_DENIED)).toBe("policy-denied");
    // (waitFor retries: the API client may reuse a keep-alive socket the agent closed meanwhile.)
    const status = await waitFor("h2's status", () => agents[1].status());
    expect(BigInt(status.counters.dropped["policy-denied"] ?? "0")).toBeGreaterThan(0n);
  }, 180_000);

  test("no gap: 3 agent restarts on the api's host deliver nothing of the intruder's 100 packets/s and reset no allowed TCP flow", async () => {
    await waitFor("api enforcing", async () => (await agents[1].client.getEndpoint("api"))?.ingress === "enforced");
    const intruder = startFlow(C.intruder, "udp", ip.api, 8081, 20);
    const allowed = startFlow(C.web, "tcp", ip.api, 8080, 20);
    let flowsEnded = false;
    void Promise.all([intruder, allowed]).finally(() => (flowsEnded = true));
    for (let i = 0; i < 3; i++) {
      await agents[1].stop();
      await agents[1].start();
    }
    // The restarts happened inside the flows' window (else the test proves nothing).
    expect(flowsEnded).toBe(false);
    const [bad, good] = await Promise.all([intruder, allowed]);
    expect(bad.sent).toBeGreaterThan(500);
    expect(bad.echoed).toBe(0);
    expect(good.error).toBe("");
    expect(good.echoed).toBe(good.sent);
    // The restarted agent still enforces, from restored state.
    expect((await waitFor("api view", () => agents[1].client.getEndpoint("api")))!.ingress).toBe("enforced");
  }, 120_000);

  test("audit mode: the denied flow passes and is counted as an audit verdict; enforcing again cuts it", async () => {
    const api = policies.find((p) => p.outs.policyName === "api")!;
    const audit = { ...api.outs, audit: true } as unknown as NetworkPolicyInputs;
    const updated = await provider.update!(api.id, api.outs, (await provider.check!({} as NetworkPolicyInputs, audit)).inputs!);
    api.outs = updated.outs!;
    await waitFor("api in audit", async () => (await agents[1].client.getEndpoint("api"))?.ingress === "audit");
    const counted = auditCount(1);
    await waitFor("intruder passes in audit mode", () => probe(C.intruder, "tcp", ip.api, 8080), 20_000);
    expect(icmp(C.intruder, ip.api)).toBe(true);
    expect(auditCount(1)).toBeGreaterThan(counted);

    const enforce = { ...api.outs, audit: false } as unknown as NetworkPolicyInputs;
    api.outs = (await provider.update!(api.id, api.outs, (await provider.check!({} as NetworkPolicyInputs, enforce)).inputs!)).outs!;
    await waitFor("intruder cut off again", () => !probe(C.intruder, "tcp", ip.api, 8080), 20_000);
    expect(probe(C.web, "tcp", ip.api, 8080)).toBe(true);
  }, 120_000);
});
