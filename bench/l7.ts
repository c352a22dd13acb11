// L7 proxy overhead: HTTP requests/s and latency through the agent's proxy (node-agent/daemon/
// l7Proxy.ts, judging every request against the policy) against the same requests sent
// straight to the backend, in the same run, rounds interleaved. Backend and load generator are
// separate node processes; the proxy runs in this one, as in the agent. Loopback on this host:
// it measures what the proxy adds (parse, judge, forward on a pooled upstream connection), not
// the datapath's redirect (docs/policy.md says why that is not in place yet).
//
//   npx ts-node bench/l7.ts [--rounds 5] [--requests 2000] [--concurrency 8] [--write]
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { checkPolicySpec } from "../provider/policy/policySpec";
import { computePolicy } from "../node-agent/policy/compute";
import { judgeHttp } from "../node-agent/policy/l7";
import { L7Proxy } from "../node-agent/daemon/l7Proxy";
import { createLogger } from "../node-agent/daemon/log";
import { fmt, markdownTable, median, percentile, ratio } from "./lib/stats";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg("rounds", 5);
const REQUESTS = arg("requests", 2000);
const CONCURRENCY = arg("concurrency", 8);

// A backend that answers GET and POST with a small JSON body (python's http.server has no POST).
const BACKEND = `
const http = require("http");
const s = http.createServer((req, res) => { let n = 0; req.on("data", (c) => (n += c.length));
  req.on("end", () => { const b = JSON.stringify({ method: req.method, url: req.url, n }); res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(b) }).end(b); }); });
s.listen(0, "127.0.0.1", () => process.stdout.write(String(s.address().port) + "\\n"));`;

// Closed-loop load: CONCURRENCY keep-alive connections, each sends its next request when the last answered.
const LOAD = `
const http = require("http");
const [port, total, conc] = process.argv.slice(1).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
const lat = []; let sent = 0, failed = 0; const t0 = process.hrtime.bigint();
const one = () => { if (sent >= total) return Promise.resolve(); sent++;
  const i = sent; const start = process.hrtime.bigint();
  return new Promise((resolve) => { const post = i % 2 === 0;
    const req = http.request({ host: "127.0.0.1", port, agent, method: post ? "POST" : "GET", path: post ? "/v1/orders" : "/v1/items/" + i,
      headers: post ? { "content-type": "application/json", "content-length": 11 } : {} }, (res) => { res.resume();
      res.on("end", () => { if (res.statusCode !== 200) failed++; lat.push(Number(process.hrtime.bigint() - start) / 1e3); resolve(); }); });
    req.on("error", () => { failed++; resolve(); }); req.end(post ? '{"item":42}' : undefined); }).then(one); };
Promise.all(Array.from({ length: conc }, one)).then(() => { const s = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ rps: total / s, lat, failed }) + "\\n"); agent.destroy(); });`;

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.on("exit", (code) => reject(new Error(`child exited ${code} before answering: ${out}`)));
  });
}

async function load(port: number): Promise<{ rps: number; lat: number[]; failed: number }> {
  const child = spawn(process.execPath, ["-e", LOAD, String(port), String(REQUESTS), String(CONCURRENCY)], { stdio: ["ignore", "pipe", "inherit"] });
  return JSON.parse(await firstLine(child));
}

async function main(): Promise<void> {
  const backend = spawn(process.execPath, ["-e", BACKEND], { stdio: ["ignore", "pipe", "inherit"] });
  const backendPort = Number(await firstLine(backend));
  const { spec } = checkPolicySpec({
    policyName: "api-from-web",
    endpointSelector: { app: "api" },
    ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP", http: [{ method: "GET", path: "/v1/.*" }, { method: "POST", path: "/v1/orders" }] }] }],
  });
  const api = computePolicy({ policies: [spec!], endpoints: [{ endpointId: 2, labels: { app: "api" } }], identities: new Map([[256, { app: "web" }]]), proxyPort: 1 }).endpoints[0];
  // Verdicts are logged as in the agent (one JSON line each), to /dev/null here.
  const sink = fs.openSync("/dev/null", "w");
  const proxy = new L7Proxy({
    judge: (_conn, method, p) => judgeHttp(api, "ingress", 256, 8080, method, p),
    originalDestination: () => ({ ip: "127.0.0.1", port: backendPort }),
    log: createLogger("info", "l7", (l) => fs.writeSync(sink, l)),
  });
  const proxyPort = await proxy.listen({ port: 0 });
  const runs: Record<"direct" | "proxy", { rps: number[]; p50: number[]; p99: number[]; failed: number }> = {
    direct: { rps: [], p50: [], p99: [], failed: 0 },
    proxy: { rps: [], p50: [], p99: [], failed: 0 },
  };
  try {
    await load(backendPort); // warm-up, both paths
    await load(proxyPort);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [what, port] of (r % 2 ? [["proxy", proxyPort], ["direct", backendPort]] : [["direct", backendPort], ["proxy", proxyPort]]) as ["direct" | "proxy", number][]) {
        const res = await load(port);
        runs[what].rps.push(res.rps);
        runs[what].p50.push(percentile(res.lat, 50));
        runs[what].p99.push(percentile(res.lat, 99));
        runs[what].failed += res.failed;
      }
    }
  } finally {
    await proxy.close();
    backend.kill();
  }
  if (runs.direct.failed || runs.proxy.failed) throw new Error(`failed requests: direct ${runs.direct.failed}, proxy ${runs.proxy.failed}`);
  const d = runs.direct, p = runs.proxy;
  const table = markdownTable(
    ["path", "requests/s (median of rounds)", "p50 µs", "p99 µs", "requests/s vs direct", "p99 vs direct"],
    [
      ["direct (client → backend)", fmt(median(d.rps), 0), fmt(median(d.p50), 0), fmt(median(d.p99), 0), "1.00", "1.00"],
      ["L7 proxy (client → proxy → backend)", fmt(median(p.rps), 0), fmt(median(p.p50), 0), fmt(median(p.p99), 0), fmt(ratio(median(p.rps), median(d.rps)), 2), fmt(ratio(median(p.p99), median(d.p99)), 2)],
    ],
  );
  const text = `${ROUNDS} interleaved rounds × ${REQUESTS} requests (GET and POST alternating, all allowed), ${CONCURRENCY} keep-alive connections, ${new Date().toISOString().slice(0, 10)}:\n\n${table}\n`;
  process.stdout.write(text);
  if (process.argv.includes("--write")) {
    const file = path.join(__dirname, "..", "docs", "benchmarks.md");
    const begin = "<!-- l7:begin -->", end = "<!-- l7:end -->";
    const doc = fs.readFileSync(file, "utf8");
    const block = `${begin}\n${text}${end}`;
    fs.writeFileSync(file, doc.includes(begin) ? doc.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), block) : `${doc.trimEnd()}\n\n## L7 proxy overhead (bench/l7.ts)\n\n${block}\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
