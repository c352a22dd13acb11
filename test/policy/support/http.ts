// HTTP in container namespaces for the L7 tests: a tiny backend (node: python's http.server
// has no POST) that answers every method with what it saw, and a client that sends requests one
// after the other on ONE keep-alive connection.
import { ChildProcess, spawn } from "child_process";
import { inNetns, waitFor } from "../../agent/support/agents";

const SERVER = `
const http = require("http");
for (const port of process.argv.slice(1).map(Number)) http.createServer((req, res) => { let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => { const b = JSON.stringify({ port, method: req.method, url: req.url, body, remote: req.socket.remoteAddress, xff: req.headers["x-forwarded-for"] || null });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(b) }).end(b); }); }).listen(port, "0.0.0.0");`;

const CLIENT = `
const http = require("http");
const [host, port, ...reqs] = process.argv.slice(1);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 }); const sockets = new Set(); const out = [];
(async () => { for (const r of reqs) { const [method, path, body] = r.split(" ");
  out.push(await new Promise((resolve) => { const req = http.request({ host, port: Number(port), method, path, agent, timeout: 4000,
      headers: body ? { "content-length": Buffer.byteLength(body) } : {} }, (res) => { let b = ""; res.on("data", (c) => (b += c)); res.on("end", () => resolve({ status: res.statusCode, body: b })); });
    req.on("socket", (s) => sockets.add(s)); req.on("timeout", () => req.destroy(new Error("timeout"))); req.on("error", (e) => resolve({ status: 0, body: e.message })); req.end(body); })); }
  process.stdout.write(JSON.stringify({ out, sockets: sockets.size })); agent.destroy(); })();`;

/** Starts the backend on `ports` in `netns` and waits until it listens; the caller kills the child. */
export async function startBackend(netns: string, ports: number[]): Promise<ChildProcess> {
  const child = spawn("ip", ["netns", "exec", netns, process.execPath, "-e", SERVER, ...ports.map(String)], { stdio: "ignore" });
  await waitFor("backend listening", () => ports.every((p) => inNetns(netns, ["ss", "-Htln", `sport = :${p}`]).stdout.includes(`:${p}`)), 30_000);
  return child;
}

export interface HttpRun {
  /** Status 0: no answer (the error text in body). */
  out: { status: number; body: string }[];
  /** Connections the client used. */
  sockets: number;
}

/** Requests ("METHOD /path [body]") from `netns` to ip:port, in order, on one keep-alive connection. */
export function requestsFrom(netns: string, ip: string, port: number, reqs: string[]): HttpRun {
  const r = inNetns(netns, [process.execPath, "-e", CLIENT, ip, String(port), ...reqs], 60_000);
  if (r.status !== 0) throw new Error(`client in ${netns} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
