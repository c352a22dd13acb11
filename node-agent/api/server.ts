// The agent API: HTTP/JSON on a unix socket that only root can open (mode 0600).
//
//   GET    /v1/status             AgentStatus
//   GET    /v1/endpoints          { endpoints: EndpointView[] }
//   GET    /v1/endpoints/<id>     { endpoint } | 404
//   POST   /v1/endpoints          AddEndpointRequest → 201 { endpoint, created: true } | 200 (exists)
//   DELETE /v1/endpoints/<id>     { deleted, endpoint? } (200 either way: deleting twice is fine)
//   GET    /v1/debug/applied      AppliedLogView: the etcd changes applied, in order
//   GET    /v1/health             HealthStatus: this host's view of every peer (node-agent/health)
//   GET    /v1/services           ServiceList: services, their ports and backends as this host programs them
//   GET    /v1/monitor?type=drop|verdict|trace&endpoint=N
//                                 the node monitor: MonitorEvent per line (application/x-ndjson), until closed
//   PUT    /v1/traces             TraceChange → MonitorStatus: the user's lasting trace switches
//
// Errors are { error: { code, message } } with a 4xx/5xx status.
import * as fs from "fs";
import * as http from "http";
import { EndpointError } from "../daemon/endpoints";
import { Logger } from "../daemon/log";
import type { MonitorListener } from "../monitor/hub";
import { parseMonitorFilter } from "../monitor/event";
import { checkSampleEvery, checkTraceEndpoint } from "../monitor/traceSwitch";
import type { AgentStatus, ApiErrorBody, TraceChange } from "./types";
import { API_VERSION } from "./types";

export interface ApiHandlers {
  status(): Promise<AgentStatus> | AgentStatus;
  listEndpoints(): unknown;
  getEndpoint(id: string): unknown | undefined;
  addEndpoint(body: unknown): Promise<{ endpoint: unknown; created: boolean }>;
  deleteEndpoint(id: string): Promise<unknown>;
  /** False until the datapath is up: endpoint changes answer 503 meanwhile. */
  ready(): boolean;
  /** The applied-changes log (daemon/appliedLog.ts). */
  applied(): unknown;
  /** Host-to-host health (HealthStatus); absent: 404. */
  health?(): unknown;
  /** Services as this host programs them (ServiceList); absent: 404. */
  services?(): unknown;
  /** Adds a node-monitor listener, returning its removal; absent: 404. */
  monitor?(listener: MonitorListener): () => void;
  /** The user's lasting trace switches (PUT /v1/traces); returns the monitor's status. */
  setTrace?(change: TraceChange): unknown;
}

/** A monitor listener whose connection holds more than this unsent loses events (counted). */
const MONITOR_BACKLOG_BYTES = 1 << 20;

const MAX_BODY = 64 * 1024;

export class ApiServer {
  private server: http.Server | undefined;

  constructor(
    private readonly socketPath: string,
    private readonly handlers: ApiHandlers,
    private readonly log: Logger,
  ) {}

