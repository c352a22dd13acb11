// `bpfnet ui --inventory F [--listen 127.0.0.1:PORT]`: a live status page. Node's http serves
// the page (ui/page.ts) and one server-sent event stream: a snapshot of every host (status and
// endpoints over SSH, host keys verified) every poll, and each event of the merged node monitor
// (`mergedMonitor`, every host's `bpfnet monitor` over SSH) as it comes.
import * as http from "http";
import { Inventory, InventoryHost, readInventory, sshConnectionFor } from "../../lab/inventory";
import { withSsh } from "../../provider/host/ssh";
import type { AgentStatus, EndpointView } from "../api/types";
import { HostReport, buildSnapshot, Snapshot, uiListen } from "../ui/snapshot";
import { PAGE_CSS, PAGE_HTML, PAGE_JS } from "../ui/page";
import { agentCli } from "./health";
import { mergedMonitor } from "./monitor";

export const UI_USAGE = `usage: bpfnet ui --inventory FILE [--listen 127.0.0.1:8490] [--allow-remote]
  a live status page: hosts, health matrix, endpoints, flows and drops (server-sent events)`;

/** How long after one round of host polls the next starts. */
const POLL_MS = 1000;

/** One host's status and endpoints, over one SSH connection. */
async function reportOf(h: InventoryHost): Promise<HostReport> {
  try {
    return await withSsh(sshConnectionFor(h.ssh), async (s) => {
      const st = await s.exec(agentCli(h, ["status", "--json"]));
      const eps = await s.exec(agentCli(h, ["endpoint", "list", "--json"]));
      const status = JSON.parse(st.stdout) as AgentStatus;
      return { host: h.name, status, endpoints: JSON.parse(eps.stdout) as EndpointView[] };
    });
  } catch (e) {
    return { host: h.name, error: (e as Error).message.split("\n")[0] };
  }
}

const HEADERS = { "cache-control": "no-store", "x-content-type-options": "nosniff", "content-security-policy": "default-src 'self'" };

export async function uiCommand(flags: Map<string, string>): Promise<number> {
  const { host, port } = uiListen(flags);
  const inv: Inventory = readInventory(flags.get("inventory") ?? "/run/bpfnet/lab/bpfnet/inventory.json");
  const names = inv.hosts.map((h) => h.name);
  const clients = new Set<http.ServerResponse>();
  let snapshot: Snapshot = buildSnapshot(names, [], new Date());
  let streams = "monitor: connecting to every host";
  const send = (res: http.ServerResponse, event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const broadcast = (event: string, data: unknown) => clients.forEach((c) => send(c, event, data));

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://ui").pathname;
    if (req.method !== "GET") return void res.writeHead(405, HEADERS).end();
    if (path === "/") return void res.writeHead(200, { ...HEADERS, "content-type": "text/html; charset=utf-8" }).end(PAGE_HTML);
    if (path === "/app.js") return void res.writeHead(200, { ...HEADERS, "content-type": "text/javascript; charset=utf-8" }).end(PAGE_JS);
    if (path === "/app.css") return void res.writeHead(200, { ...HEADERS, "content-type": "text/css; charset=utf-8" }).end(PAGE_CSS);
    if (path === "/snapshot.json") return void res.writeHead(200, { ...HEADERS, "content-type": "application/json" }).end(JSON.stringify(snapshot));
    if (path === "/events") {
      res.writeHead(200, { ...HEADERS, "content-type": "text/event-stream", connection: "keep-alive" });
      clients.add(res);
      send(res, "snapshot", snapshot);
      send(res, "streams", { text: streams });
      req.on("close", () => clients.delete(res));
      return;
    }
    res.writeHead(404, { ...HEADERS, "content-type": "text/plain" }).end("not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  console.log(`bpfnet ui: http://${host}:${port}/ (${names.length} hosts; Ctrl-C stops)`);

  const stop = new AbortController();
  const stopped = new Promise<void>((resolve) => stop.signal.addEventListener("abort", () => resolve()));
  process.once("SIGINT", () => stop.abort());
  process.once("SIGTERM", () => stop.abort());

  // Hosts: polled in parallel, one round after the other.
  const poll = async () => {
    while (!stop.signal.aborted) {
      snapshot = buildSnapshot(names, await Promise.all(inv.hosts.map(reportOf)), new Date());
      broadcast("snapshot", snapshot);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  };
  // The merged monitor; started again if every stream ended (agents restarted).
  const monitor = async () => {
    while (!stop.signal.aborted) {
      const ended: string[] = [];
      streams = `monitor: streaming from ${names.length} hosts`;
      broadcast("streams", { text: streams });
      for await (const item of mergedMonitor(inv, {}, stop.signal)) {
        if ("event" in item) broadcast("flow", item.event);
        else if (item.ended !== "stopped") {
          ended.push(`${item.host}: ${item.ended}`);
          streams = `monitor: ${ended.join("; ")}`;
          broadcast("streams", { text: streams });
        }
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  };
  const work = Promise.all([poll(), monitor()]);
  await stopped;
  for (const c of clients) c.end();
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  await work.catch(() => undefined);
  return 0;
}
