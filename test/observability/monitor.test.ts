/**
 * The node monitor on a 2-host vxlan lab with real agents (lab tmon1): with nobody listening the
 * datapath writes no event (drops still counted); the lasting trace switches (`bpfnet monitor
 * trace`) survive an agent restart and show in status; drops caused on purpose
 * (a container sending with a spoofed source; a ping its receiver's policy denies) and policy
 * verdicts for an allowed and a denied flow appear on the host's stream (GET /v1/monitor
 * through the typed client, and `bpfnet monitor` on the host) with the right reason, device,
 * tuple and identities; `bpfnet monitor --all --inventory` merges both hosts' streams over SSH
 * in time order, naming the host, and leaves nothing running on the hosts when stopped.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import { DropReason, EndpointFlags, openDatapathMaps } from "../../bpf";
import { monitorSettings } from "../../bpf/abi";
import type { EndpointView } from "../../node-agent/api/types";
import type { MonitorEvent, MonitorFilter } from "../../node-agent/monitor/event";
import { AgentClient } from "../../node-agent/api/client";
import { formatStatus } from "../../node-agent/cli/endpoint";
import { addContainerNetns, CLI, inNetns, LabAgent, removeContainers, waitFor } from "../agent/support/agents";
import { applyPolicy } from "../policy/support/policies";
import { AgentLab, startAgentLab } from "./support/agentLab";

const CONTAINERS = ["tmonca", "tmoncb"];
const SPOOFED = "10.240.250.250"; // inside the cluster CIDR, nobody's address
let L: AgentLab | undefined;
let web: EndpointView;
let api: EndpointView;
let h1: LabAgent;
let h2: LabAgent;
const children: ChildProcess[] = [];

beforeAll(async () => {
  L = await startAgentLab({ name: "tmon1", octet: 110, topology: "vxlan", hosts: 2, clusterCidr: "10.240.0.0/16", healthIntervalSeconds: 30 });
  [h1, h2] = L.agents;
  for (const c of CONTAINERS) addContainerNetns(c);
  web = (JSON.parse(h1.cli("endpoint", "add", "--netns", "/run/netns/tmonca", "--id", "web", "--labels", "app=web", "--json")) as { endpoint: EndpointView }).endpoint;
  api = (JSON.parse(h2.cli("endpoint", "add", "--netns", "/run/netns/tmoncb", "--id", "api", "--labels", "app=api", "--json")) as { endpoint: EndpointView }).endpoint;
  await applyPolicy(L.etcd.connection, L.prefix, "api", { endpointSelector: { app: "api" }, ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 80, protocol: "TCP" }] }] });
  await waitFor("api enforcing its ingress", async () => (await h2.client.getEndpoint("api"))?.ingress === "enforced", 30_000);
  web = (await h1.client.getEndpoint("web"))!;
  api = (await h2.client.getEndpoint("api"))!;
  await waitFor("both identities known", () => web.identity !== undefined && api.identity !== undefined);
  // web's own address for its spoofed packets to leave with (bpf_lxc must drop them).
  expect(inNetns("tmonca", ["ip", "addr", "add", `${SPOOFED}/32`, "dev", "eth0"]).status).toBe(0);
}, 240_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  removeContainers(CONTAINERS);
  await L?.down();
}, 90_000);

/** Collects a host's stream in the background until stopped. */
function collect(client: AgentClient, filter: MonitorFilter): { events: MonitorEvent[]; stop(): void } {
  const events: MonitorEvent[] = [];
  const ac = new AbortController();
  void (async () => {
    for await (const e of client.monitor(filter, ac.signal)) events.push(e);
  })().catch(() => undefined);
  return { events, stop: () => ac.abort() };
}

const spoof = () => inNetns("tmonca", ["ping", "-c", "1", "-W", "1", "-I", SPOOFED, api.ip], 10_000);
const pingApi = () => inNetns("tmonca", ["ping", "-c", "1", "-W", "1", api.ip], 10_000);
const tcpToApi = (port: number) => inNetns("tmonca", ["timeout", "3", "bash", "-c", `exec 3<>/dev/tcp/${api.ip}/${port}`], 10_000);

