// The agent's L7 proxy (node-agent/daemon/l7Proxy.ts) in front of a real HTTP backend on
// loopback: every request judged on its own, on one keep-alive connection too; denied ones get
// 403 and never reach the backend; allowed ones arrive whole, bodies included, with the client's
// address in X-Forwarded-For; verdicts counted and logged. Delivery to the proxy (transparent
// redirection from the datapath) is not part of this test: the original destination is given.
import * as http from "http";
import * as net from "net";
import { checkPolicySpec } from "../../provider/policy/policySpec";
import { computePolicy } from "../../node-agent/policy/compute";
import { judgeHttp } from "../../node-agent/policy/l7";
import { L7Proxy } from "../../node-agent/daemon/l7Proxy";
import { createLogger } from "../../node-agent/daemon/log";

const WEB = 256;
const { spec } = checkPolicySpec({
  policyName: "api-from-web",
  endpointSelector: { app: "api" },
  ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP", http: [{ method: "GET", path: "/v1/.*" }, { method: "POST", path: "/v1/orders" }] }] }],
});
const api = computePolicy({ policies: [spec!], endpoints: [{ endpointId: 2, labels: { app: "api" } }], identities: new Map([[WEB, { app: "web" }]]), proxyPort: 1 }).endpoints[0];

let backend: http.Server;
let backendPort: number;
const seen: { method: string; url: string; body: string; xff: string | undefined }[] = [];
let proxy: L7Proxy;
let proxyPort: number;
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  backend = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ method: req.method!, url: req.url!, body, xff: req.headers["x-forwarded-for"] as string | undefined });
      const out = JSON.stringify({ method: req.method, url: req.url, body });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) }).end(out);
    });
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  backendPort = (backend.address() as net.AddressInfo).port;
  proxy = new L7Proxy({
    // The client (127.0.0.1) stands for the web pod; the original destination is the backend, on the policy's port 8080.
    judge: (conn, method, path) => ({ ...judgeHttp(api, "ingress", conn.src === "127.0.0.1" ? WEB : 2, 8080, method, path), endpointId: 2 }),
    originalDestination: () => ({ ip: "127.0.0.1", port: backendPort }),
    log: createLogger("info", "l7", (l) => logLines.push(JSON.parse(l))),
  });
  proxyPort = await proxy.listen({ port: 0 });
});

afterAll(async () => {
  await proxy.close();
  await new Promise((r) => backend.close(r));
});

/** Sends requests one after the other on ONE socket; resolves each response's status and body. */
async function onOneSocket(requests: { method: string; path: string; body?: string }[]) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set<net.Socket>();
  const out: { status: number; body: string }[] = [];
  try {
    for (const r of requests) {
      out.push(
        await new Promise((resolve, reject) => {
          const req = http.request({ host: "127.0.0.1", port: proxyPort, method: r.method, path: r.path, agent, headers: r.body ? { "content-type": "application/json", "content-length": Buffer.byteLength(r.body) } : {} }, (res) => {
            let body = "";
            res.on("data", (c) => (body += c));
            res.on("end", () => resolve({ status: res.statusCode!, body }));
          });
          req.on("socket", (s) => sockets.add(s));
          req.on("error", reject);
          req.end(r.body);
        }),
      );
    }
  } finally {
    agent.destroy();
  }
  return { out, sockets: sockets.size };
}

