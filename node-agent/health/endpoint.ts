// The host's health endpoint, like cilium-health's: a small network namespace with an address
// from the pod CIDR, joined through the ordinary endpoint path (veth, bpf_lxc, endpoint map,
// etcd record), that answers ICMP (the kernel) and HTTP GET /hello (a tiny responder).
//
// The namespace lives exactly as long as the responder: `unshare --net` runs it in a fresh
// namespace that nothing pins, and the responder exits when the agent's end of its stdin closes
// (the agent stopped or was killed). So nothing outlives the agent — no /run/netns entry, no
// mount, no orphan — and the next start makes a new one (the old endpoint is deleted first).
import { ChildProcess, spawn } from "child_process";
import type { EndpointView } from "../daemon/endpoints";
import { HEALTH_HTTP_PORT } from "./view";

/** The health endpoint's id among the host's endpoints, and its labels. */
export const HEALTH_ENDPOINT_ID = "bpfnet-health";
export const HEALTH_LABELS: Record<string, string> = { "bpfnet.io/entity": "health" };

const RESPONDER = `
const http = require("http");
http.createServer((req, res) => {
  const ok = req.method === "GET" && req.url === "/hello";
  res.writeHead(ok ? 200 : 404, { "content-type": "text/plain" });
  res.end(ok ? "ok\\n" : "not found\\n");
}).listen(${HEALTH_HTTP_PORT}, () => process.stdout.write("listening\\n"));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
`;

/** What the agent's endpoint manager offers (EndpointManager's add and del). */
export interface EndpointOps {
  add(req: unknown): Promise<{ endpoint: EndpointView }>;
  del(id: string): Promise<unknown>;
}

export class HealthEndpoint {
  private responder: ChildProcess | undefined;
  private current: EndpointView | undefined;

  constructor(
    private readonly endpoints: EndpointOps,
    private readonly nodePath = process.execPath,
  ) {}

  get endpoint(): EndpointView | undefined {
    return this.current;
  }

  get responderPid(): number | undefined {
    return this.responder?.pid;
  }

  /** Starts the responder in a new namespace and joins it as endpoint HEALTH_ENDPOINT_ID. */
  async start(timeoutMs = 20_000): Promise<EndpointView> {
    // A previous agent's endpoint points at a namespace that died with its responder.
    await this.endpoints.del(HEALTH_ENDPOINT_ID);
    const child = spawn("unshare", ["--net", "--", this.nodePath, "-e", RESPONDER], { stdio: ["pipe", "pipe", "pipe"] });
    this.responder = child;
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`health responder did not start within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
      child.stdout!.on("data", (d: Buffer) => {
        if (d.toString().includes("listening")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`health responder exited with ${code}: ${stderr.trim()}`));
      });
    });
    const r = await this.endpoints.add({ id: HEALTH_ENDPOINT_ID, netns: `/proc/${child.pid}/ns/net`, labels: HEALTH_LABELS });
    this.current = r.endpoint;
    return r.endpoint;
  }

  /** Stops the responder (its namespace, and so the endpoint's veth, go with it). */
  async stop(): Promise<void> {
    const child = this.responder;
    this.responder = undefined;
    this.current = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.stdin!.end();
    const t = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(t);
  }
}