test("a spoofed source: a drop on h1's stream with reason, device, tuple and identities; none on h2's", async () => {
  const s1 = collect(h1.client, { types: ["drop"] });
  const s2 = collect(h2.client, {});
  try {
    const drop = (await waitFor("the spoofed ping's drop on h1", () => {
      spoof(); // until the stream is subscribed, the event goes to no one: send again
      return s1.events.find((e) => e.source.ip === SPOOFED);
    }, 30_000, 500))!;
    expect(drop).toMatchObject({
      host: "h1",
      type: "drop",
      hook: "lxc",
      reason: DropReason.SPOOFED_SOURCE,
      reasonName: "spoofed-source",
      ifindex: web.hostIfindex,
      direction: "ingress",
      proto: 1,
      source: { ip: SPOOFED, identity: 0 }, // claimed, not trusted
      destination: { ip: api.ip, port: 0, identity: api.identity },
    });
    expect(Math.abs(Date.parse(drop.time) - Date.now())).toBeLessThan(120_000); // wall clock, not boot time
    expect(s1.events.every((e) => e.type === "drop")).toBe(true);
    // It never left h1.
    expect(s2.events.filter((e) => e.source.ip === SPOOFED)).toEqual([]);
  } finally {
    s1.stop();
    s2.stop();
  }
}, 60_000);

test("policy verdicts on the receiver's host: allow for web→api:80, deny (and a policy-denied drop) for its ping", async () => {
  const s = collect(h2.client, { types: ["verdict", "drop"], endpoint: "api" });
  try {
    const allow = (await waitFor("an allow verdict for tcp/80", () => {
      tcpToApi(80);
      return s.events.find((e) => e.type === "verdict" && e.verdict === "allow" && e.destination.port === 80);
    }, 30_000, 500))!;
    expect(allow).toMatchObject({
      host: "h2",
      hook: "overlay",
      direction: "ingress",
      proto: 6,
      endpoint: "api",
      source: { ip: web.ip, identity: web.identity },
      destination: { ip: api.ip, port: 80, identity: api.identity },
    });
    expect(allow.ruleId).toBeGreaterThan(0);

    const deny = await waitFor("a deny verdict for the ping", () => {
      pingApi();
      return s.events.find((e) => e.type === "verdict" && e.verdict === "deny" && e.proto === 1);
    }, 30_000, 500);
    expect(deny).toMatchObject({ endpoint: "api", direction: "ingress", ruleId: 0, source: { ip: web.ip, identity: web.identity }, destination: { ip: api.ip } });
    const drop = await waitFor("the ping's policy-denied drop", () => s.events.find((e) => e.type === "drop" && e.proto === 1));
    expect(drop).toMatchObject({ reason: DropReason.POLICY_DENIED, reasonName: "policy-denied", hook: "overlay", endpoint: "api", source: { ip: web.ip, identity: web.identity } });
    // The filter held: only api's events, only verdicts and drops.
    expect(s.events.every((e) => e.endpoint === "api" && (e.type === "verdict" || e.type === "drop"))).toBe(true);
  } finally {
    s.stop();
  }
}, 90_000);

test("traces: a listener naming an endpoint switches its TRACE flag on while it listens, and sees where each packet went", async () => {
  const maps = openDatapathMaps(h1.host.bpffsDir);
  const traced = () => ((maps.endpoints.get(web.ip)?.flags ?? 0) & EndpointFlags.TRACE) !== 0 && monitorSettings(maps.config.get().flags ?? 0).traceEndpoints;
  try {
    expect(traced()).toBe(false);
    const s = collect(h1.client, { types: ["trace"], endpoint: "web" });
    try {
      await waitFor("web's TRACE flag and the config switch on", traced, 30_000);
      const t = (await waitFor("a trace of web's packet to api", () => {
        tcpToApi(80);
        return s.events.find((e) => e.destination.ip === api.ip && e.destination.port === 80);
      }, 30_000, 500))!;
      const vxlan = (await h1.status()).devices.find((d) => d.kind === "vxlan")!;
      expect(t).toMatchObject({ host: "h1", type: "trace", hook: "lxc", reasonName: "forwarded", ifindex: web.hostIfindex, toIfindex: vxlan.ifindex, endpoint: "web", source: { ip: web.ip, identity: web.identity } });
      expect(s.events.every((e) => e.type === "trace" && e.endpoint === "web")).toBe(true);
      // TRACE alone does not make web enforce anything.
      expect((await h1.client.getEndpoint("web"))?.egress).toBe("open");
    } finally {
      s.stop();
    }
    await waitFor("web's TRACE flag and the config switch off with the listener gone", () => (maps.endpoints.get(web.ip)?.flags ?? 0) === 0 && !monitorSettings(maps.config.get().flags ?? 0).traceEndpoints, 30_000);
  } finally {
    maps.close();
  }
}, 90_000);

