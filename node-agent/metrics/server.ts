// Serves the registry in Prometheus' text format on the configured TCP address: GET /metrics.
import * as http from "http";
import type { Logger } from "../daemon/log";
import { registry } from "./registry";

export class MetricsServer {
  private server: http.Server | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly log: Logger,
  ) {}

  async listen(): Promise<void> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, this.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    this.log.info("metrics listening", { address: `${this.host}:${this.port}` });
  }

  /** The bound port (the configured one, or the kernel's pick for port 0). */
  get boundPort(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === "object" ? a.port : undefined;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://metrics").pathname;
    if (req.method !== "GET" || path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("bpfnet agent: metrics are at GET /metrics\n");
      return;
    }
    try {
      const text = await registry.metrics();
      res.writeHead(200, { "content-type": registry.contentType });
      res.end(text);
    } catch (e) {
      this.log.warn("metrics scrape failed", { error: e as Error });
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`${(e as Error).message}\n`);
    }
  }
}