  async listen(): Promise<void> {
    // A socket left by a killed agent would make listen() fail with EADDRINUSE.
    try {
      if (fs.lstatSync(this.socketPath).isSocket()) fs.unlinkSync(this.socketPath);
    } catch {
      /* none */
    }
    const server = http.createServer((req, res) => void this.handle(req, res));
    // Created 0600 from the start (umask), not chmod-ed afterwards: no window where others can connect.
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.socketPath, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(this.socketPath, 0o600);
    this.server = server;
    this.log.info("API listening", { socket: this.socketPath });
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    try {
      fs.unlinkSync(this.socketPath);
    } catch {
      /* gone */
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body, null, 2) + "\n";
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      res.end(text);
    };
    const fail = (status: number, code: string, message: string) => send(status, { error: { code, message } } satisfies ApiErrorBody);
    try {
      const url = new URL(req.url ?? "/", "http://agent");
      const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
      if (parts[0] !== API_VERSION) return fail(404, "not-found", `unknown path ${url.pathname} (the API is under /${API_VERSION}/)`);
      const [, resource, id, ...rest] = parts;
      if (rest.length) return fail(404, "not-found", `unknown path ${url.pathname}`);
      const method = req.method ?? "GET";
      if (resource === "status" && !id && method === "GET") return send(200, await this.handlers.status());
      if (resource === "debug" && id === "applied" && method === "GET") return send(200, this.handlers.applied());
      if (resource === "health" && !id && method === "GET") {
        const h = this.handlers.health?.();
        return h ? send(200, h) : fail(404, "no-health", "health probing has not started");
      }
      if (resource === "services" && !id && method === "GET") {
        const s = this.handlers.services?.();
        return s ? send(200, s) : fail(404, "no-services", "the service reconciler has not started");
      }
      if (resource === "monitor" && !id && method === "GET") return this.streamMonitor(url, req, res, fail);
      if (resource === "traces" && !id && method === "PUT") {
        if (!this.handlers.setTrace) return fail(404, "no-monitor", "the node monitor has not started");
        return send(200, this.handlers.setTrace(parseTraceChange(await readJson(req))));
      }
      if (resource !== "endpoints") return fail(404, "not-found", `unknown path ${url.pathname}`);
      if (!id && method === "GET") return send(200, { endpoints: this.handlers.listEndpoints() });
      if (id && method === "GET") {
        const ep = this.handlers.getEndpoint(id);
        return ep ? send(200, { endpoint: ep }) : fail(404, "no-endpoint", `no endpoint ${id}`);
      }
      if (!this.handlers.ready()) return fail(503, "not-ready", "the agent is still starting; try again");
      if (!id && method === "POST") {
        const body = await readJson(req);
        const result = await this.handlers.addEndpoint(body);
        return send(result.created ? 201 : 200, result);
      }
      if (id && method === "DELETE") return send(200, await this.handlers.deleteEndpoint(id));
      return fail(405, "method-not-allowed", `${method} is not allowed on ${url.pathname}`);
    } catch (e) {
      if (e instanceof EndpointError) return fail(e.status, e.code, e.message);
      if (e instanceof BadRequest) return fail(400, "bad-request", e.message);
      this.log.error("API request failed", { method: req.method, url: req.url, error: e as Error });
      return fail(500, "internal", (e as Error).message);
    }
  }

  /** GET /v1/monitor: a chunked NDJSON stream of the events the filter matches, until the client goes. */
  private streamMonitor(url: URL, req: http.IncomingMessage, res: http.ServerResponse, fail: (status: number, code: string, message: string) => void): void {
    const subscribe = this.handlers.monitor;
    if (!subscribe) return fail(404, "no-monitor", "the node monitor has not started");
    let filter;
    try {
      filter = parseMonitorFilter(url.searchParams.getAll("type"), url.searchParams.get("endpoint"));
    } catch (e) {
      return fail(400, "bad-request", (e as Error).message);
    }
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    res.flushHeaders();
    const unsubscribe = subscribe({
      filter,
      send: (e) => {
        if (res.writableLength > MONITOR_BACKLOG_BYTES) return false;
        res.write(JSON.stringify(e) + "\n");
        return true;
      },
    });
    req.socket.setTimeout(0);
    res.on("close", unsubscribe);
  }
}

class BadRequest extends Error {}

function readJson(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new BadRequest(`request body over ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8") || "null"));
      } catch (e) {
        reject(new BadRequest(`request body is not JSON: ${(e as Error).message}`));
      }
    });
    req.on("error", reject);
  });
}

/** PUT /v1/traces's body: {endpoint, on} or {sampleEvery} (null: the agent config's); else 400 naming the field. */
function parseTraceChange(body: unknown): TraceChange {
  const b = (body ?? {}) as Record<string, unknown>;
  try {
    if ("endpoint" in b) {
      if (typeof b.on !== "boolean") throw new RangeError(`on must be true or false, got ${JSON.stringify(b.on)}`);
      return { endpoint: checkTraceEndpoint(b.endpoint), on: b.on };
    }
    if ("sampleEvery" in b) return { sampleEvery: b.sampleEvery === null ? null : checkSampleEvery(b.sampleEvery) };
  } catch (e) {
    throw new BadRequest((e as Error).message);
  }
  throw new BadRequest("the body must be {endpoint, on} or {sampleEvery}");
}