test("nobody listening: the datapath writes no event (drops still counted); a listener switches events on, and off again when it goes", async () => {
  const maps = openDatapathMaps(h1.host.bpffsDir);
  const eventsOff = () => monitorSettings(maps.config.get().flags ?? 0).eventsOff;
  const spoofDrops = async () => Number((await h1.status()).counters.dropped["spoofed-source"] ?? 0);
  try {
    await waitFor("h1 idle (no listener left by the tests before)", async () => (await h1.status()).monitor?.state === "idle" && eventsOff(), 30_000);
    const before = await h1.status();
    const drops = await spoofDrops();
    spoof();
    await waitFor("the spoofed ping counted as a drop", async () => (await spoofDrops()) > drops, 10_000);
    const idle = (await h1.status()).monitor!;
    expect(idle.received.drop).toBe(before.monitor!.received.drop); // nothing was written for nobody
    expect(formatStatus(await h1.status())).toContain("monitor   idle (no listener: the datapath writes no event)");

    const s = collect(h1.client, { types: ["drop"] });
    try {
      await waitFor("events on while someone listens", async () => (await h1.status()).monitor?.state === "listening" && !eventsOff(), 10_000);
      await waitFor("the listener's drop", () => (spoof(), s.events.some((e) => e.source.ip === SPOOFED)), 30_000, 500);
      expect((await h1.status()).monitor!.received.drop).toBeGreaterThan(idle.received.drop);
    } finally {
      s.stop();
    }
    await waitFor("idle again with the listener gone", async () => (await h1.status()).monitor?.state === "idle" && eventsOff(), 10_000);
  } finally {
    maps.close();
  }
}, 90_000);

test("`bpfnet monitor trace on|off --endpoint` and `trace sample` last: kept across an agent restart, shown in status; hostile values refused", async () => {
  const maps = openDatapathMaps(h1.host.bpffsDir);
  const webTraced = () => ((maps.endpoints.get(web.ip)?.flags ?? 0) & EndpointFlags.TRACE) !== 0 && monitorSettings(maps.config.get().flags ?? 0).traceEndpoints;
  try {
    expect(h1.cli("monitor", "trace", "on", "--endpoint", "web")).toContain("traces endpoints web");
    await waitFor("web's TRACE flag on with nobody listening", webTraced, 30_000);
    expect((await h1.status()).monitor).toMatchObject({ tracedEndpoints: ["web"], listenerTraced: [] });
    // Traced by the switch, seen by any listener (none names web).
    const s = collect(h1.client, { types: ["trace"] });
    try {
      const t = await waitFor("a trace of web's packet without --endpoint", () => (tcpToApi(80), s.events.find((e) => e.endpoint === "web" && e.destination.ip === api.ip)), 30_000, 500);
      expect(t).toMatchObject({ type: "trace", hook: "lxc", source: { ip: web.ip } });
    } finally {
      s.stop();
    }
    expect(h1.cli("monitor", "trace", "sample", "1000")).toContain("1 in 1000 sampled");
    expect(monitorSettings(maps.config.get().flags ?? 0).traceSampleEvery).toBe(1000);

    await h1.stop();
    await h1.start(60_000);
    await waitFor("web traced again after the restart", webTraced, 30_000);
    expect((await h1.status()).monitor).toMatchObject({ tracedEndpoints: ["web"], traceSampleEvery: 1000 });
    expect(monitorSettings(maps.config.get().flags ?? 0).traceSampleEvery).toBe(1000);
    expect(formatStatus(await h1.status())).toMatch(/^monitor {3}idle .*; traces endpoints web; 1 in 1000 sampled; read drop \d+/m);

    expect(h1.cli("monitor", "trace", "off", "--endpoint", "web")).toContain("traces 1 in 1000 sampled");
    expect(h1.cli("monitor", "trace", "sample", "default")).toContain("traces off");
    await waitFor("web's TRACE flag off", () => !webTraced() && monitorSettings(maps.config.get().flags ?? 0).traceSampleEvery === 0, 30_000);

    const refused = (args: string[], message: string) => {
      const r = spawnSync(process.execPath, [CLI, "monitor", "trace", ...args, "--socket", h1.socket], { encoding: "utf8", timeout: 30_000 });
      expect({ args, status: r.status, stderr: r.stderr.includes(message) }).toEqual({ args, status: 1, stderr: true });
    };
    for (const bad of ["a b", "x;y", "$(id)", "`id`", "a\nb", "..", "'a'", "../web"]) refused(["on", "--endpoint", bad], `endpoint must be an endpoint id or number, got ${JSON.stringify(bad)}`);
    refused(["on", "--endpoint", "nosuch"], "no endpoint nosuch");
    for (const bad of ["-1", "65536", "1.5", "1;2", "$(id)", "`id`", "1\n2", "..", "'7'"]) refused(["sample", bad], `sample must be an integer from 0 (no sampling) to 65535, got ${JSON.stringify(bad)}`);
    // The API refuses the same, naming the field, and nothing changed.
    await expect(h1.client.setTrace({ endpoint: "$(id)", on: true })).rejects.toThrow('endpoint must be an endpoint id or number, got "$(id)"');
    await expect(h1.client.setTrace({ sampleEvery: "1;2" as unknown as number })).rejects.toThrow('sample must be an integer from 0 (no sampling) to 65535, got "1;2"');
    expect((await h1.status()).monitor).toMatchObject({ tracedEndpoints: [], traceSampleEvery: 0 });
  } finally {
    maps.close();
  }
}, 150_000);

