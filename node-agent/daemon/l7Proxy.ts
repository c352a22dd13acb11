// The agent's HTTP/1.1 proxy for L7 policy: one listener per agent. Every request, including each
// one on a keep-alive connection, is judged on its own: allowed ones are forwarded to the
// connection's original destination, the others answered 403. Each verdict is logged and counted.
//
// Where a connection really goes comes from `originalDestination` (with transparent delivery the
// accepted socket's local address is the pod's address and port the client dialled) and who
// sends it from the socket's remote address; the judge (policy/l7.ts through the agent) turns
// both into endpoint and identity.
import * as http from "http";
import * as net from "net";
import type { Logger } from "./log";

export interface ProxiedConnection {
  /** The client: its own address, kept by transparent delivery. */
  src: string;
  srcPort: number;
  /** The original destination (the pod's address and the port the client dialled). */
  dst: string;
  dport: number;
}

export interface ProxyVerdict {
  allowed: boolean;
  ruleId: number;
  reason: string;
  /** The local endpoint judged (its datapath endpoint_id), when known. */
  endpointId?: number;
  /** Forward through `connectUpstream` (the destination's ingress was judged here: its datapath may trust the connection). */
  markUpstream?: boolean;
}

export interface L7ProxyOptions {
  judge: (conn: ProxiedConnection, method: string, path: string) => ProxyVerdict;
  log: Logger;
  /** Default: the accepted socket's local address (transparent delivery). */
  originalDestination?: (socket: net.Socket) => { ip: string; port: number };
  /** Opens the connection to the backend for verdicts with `markUpstream`; otherwise (and by default) net.connect from the host. */
  connectUpstream?: (dst: { ip: string; port: number }) => net.Socket;
}

export interface L7ProxyCounts {
  connections: number;
  allowed: number;
  denied: number;
  /** Allowed requests whose backend could not be reached or failed (answered 502). */
  upstreamErrors: number;
}

// Hop-by-hop headers (RFC 9110 7.6.1) stay on their hop; Node frames each side's body itself.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"]);

function forwardHeaders(headers: http.IncomingHttpHeaders, extraHop: string[]): http.OutgoingHttpHeaders {
  const drop = new Set([...HOP_BY_HOP, ...extraHop]);
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !drop.has(k)) out[k] = v;
  return out;
}

/** Header names the sender's Connection header marks as hop-by-hop too. */
const connectionTokens = (h: http.IncomingHttpHeaders) => String(h.connection ?? "").toLowerCase().split(",").map((t) => t.trim()).filter(Boolean);

export class L7Proxy {
  readonly counts: L7ProxyCounts = { connections: 0, allowed: 0, denied: 0, upstreamErrors: 0 };
  private readonly server: http.Server;
  private readonly plain = new http.Agent({ keepAlive: true, maxFreeSockets: 64 });
  private readonly marked: http.Agent;

  constructor(private readonly o: L7ProxyOptions) {
    this.marked = this.plain;
    if (o.connectUpstream) {
      const connect = o.connectUpstream;
      this.marked = new http.Agent({ keepAlive: true, maxFreeSockets: 64 });
      // http.Agent's own hook: sockets from connectUpstream, pooled per backend like any other.
      (this.marked as unknown as { createConnection: (opts: { host: string; port: number }) => net.Socket }).createConnection = (opts) =>
        connect({ ip: opts.host, port: Number(opts.port) });
    }
    this.server = http.createServer({ keepAlive: true, requestTimeout: 60_000 }, (req, res) => this.onRequest(req, res));
    this.server.on("connection", () => this.counts.connections++);
    // CONNECT and Upgrade would leave HTTP (no per-request judging after them): refused.
    this.server.on("connect", (_req, socket: net.Socket) => socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"));
    this.server.on("upgrade", (_req, socket: net.Socket) => socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"));
    this.server.on("clientError", (_e, socket: net.Socket) => socket.writable && socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"));
  }

  /** Listens on a handle ({ fd } of a transparent socket) or a port on 127.0.0.1; resolves the port. */
  listen(on: { fd: number } | { port: number; host?: string }): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      const done = () => {
        this.server.off("error", reject);
        resolve((this.server.address() as net.AddressInfo).port);
      };
      if ("fd" in on) this.server.listen({ fd: on.fd }, done);
      else this.server.listen(on.port, on.host ?? "127.0.0.1", done);
    });
  }

  async close(): Promise<void> {
    this.plain.destroy();
    this.marked.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private destination(socket: net.Socket): { ip: string; port: number } {
    if (this.o.originalDestination) return this.o.originalDestination(socket);
    return { ip: (socket.localAddress ?? "").replace(/^::ffff:/, ""), port: socket.localPort ?? 0 };
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket;
    const dst = this.destination(socket);
    const conn: ProxiedConnection = { src: (socket.remoteAddress ?? "").replace(/^::ffff:/, ""), srcPort: socket.remotePort ?? 0, dst: dst.ip, dport: dst.port };
    const method = req.method ?? "";
    const path = req.url ?? "";
    let verdict: ProxyVerdict;
    try {
      verdict = this.o.judge(conn, method, path);
    } catch (e) {
      verdict = { allowed: false, ruleId: 0, reason: `judge failed: ${(e as Error).message}` };
    }
    this.o.log.info("http verdict", { verdict: verdict.allowed ? "allowed" : "denied", reason: verdict.reason, ruleId: verdict.ruleId, endpointId: verdict.endpointId, method, path, src: `${conn.src}:${conn.srcPort}`, dst: `${conn.dst}:${conn.dport}` });
    if (!verdict.allowed) {
      this.counts.denied++;
      // Read the body away first: a response before the request's end would make the server close the keep-alive connection.
      req.resume();
      req.once("end", () => res.writeHead(403, { "content-type": "text/plain", "content-length": "15" }).end("Access denied\r\n"));
      return;
    }
    this.counts.allowed++;
    const headers = forwardHeaders(req.headers, connectionTokens(req.headers));
    // The backend sees the host as the TCP peer (the proxy connects from it): the client's address travels in X-Forwarded-For.
    const xff = req.headers["x-forwarded-for"];
    headers["x-forwarded-for"] = xff ? `${xff}, ${conn.src}` : conn.src;
    const up = http.request({ host: dst.ip, port: dst.port, method, path, headers, agent: verdict.markUpstream ? this.marked : this.plain, setHost: false }, (upRes) => {
      const resHeaders = forwardHeaders(upRes.headers, connectionTokens(upRes.headers));
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, resHeaders);
      upRes.pipe(res);
      upRes.on("error", () => res.destroy());
    });
    up.on("error", (e) => {
      this.counts.upstreamErrors++;
      this.o.log.warn("http upstream failed", { error: e, method, path, dst: `${conn.dst}:${conn.dport}` });
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain", "content-length": "13" }).end("Bad gateway\r\n");
      else res.destroy();
    });
    req.pipe(up);
  }
}
