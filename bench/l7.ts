// L7 proxy overhead between two containers on two hosts (a 2-host vxlan lab, tl7c, real agents
// and BPF): web on h1 calls api on h2 on port 8080, whose HTTP rules send every connection
// through h2's agent proxy (the datapath's redirect, then a verdict per request), and on port
// 9090, allowed at L4 and not proxied. Same containers, same backend process, same run, rounds
// interleaved: requests/s and latency, proxy against direct.
//
//   npx ts-node bench/l7.ts [--rounds 5] [--requests 2000] [--concurrency 8] [--write]   (root, dist/ built)
import * as fs from "fs";
import * as path from "path";
import { inNetns } from "../test/agent/support/agents";
import { startBackend } from "../test/policy/support/http";
import { startWebApiLab, WebApiLab } from "../test/policy/support/webApiLab";
import { fmt, markdownTable, median, percentile, ratio } from "./lib/stats";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg("rounds", 5);
const REQUESTS = arg("requests", 2000);
const CONCURRENCY = arg("concurrency", 8);

// Closed-loop load: CONCURRENCY keep-alive connections, each sends its next request when the last answered.
const LOAD = `
const http = require("http");
const [host, port, total, conc] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
const lat = []; let sent = 0, failed = 0; const t0 = process.hrtime.bigint();
const one = () => { if (sent >= total) return Promise.resolve(); sent++;
  const i = sent; const start = process.hrtime.bigint();
  return new Promise((resolve) => { const post = i % 2 === 0;
    const req = http.request({ host, port, agent, method: post ? "POST" : "GET", path: post ? "/v1/orders" : "/v1/items/" + i,
      headers: post ? { "content-type": "application/json", "content-length": 11 } : {} }, (res) => { res.resume();
      res.on("end", () => { if (res.statusCode !== 200) failed++; lat.push(Number(process.hrtime.bigint() - start) / 1e3); resolve(); }); });
    req.on("error", () => { failed++; resolve(); }); req.end(post ? '{"item":42}' : undefined); }).then(one); };
Promise.all(Array.from({ length: conc }, one)).then(() => { const s = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ rps: total / s, lat, failed }) + "\\n"); agent.destroy(); });`;

function load(env: WebApiLab, port: number): { rps: number; lat: number[]; failed: number } {
  const r = inNetns(env.netns.web, [process.execPath, "-e", LOAD, env.ip.api, String(port), String(REQUESTS), String(CONCURRENCY)], 600_000);
  if (r.status !== 0) throw new Error(`load generator failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

async function main(): Promise<void> {
  const env = await startWebApiLab("tl7c", 189, [
    { port: 8080, protocol: "TCP", http: [{ method: "GET", path: "/v1/.*" }, { method: "POST", path: "/v1/orders" }] },
    { port: 9090, protocol: "TCP" },
  ]);
  const PROXIED = 8080, DIRECT = 9090;
  const runs: Record<"direct" | "proxy", { rps: number[]; p50: number[]; p99: number[]; failed: number }> = {
    direct: { rps: [], p50: [], p99: [], failed: 0 },
    proxy: { rps: [], p50: [], p99: [], failed: 0 },
  };
  try {
    env.children.push(await startBackend(env.netns.api, [PROXIED, DIRECT]));
    load(env, DIRECT); // warm-up, both paths (the first rounds also wait for web's identity on h2)
    for (let i = 0; i < 30 && load(env, PROXIED).failed > 0; i++) await new Promise((r) => setTimeout(r, 1000));
    for (let r = 0; r < ROUNDS; r++) {
      for (const [what, port] of (r % 2 ? [["proxy", PROXIED], ["direct", DIRECT]] : [["direct", DIRECT], ["proxy", PROXIED]]) as ["direct" | "proxy", number][]) {
        const res = load(env, port);
        runs[what].rps.push(res.rps);
        runs[what].p50.push(percentile(res.lat, 50));
        runs[what].p99.push(percentile(res.lat, 99));
        runs[what].failed += res.failed;
      }
    }
  } finally {
    await env.down();
  }
  if (runs.direct.failed || runs.proxy.failed) throw new Error(`failed requests: direct ${runs.direct.failed}, proxy ${runs.proxy.failed}`);
  const d = runs.direct, p = runs.proxy;
  const table = markdownTable(
    ["path", "requests/s (median of rounds)", "p50 µs", "p99 µs", "requests/s vs direct", "p99 vs direct"],
    [
      ["direct (port 9090, L4 allow)", fmt(median(d.rps), 0), fmt(median(d.p50), 0), fmt(median(d.p99), 0), "1.00", "1.00"],
      ["L7 proxy (port 8080, HTTP rules)", fmt(median(p.rps), 0), fmt(median(p.p50), 0), fmt(median(p.p99), 0), fmt(ratio(median(p.rps), median(d.rps)), 2), fmt(ratio(median(p.p99), median(d.p99)), 2)],
    ],
  );
  const text = `web (h1) → api (h2) over VXLAN, ${ROUNDS} interleaved rounds × ${REQUESTS} requests (GET and POST alternating, all allowed), ${CONCURRENCY} keep-alive connections, ${new Date().toISOString().slice(0, 10)}:\n\n${table}\n`;
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