test("`bpfnet monitor` on the host prints the one-liner; a bad filter is refused naming it", async () => {
  const child = spawn(process.execPath, [CLI, "monitor", "--type", "drop", "--socket", h1.socket], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const line = await waitFor("a DROP line", () => {
    spoof();
    return out.split("\n").find((l) => l.includes(SPOOFED));
  }, 30_000, 500);
  expect(line).toMatch(new RegExp(`^\\S+Z h1 DROP spoofed-source at lxc ingress ifindex ${web.hostIfindex}: ${SPOOFED.replace(/\./g, "\\.")} \\(id \\?\\) -> ${api.ip.replace(/\./g, "\\.")} \\(id ${api.identity}\\) icmp \\d+B$`));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill("SIGINT");
  expect(await exited).toBe(0);

  for (const bad of ["drop;id", "$(id)", "`id`", "drop\nx", "../x", "'drop'", "dro p"]) {
    const r = spawnSync(process.execPath, [CLI, "monitor", "--type", bad, "--socket", h1.socket], { encoding: "utf8", timeout: 30_000 });
    expect({ bad, status: r.status }).toEqual({ bad, status: 1 });
    expect(r.stderr).toContain(`type must be one of drop, verdict, trace, got ${JSON.stringify(bad.split(",")[0])}`);
  }
  for (const bad of ["a b", "x;y", "$(id)", "`id`", "a\nb", "..", "'a'"]) {
    const r = spawnSync(process.execPath, [CLI, "monitor", "--endpoint", bad, "--socket", h1.socket], { encoding: "utf8", timeout: 30_000 });
    expect({ bad, status: r.status }).toEqual({ bad, status: 1 });
    expect(r.stderr).toContain(`endpoint must be an endpoint id or number, got ${JSON.stringify(bad)}`);
  }
}, 90_000);

test("`bpfnet monitor --all --inventory` merges both hosts' streams over SSH in time order, naming the host", async () => {
  const child = spawn(process.execPath, [CLI, "monitor", "--all", "--inventory", L!.inventoryFile, "--json", "--type", "drop"], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const events = () => out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as MonitorEvent);
  await waitFor(`drops from both hosts in the merged stream (stderr: ${err})`, () => {
    spoof(); // dropped on h1
    pingApi(); // dropped on h2 by api's policy
    const got = events();
    return got.some((e) => e.host === "h1" && e.reason === DropReason.SPOOFED_SOURCE) && got.some((e) => e.host === "h2" && e.reason === DropReason.POLICY_DENIED);
  }, 60_000, 700);
  const got = events();
  const times = got.map((e) => e.time);
  expect(times).toEqual([...times].sort());
  expect(new Set(got.map((e) => e.host))).toEqual(new Set(["h1", "h2"]));

  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill("SIGTERM");
  expect(await exited).toBe(0);
  // The hosts' `bpfnet monitor` ended with the SSH sessions (hung up), not left behind.
  for (const h of L!.lab.inventory.hosts) {
    await waitFor(`no monitor left on ${h.name}`, () => {
      const pids = spawnSync("ip", ["netns", "pids", h.netns!], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
      return pids.every((pid) => !spawnSync("cat", [`/proc/${pid}/cmdline`], { encoding: "utf8" }).stdout.includes("monitor"));
    }, 20_000, 250);
  }
}, 120_000);
