// The measuring tools, each run inside a container namespace: iperf3, a TCP request/response
// ping-pong and a UDP/TCP echo server (small node scripts), ping, and the "first answered
// packet" prober of the endpoint-add benchmark.
import { Children, sleep } from "./proc";

const NODE = process.execPath;

/** TCP echo (request/response) and UDP echo on one port. Prints "listening" when both are up. */
const ECHO_SERVER = `
const net = require("net"), dgram = require("dgram");
const port = Number(process.env.BENCH_PORT);
let up = 0;
const ready = () => ++up === 2 && console.log("listening");
net.createServer((s) => { s.setNoDelay(true); s.on("data", (d) => s.write(d)); s.on("error", () => {}); })
  .listen(port, "0.0.0.0", ready);
const u = dgram.createSocket("udp4");
u.on("message", (m, r) => u.send(m, r.port, r.address));
u.on("error", () => {});
u.bind(port, "0.0.0.0", ready);
`;

/**
 * One TCP connection, strictly one message in flight: send SIZE bytes, wait for SIZE bytes back,
 * repeat. Prints the round-trip times in µs (after WARMUP unrecorded round trips) as JSON.
 */
const RR_CLIENT = `
const net = require("net");
const { ip, port, size, n, warmup } = JSON.parse(process.env.BENCH_ARGS);
const msg = Buffer.alloc(size, 120), rtts = new Array(n);
let i = -warmup, got = 0, t0 = 0n;
const s = net.connect({ host: ip, port, noDelay: true }, () => { t0 = process.hrtime.bigint(); s.write(msg); });
s.on("data", (d) => {
  got += d.length;
  if (got < size) return;
  const t = process.hrtime.bigint();
  got -= size;
  if (i >= 0) rtts[i] = Number(t - t0) / 1000;
  if (++i >= n) { s.destroy(); process.stdout.write(JSON.stringify(rtts.map((x) => Math.round(x * 100) / 100))); return; }
  t0 = process.hrtime.bigint();
  s.write(msg);
});
s.on("error", (e) => { console.error(e.message); process.exit(1); });
`;

/**
 * Started inside a (still unplumbed) container namespace: sends a small UDP datagram to an
 * echo server every millisecond, ignoring send errors (no interface or route yet), and on the
 * first answer prints that moment's CLOCK_MONOTONIC ns and exits.
 */
const FIRST_ANSWER_PROBER = `
const dgram = require("dgram");
const { ip, port, timeoutMs } = JSON.parse(process.env.BENCH_ARGS);
const s = dgram.createSocket("udp4");
let sent = 0;
s.on("message", () => {
  const t = process.hrtime.bigint();
  process.stdout.write(JSON.stringify({ t: t.toString(), sent }) + "\\n", () => process.exit(0));
});
s.on("error", () => {});
s.bind(0, "0.0.0.0", () => {
  const buf = Buffer.alloc(16);
  setInterval(() => { sent++; s.send(buf, port, ip, () => {}); }, 1);
  console.log("ready");
});
setTimeout(() => process.stdout.write(JSON.stringify({ t: null, sent }) + "\\n", () => process.exit(2)), timeoutMs);
`;

export async function startEchoServer(children: Children, netns: string, port: number): Promise<void> {
  await children.server(netns, [NODE, "-e", ECHO_SERVER], "listening", 15_000, { BENCH_PORT: String(port) });
}

/** Round-trip times in µs of `n` request/response exchanges of `size` bytes. */
export async function requestResponse(children: Children, netns: string, ip: string, port: number, n: number, size = 64, warmup = 200): Promise<number[]> {
  const out = await children.check(netns, [NODE, "-e", RR_CLIENT], 120_000, { BENCH_ARGS: JSON.stringify({ ip, port, size, n, warmup }) });
  const rtts = JSON.parse(out) as number[];
  if (rtts.length !== n || rtts.some((x) => typeof x !== "number")) throw new Error(`request/response client returned ${rtts.length} samples, wanted ${n}`);
  return rtts;
}

export async function startIperfServer(children: Children, netns: string, port: number): Promise<void> {
  await children.server(netns, ["iperf3", "-s", "-p", String(port), "--forceflush"], "Server listening", 15_000);
}

export interface IperfResult {
  gbps: number;
  retransmits: number;
  senderCpu: number;
  receiverCpu: number;
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second: number };
    sum_sent?: { retransmits?: number };
    cpu_utilization_percent?: { host_total?: number; remote_total?: number };
  };
}

/** One iperf3 TCP run (single stream) of `seconds` after a 1 s omitted warm-up. */
export async function iperf(children: Children, netns: string, ip: string, port: number, seconds: number): Promise<IperfResult> {
  let last = "";
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await children.run(netns, ["iperf3", "-c", ip, "-p", String(port), "-t", String(seconds), "-O", "1", "-J"], (seconds + 30) * 1000);
    let j: IperfJson | undefined;
    try {
      j = JSON.parse(r.stdout) as IperfJson;
    } catch {
      j = undefined;
    }
    if (r.code === 0 && j?.end?.sum_received && !j.error) {
      return {
        gbps: j.end.sum_received.bits_per_second / 1e9,
        retransmits: j.end.sum_sent?.retransmits ?? 0,
        senderCpu: j.end.cpu_utilization_percent?.host_total ?? NaN,
        receiverCpu: j.end.cpu_utilization_percent?.remote_total ?? NaN,
      };
    }
    last = j?.error ?? (r.stderr || r.stdout).trim().slice(-300);
    // The server answers "busy" while it tears down the previous test.
    await sleep(300);
  }
  throw new Error(`iperf3 ${netns} → ${ip}:${port} failed: ${last}`);
}

/** Per-packet ping RTTs in ms (lost packets are not samples; `lost` counts them). */
export async function pingRtts(children: Children, netns: string, ip: string, count: number, intervalS: number): Promise<{ rtts: number[]; lost: number }> {
  // -w: ping ends by itself (printing what it got) even when replies go missing.
  const deadline = Math.ceil(count * intervalS + 5);
  const r = await children.run(netns, ["ping", "-n", "-c", String(count), "-i", String(intervalS), "-W", "1", "-w", String(deadline), ip], (deadline + 10) * 1000);
  const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { rtts, lost: count - rtts.length };
}

export interface Prober {
  /** CLOCK_MONOTONIC ns of the first answer, undefined when none came in time. */
  result: Promise<{ t?: bigint; sent: number }>;
}

/** Starts the first-answer prober in `netns` and waits until it sends. */
export async function startProber(children: Children, netns: string, ip: string, port: number, timeoutMs: number): Promise<Prober> {
  const child = children.spawn(netns, [NODE, "-e", FIRST_ANSWER_PROBER], { BENCH_ARGS: JSON.stringify({ ip, port, timeoutMs }) });
  let out = "";
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`prober in ${netns} not ready: ${stderr}`)), 15_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`prober in ${netns} exited ${code}: ${stderr}`));
    });
  });
  const result = new Promise<{ t?: bigint; sent: number }>((resolve) => {
    child.once("close", () => {
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (!line) return resolve({ sent: 0 });
      const j = JSON.parse(line) as { t: string | null; sent: number };
      resolve(j.t === null ? { sent: j.sent } : { t: BigInt(j.t), sent: j.sent });
    });
  });
  await ready;
  return { result };
}
