// A small client of the agent API for the CLI, the CNI plugin and tests.
import * as http from "http";
import type { AppliedLogView } from "../daemon/appliedLog";
import { filterQuery, MonitorEvent, MonitorFilter } from "../monitor/event";
import type { AddEndpointRequest, AddEndpointResponse, AgentStatus, DeleteEndpointResponse, EndpointView, HealthStatus, MonitorStatus, ServiceList, TraceChange } from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class AgentClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 60_000,
  ) {}

  status(): Promise<AgentStatus> {
    return this.request("GET", "/v1/status");
  }

  async listEndpoints(): Promise<EndpointView[]> {
    return (await this.request<{ endpoints: EndpointView[] }>("GET", "/v1/endpoints")).endpoints;
  }

  /** The endpoint, or undefined when the agent has none with this id. */
  async getEndpoint(id: string): Promise<EndpointView | undefined> {
    try {
      return (await this.request<{ endpoint: EndpointView }>("GET", `/v1/endpoints/${encodeURIComponent(id)}`)).endpoint;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return undefined;
      throw e;
    }
  }

  addEndpoint(req: AddEndpointRequest): Promise<AddEndpointResponse> {
    return this.request("POST", "/v1/endpoints", req);
  }

  deleteEndpoint(id: string): Promise<DeleteEndpointResponse> {
    return this.request("DELETE", `/v1/endpoints/${encodeURIComponent(id)}`);
  }

  /** This host's health endpoint and its view of every peer (node-agent/health). */
  health(): Promise<HealthStatus> {
    return this.request("GET", "/v1/health");
  }

  /** Services, their ports and backends as this host programs them (`bpfnet service list`). */
  services(): Promise<ServiceList> {
    return this.request("GET", "/v1/services");
  }

  /** The user's lasting trace switches (`bpfnet monitor trace`): an endpoint's, or the sampling rate. */
  setTrace(change: TraceChange): Promise<MonitorStatus> {
    return this.request("PUT", "/v1/traces", change);
  }

  /**
   * The node monitor's events as they happen (GET /v1/monitor), until `signal` aborts or the
   * agent closes the stream. Breaking out of the loop closes the connection.
   */
  async *monitor(filter: MonitorFilter = {}, signal?: AbortSignal): AsyncIterable<MonitorEvent> {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({ socketPath: this.socketPath, agent: false, path: `/v1/monitor${filterQuery(filter)}`, method: "GET", signal }, resolve);
      req.on("error", (e: NodeJS.ErrnoException) =>
        reject(e.code === "ENOENT" || e.code === "ECONNREFUSED" ? new ApiError(0, "unreachable", `cannot reach the agent at ${this.socketPath} (${e.code}): is it running?`) : e),
      );
      req.end();
    });
    try {
      if ((res.statusCode ?? 500) >= 400) {
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        const err = (JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as { error?: { code?: string; message?: string } }).error;
        throw new ApiError(res.statusCode ?? 500, err?.code ?? "error", err?.message ?? `HTTP ${res.statusCode}`);
      }
      let rest = "";
      for await (const chunk of res) {
        const lines = (rest + (chunk as Buffer).toString("utf8")).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) if (line) yield JSON.parse(line) as MonitorEvent;
      }
    } catch (e) {
      if (signal?.aborted) return;
      throw e;
    } finally {
      res.destroy();
    }
  }

  /** The etcd changes the agent applied, in order (daemon/appliedLog.ts). */
  applied(): Promise<AppliedLogView> {
    return this.request("GET", "/v1/debug/applied");
  }

  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          // A connection per call: Node's default agent keeps sockets alive, and one the agent's
          // server closed after its keep-alive timeout fails the next call with EPIPE/ECONNRESET.
          // A unix-socket connect costs microseconds.
          agent: false,
          path,
          method,
          timeout: this.timeoutMs,
          headers: payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              return reject(new ApiError(res.statusCode ?? 0, "bad-response", `agent answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`));
            }
            if ((res.statusCode ?? 500) >= 400) {
              const err = (parsed as { error?: { code?: string; message?: string } })?.error;
              return reject(new ApiError(res.statusCode ?? 500, err?.code ?? "error", err?.message ?? `HTTP ${res.statusCode}`));
            }
            resolve(parsed as T);
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`agent at ${this.socketPath} did not answer within ${this.timeoutMs} ms`)));
      req.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT" || e.code === "ECONNREFUSED") {
          reject(new ApiError(0, "unreachable", `cannot reach the agent at ${this.socketPath} (${e.code}): is it running?`));
        } else reject(e);
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}
