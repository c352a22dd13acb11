// Traffic between lab namespaces for tests: run a command in a namespace, ping, a TCP transfer
// checked end to end by sha256, and a poll-until helper.
import { ChildProcess, spawn, spawnSync } from "child_process";

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value (returned) or the time runs out (throws with `what`). */
export async function waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await sleep(everyMs);
  }
}

/** Runs a command in a namespace; returns status and output (never throws). */
export function inNetns(netns: string, cmd: string[], timeoutMs = 30_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("ip", ["netns", "exec", netns, ...cmd], { encoding: "utf8", timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** A namespace's kernel counters of one /proc/net/snmp section ("Tcp", "Icmp", "Udp", …) by name. */
export function snmpCounters(netns: string, section: string): Record<string, number> {
  const r = inNetns(netns, ["cat", "/proc/net/snmp"]);
  const [names, values] = r.stdout.split("\n").filter((l) => l.startsWith(`${section}:`)).map((l) => l.trim().split(/\s+/).slice(1));
  if (r.status !== 0 || !names || !values) throw new Error(`cannot read ${section} counters in ${netns}: ${r.stderr}`);
  return Object.fromEntries(names.map((n, i) => [n, Number(values[i])]));
}

/** The kernel's TCP reset counters in a namespace: unchanged across a window = no connection reset. */
export function tcpResets(netns: string): { estabResets: number; outRsts: number } {
  const c = snmpCounters(netns, "Tcp");
  return { estabResets: c.EstabResets, outRsts: c.OutRsts };
}

/** ICMP echo requests the namespace's stack received (its own IPv6 chatter does not count). */
export const echoesIn = (netns: string): number => snmpCounters(netns, "Icmp").InEchos;

export interface PingResult {
  ok: boolean;
  transmitted: number;
  received: number;
  rttAvgMs?: number;
  output: string;
}

export function ping(netns: string, dst: string, count = 3, intervalS = 0.2, waitS = 2): PingResult {
  const r = inNetns(netns, ["ping", "-n", "-q", "-c", String(count), "-i", String(intervalS), "-W", String(waitS), dst], 120_000);
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  return {
    ok: r.status === 0,
    transmitted: m ? Number(m[1]) : 0,
    received: m ? Number(m[2]) : 0,
    ...(rtt ? { rttAvgMs: Number(rtt[1]) } : {}),
    output: r.stdout + r.stderr,
  };
}

export interface TransferResult {
  sent: number;
  sha: string;
  ms: number;
  /** What the sink counted and hashed. */
  received: { n: number; sha: string };
}

/**
 * Sends `bytes` random bytes over TCP from namespace `from` to a sink in `to` listening on
 * `ip:port`; the sink answers with the count and sha256 of what it got.
 */
export async function tcpTransfer(from: string, to: string, ip: string, bytes: number, port: number, children: ChildProcess[]): Promise<TransferResult> {
  const sink = spawn("ip", ["netns", "exec", to, process.execPath, "-e", `
    const net = require("net"), crypto = require("crypto");
    const srv = net.createServer((sock) => {
      const h = crypto.createHash("sha256"); let n = 0;
      sock.on("data", (d) => { n += d.length; h.update(d); });
      sock.on("end", () => { sock.end(JSON.stringify({ n, sha: h.digest("hex") })); srv.close(); });
    });
    srv.listen(${port}, () => console.log("listening"));`], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(sink);
  await new Promise<void>((resolve, reject) => {
    sink.stdout!.on("data", (d) => String(d).includes("listening") && resolve());
    sink.on("exit", (code) => reject(new Error(`TCP sink exited with ${code}`)));
  });
  const send = inNetns(from, [process.execPath, "-e", `
    const net = require("net"), crypto = require("crypto");
    const buf = crypto.randomBytes(${bytes}), sha = crypto.createHash("sha256").update(buf).digest("hex");
    const t0 = Date.now(); let reply = "";
    const sock = net.connect(${port}, "${ip}", () => sock.end(buf));
    sock.on("data", (d) => (reply += d));
    sock.on("end", () => console.log(JSON.stringify({ sent: buf.length, sha, ms: Date.now() - t0, received: JSON.parse(reply) })));`], 60_000);
  if (send.status !== 0) throw new Error(`TCP transfer failed (${send.status}): ${send.stderr}`);
  return JSON.parse(send.stdout) as TransferResult;
}