test("GET /v1/items 200, DELETE /v1/items 403, POST /v1/orders 200 with its body, all on one keep-alive connection", async () => {
  const before = { ...proxy.counts };
  seen.length = 0;
  const { out, sockets } = await onOneSocket([
    { method: "GET", path: "/v1/items" },
    { method: "DELETE", path: "/v1/items", body: '{"all":true}' },
    { method: "POST", path: "/v1/orders", body: '{"item":7}' },
    { method: "GET", path: "/v1/../admin" },
    { method: "GET", path: "/v1/items?page=2" },
  ]);
  expect(sockets).toBe(1);
  expect(out.map((o) => o.status)).toEqual([200, 403, 200, 403, 200]);
  expect(JSON.parse(out[2].body)).toEqual({ method: "POST", url: "/v1/orders", body: '{"item":7}' });
  expect(out[1].body).toBe("Access denied\r\n");
  // Denied requests never reached the backend; allowed ones carry the client's address.
  expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(["GET /v1/items", "POST /v1/orders", "GET /v1/items?page=2"]);
  expect(seen.every((s) => s.xff === "127.0.0.1")).toBe(true);
  expect(proxy.counts.allowed - before.allowed).toBe(3);
  expect(proxy.counts.denied - before.denied).toBe(2);
  expect(proxy.counts.connections - before.connections).toBe(1);
  const verdicts = logLines.filter((l) => l.msg === "http verdict").slice(-5);
  expect(verdicts.map((l) => [l.verdict, l.method, l.path, l.endpointId])).toEqual([
    ["allowed", "GET", "/v1/items", 2],
    ["denied", "DELETE", "/v1/items", 2],
    ["allowed", "POST", "/v1/orders", 2],
    ["denied", "GET", "/v1/../admin", 2],
    ["allowed", "GET", "/v1/items?page=2", 2],
  ]);
});

test("a denied request first, then an allowed one on the same socket: each judged on its own", async () => {
  const { out, sockets } = await onOneSocket([
    { method: "DELETE", path: "/v1/items" },
    { method: "GET", path: "/v1/items" },
  ]);
  expect([sockets, ...out.map((o) => o.status)]).toEqual([1, 403, 200]);
});

test("pipelined requests on a raw socket are judged one by one", async () => {
  const sock = net.connect(proxyPort, "127.0.0.1");
  let text = "";
  sock.on("data", (d) => (text += d));
  sock.write("GET /v1/a HTTP/1.1\r\nhost: x\r\n\r\nDELETE /v1/a HTTP/1.1\r\nhost: x\r\n\r\nGET /v1/b HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
  await new Promise((r) => sock.on("close", r));
  expect([...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1])).toEqual(["200", "403", "200"]);
});

test("hostile request text is refused or judged as plain text, never forwarded past a rule", async () => {
  seen.length = 0;
  const { out } = await onOneSocket([
    { method: "GET", path: "/v1/%2e%2e/admin" },
    { method: "GET", path: "/v1/a%2fb" },
    { method: "GET", path: "/v1/$(id)`id`;x" },
  ]);
  expect(out.map((o) => o.status)).toEqual([403, 403, 200]);
  expect(seen.map((s) => s.url)).toEqual(["/v1/$(id)`id`;x"]);
  // A request line with a bare newline: whatever the server's parser makes of it, the target the
  // backend receives is the one that was judged.
  const sock = net.connect(proxyPort, "127.0.0.1");
  sock.resume();
  sock.write("GET /v1/a\nX: 1 HTTP/1.1\r\nhost: x\r\n\r\n");
  await new Promise((r) => sock.on("close", r));
  const judged = logLines.filter((l) => l.msg === "http verdict").at(-1)!;
  expect(seen.at(-1)!.url).toBe(judged.path);
  // CONNECT and Upgrade would leave per-request judging: refused.
  const up = await new Promise<number>((resolve) => {
    const req = http.request({ host: "127.0.0.1", port: proxyPort, path: "/v1/ws", headers: { connection: "upgrade", upgrade: "websocket" } });
    req.on("response", (res) => resolve(res.statusCode!));
    req.on("upgrade", (res) => resolve(res.statusCode!));
    req.on("error", () => resolve(-1));
    req.end();
  });
  expect(up).toBe(403);
});

test("a backend that is down: 502, counted as an upstream error", async () => {
  const down = new L7Proxy({
    judge: () => ({ allowed: true, ruleId: 1, reason: "rule" }),
    originalDestination: () => ({ ip: "127.0.0.1", port: 1 }),
    log: createLogger("error", "l7", () => undefined),
  });
  const port = await down.listen({ port: 0 });
  try {
    const status = await new Promise<number>((resolve, reject) => http.get({ host: "127.0.0.1", port, path: "/x" }, (res) => (res.resume(), resolve(res.statusCode!))).on("error", reject));
    expect(status).toBe(502);
    expect(down.counts.upstreamErrors).toBe(1);
  } finally {
    await down.close();
  }
});
