// Long-lived traffic for the reliability tests: N TCP connections that each send a numbered
// line every few milliseconds and check its echo (in order, nothing lost, no reset), plus a
// fast ping, both running in the background across a scenario and reported at the end.
import { ChildProcess, spawn } from "child_process";

export interface FlowResult {
  port: number;
  sent: number;
  echoed: number;
  /** The socket error that ended the flow (ECONNRESET, …), if any. */
  error?: string;
  /** An echo out of order or a byte stream that did not match. */
  corrupt: boolean;
  /** Longest time without an echo while the flow ran. */
  maxGapMs: number;
}

export interface Flows {
  /** Echoes received so far across all flows (read from the client's progress lines). */
  echoed(): number;
  /** Stops sending, waits for outstanding echoes, returns one result per flow. */
  stop(): Promise<FlowResult[]>;
}

const SERVER = `
const net = require("net");
for (const port of JSON.parse(process.argv[1])) {
  net.createServer((s) => { s.on("error", () => undefined); s.pipe(s); }).listen(port, () => console.log("listening " + port));
}`;

const CLIENT = `
const net = require("net");
const [ip, ports, everyMs] = [process.argv[1], JSON.parse(process.argv[2]), Number(process.argv[3])];
const flows = ports.map((port) => {
  const f = { port, sent: 0, echoed: 0, corrupt: false, maxGapMs: 0, last: Date.now(), buf: "" };
  f.sock = net.connect(port, ip);
  f.sock.setNoDelay(true);
  f.sock.on("data", (d) => {
    f.buf += d;
    let i;
    while ((i = f.buf.indexOf("\\n")) >= 0) {
      const n = Number(f.buf.slice(0, i));
      f.buf = f.buf.slice(i + 1);
      if (n !== f.echoed) f.corrupt = true;
      f.echoed++;
      const now = Date.now();
      f.maxGapMs = Math.max(f.maxGapMs, now - f.last);
      f.last = now;
    }
  });
  f.sock.on("error", (e) => (f.error = e.code || e.message));
  f.sock.on("close", () => { if (!stopping && !f.error) f.error = "closed"; });
  return f;
});
let stopping = false;
const tick = setInterval(() => {
  for (const f of flows) if (!f.error && f.sock.writable) f.sock.write(f.sent++ + "\\n");
}, everyMs);
const progress = setInterval(() => console.log("echoed " + flows.reduce((a, f) => a + f.echoed, 0)), 200);
process.on("SIGTERM", () => {
  stopping = true;
  clearInterval(tick);
  const deadline = Date.now() + 10000;
  const finish = setInterval(() => {
    if (flows.every((f) => f.error || f.echoed === f.sent) || Date.now() > deadline) {
      clearInterval(finish); clearInterval(progress);
      const out = flows.map(({ port, sent, echoed, error, corrupt, maxGapMs }) => ({ port, sent, echoed, error, corrupt, maxGapMs }));
      console.log("result " + JSON.stringify(out));
      for (const f of flows) f.sock.destroy();
      process.exit(0);
    }
  }, 20);
});`;

/**
 * Starts `ports.length` flows from namespace `from` to `ip` (a server in namespace `to`).
 * `children` collects the processes so a test's teardown can kill them whatever happens.
 */
export async function startFlows(from: string, to: string, ip: string, ports: number[], children: ChildProcess[], everyMs = 20): Promise<Flows> {
  const server = spawn("ip", ["netns", "exec", to, process.execPath, "-e", SERVER, JSON.stringify(ports)], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(server);
  await new Promise<void>((resolve, reject) => {
    let seen = 0;
    server.stdout!.on("data", (d) => {
      seen += String(d).split("listening").length - 1;
      if (seen >= ports.length) resolve();
    });
    server.on("exit", (code) => reject(new Error(`flow server exited with ${code}`)));
  });
  const client = spawn("ip", ["netns", "exec", from, process.execPath, "-e", CLIENT, ip, JSON.stringify(ports), String(everyMs)], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(client);
  let out = "";
  let echoed = 0;
  client.stdout!.on("data", (d) => {
    out += d;
    const m = /echoed (\d+)\n(?![\s\S]*echoed)/.exec(out);
    if (m) echoed = Number(m[1]);
  });
  const exited = new Promise<void>((resolve) => client.on("exit", () => resolve()));
  return {
    echoed: () => echoed,
    stop: async () => {
      client.kill("SIGTERM");
      await exited;
      server.kill("SIGKILL");
      const m = /result (.*)\n/.exec(out);
      if (!m) throw new Error(`flow client printed no result: ${out.slice(-500)}`);
      return JSON.parse(m[1]) as FlowResult[];
    },
  };
}

export interface BackgroundPing {
  /** Stops (SIGINT) and returns what ping counted. */
  stop(): Promise<{ transmitted: number; received: number; output: string }>;
}

/** A ping from namespace `from` to `dst` every `intervalS` seconds until stopped. */
export function startPing(from: string, dst: string, children: ChildProcess[], intervalS = 0.05): BackgroundPing {
  const p = spawn("ip", ["netns", "exec", from, "ping", "-n", "-q", "-i", String(intervalS), dst], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(p);
  let out = "";
  p.stdout!.on("data", (d) => (out += d));
  p.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<void>((resolve) => p.on("exit", () => resolve()));
  return {
    stop: async () => {
      p.kill("SIGINT");
      await exited;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      return { transmitted: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0, output: out };
    },
  };
}
