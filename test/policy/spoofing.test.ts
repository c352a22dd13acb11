/**
 * Spoofing from the policy angle (issue 9), in a 2-host vxlan lab (tpb2) with real agents: web
 * and an unlabelled intruder on h1, api on h2; a NetworkPolicy lets web (and only web) reach api
 * on ICMP, TCP 8080 and UDP 8081. The intruder borrowing web's source address gets nothing to
 * api, although web's identity would be allowed: h1's bpf_lxc drops it at the intruder's veth
 * (spoofed-source) before any identity is derived from the address. Web's own packets pass
 * (control), and so the refusal is the anti-spoofing's, not the policy's or the setup's.
 * Needs root and dist/ built (scripts/setup).
 */
import { spawn } from "child_process";
import { DropReason, openDatapathMaps, Verdict } from "../../bpf";
import type { DatapathMaps } from "../../bpf";
import { echoesIn, inNetns, ping, snmpCounters, waitFor } from "../agent/support/agents";
import { startWebApiLab, WebApiLab } from "./support/webApiLab";

const TCP_PORT = 8080;
const UDP_PORT = 8081;

/** From `src`: a TCP connect and three UDP datagrams to dst; prints "connected" if TCP got through. */
const SEND_FROM = `
  const [src, dst, tcp, udp] = process.argv.slice(1);
  const s = require("net").connect({ host: dst, port: Number(tcp), localAddress: src }, () => { console.log("connected"); process.exit(0); });
  s.on("error", () => undefined);
  const u = require("dgram").createSocket("udp4");
  u.bind(0, src, () => { for (let i = 0; i < 3; i++) u.send("x", Number(udp), dst); });
  setTimeout(() => process.exit(0), 2000);`;

/** A TCP listener on api (what web's control connection and a spoofed SYN would reach). */
const LISTENER = `require("net").createServer((s) => s.on("error", () => undefined)).listen(${TCP_PORT}, () => console.log("listening"));`;

let env: WebApiLab | undefined;
let h1: DatapathMaps | undefined;
const C = () => env!.netns;
const ip = () => env!.ip;

/** What api's stack received: ICMP echo requests, TCP segments, UDP datagrams (incl. to closed ports). */
const apiReceived = () => ({ echoes: echoesIn(C().api), tcp: snmpCounters(C().api, "Tcp").InSegs, udp: snmpCounters(C().api, "Udp").InDatagrams + snmpCounters(C().api, "Udp").NoPorts });

function sendFrom(netns: string, src: string): boolean {
  const r = inNetns(netns, [process.execPath, "-e", SEND_FROM, src, ip().api, String(TCP_PORT), String(UDP_PORT)]);
  return r.stdout.includes("connected");
}

beforeAll(async () => {
  env = await startWebApiLab("tpb2", 191, [{ port: TCP_PORT, protocol: "TCP" }, { port: UDP_PORT, protocol: "UDP" }, { protocol: "ICMP" }]);
  h1 = openDatapathMaps(env.agents[0].host.bpffsDir);
  const listener = spawn("ip", ["netns", "exec", C().api, process.execPath, "-e", LISTENER], { stdio: ["ignore", "pipe", "inherit"] });
  env.children.push(listener);
  await new Promise<void>((resolve, reject) => {
    listener.stdout!.on("data", (d) => String(d).includes("listening") && resolve());
    listener.on("exit", (code) => reject(new Error(`listener in ${C().api} exited ${code}`)));
  });
}, 180_000);

afterAll(async () => {
  await env?.down([() => h1?.close()]);
}, 90_000);

test("a container sending with an allowed container's source address gets nothing through; counted as spoofed-source", async () => {
  // Control: web's identity is allowed (ICMP answered), the intruder's own is not.
  await waitFor("web's ping answered", () => ping(C().web, ip().api, 2, 0.2, 1).received > 0, 20_000);
  await waitFor("the intruder's own ping refused", () => ping(C().intruder, ip().api, 2, 0.2, 1).received === 0, 20_000);
  expect(sendFrom(C().intruder, ip().intruder)).toBe(false);

  const veth = (await env!.agents[0].client.getEndpoint("intruder"))!.hostIfindex!;
  const counted = (reason: number) => h1!.metrics.get({ id: veth, direction: "ingress", reason }).packets;
  const before = { spoofed: counted(DropReason.SPOOFED_SOURCE), forwarded: counted(Verdict.FORWARDED), api: apiReceived() };

  inNetns(C().intruder, ["ip", "addr", "add", `${ip().web}/32`, "dev", "eth0"]);
  try {
    const icmp = inNetns(C().intruder, ["ping", "-n", "-q", "-c", "5", "-i", "0.1", "-W", "1", "-I", ip().web, ip().api]);
    expect(icmp.stdout).toMatch(/5 packets transmitted, 0 received/);
    expect(sendFrom(C().intruder, ip().web)).toBe(false);
  } finally {
    inNetns(C().intruder, ["ip", "addr", "del", `${ip().web}/32`, "dev", "eth0"]);
  }
  // 5 echo requests, ≥1 SYN, 3 datagrams: every one refused at the intruder's veth.
  await waitFor("h1 to count the spoofed packets", () => counted(DropReason.SPOOFED_SOURCE) - before.spoofed >= 9n, 10_000);
  expect(counted(Verdict.FORWARDED)).toBe(before.forwarded);
  expect(apiReceived()).toEqual(before.api);

  // Web itself, with the same address, still gets every kind through.
  expect(sendFrom(C().web, ip().web)).toBe(true);
  expect(ping(C().web, ip().api, 3, 0.1).received).toBe(3);
}, 120_000);
