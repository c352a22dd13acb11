// `bpfnet health`: the deployment's state in a few lines, for the demo and for operators.
// Everything goes over SSH (host keys verified), so it works the same on the lab and on real
// hosts: reachability, each agent's status, and a real container-to-container ping between two
// hosts through temporary endpoints that are removed afterwards. The host × host matrix comes
// from the agents' own probes (node-agent/health), read from each agent's status.
import { Inventory, InventoryHost, readInventory, sshConnectionFor } from "../../lab/inventory";
import { agentHostPaths } from "../../provider/agent/nodeAgentSpec";
import { SshSession, withSsh } from "../../provider/host/ssh";
import { shellWords } from "../../provider/common/shell";
import type { AgentStatus } from "../api/types";
import { formatMatrix, healthMatrix, MatrixRow } from "../health/view";

export interface HostHealth {
  host: string;
  reachable: boolean;
  agent?: AgentStatus;
  detail: string;
}

export interface ConnectivityResult {
  from: string;
  to: string;
  sent: number;
  received: number;
  rttMs?: number;
  detail: string;
}

/** The agent's CLI on a host with these arguments, every word quoted (inventory values are input). */
export const agentCli = (h: InventoryHost, args: (string | number)[]) => {
  const p = agentHostPaths(h.installDir, h.stateDir);
  return shellWords([process.env.BPFNET_NODE ?? "/usr/bin/node", p.cli, ...args, "--config", p.config]);
};

/** Removes a temporary endpoint and its namespace (each command quoted; the second runs even if the first fails). */
export const tempEndpointRemoval = (h: InventoryHost, id: string, netns: string): string =>
  `${agentCli(h, ["endpoint", "del", "--id", id])}; ${shellWords(["ip", "netns", "del", netns])}`;

export async function hostHealth(h: InventoryHost): Promise<HostHealth> {
  try {
    return await withSsh(sshConnectionFor(h.ssh), async (s) => {
      const r = await s.exec(agentCli(h, ["status", "--json"]));
      if (r.code !== 0) return { host: h.name, reachable: true, detail: `agent: ${(r.stderr || r.stdout).trim().split("\n")[0] || "not running"}` };
      const agent = JSON.parse(r.stdout) as AgentStatus;
      return { host: h.name, reachable: true, agent, detail: agent.agent.ready ? "ready" : `not ready: ${agent.problems.join("; ")}` };
    });
  } catch (e) {
    return { host: h.name, reachable: false, detail: (e as Error).message };
  }
}

/** Adds a temporary container on each host, pings from the first to the second, removes both. */
export async function containerPing(a: InventoryHost, b: InventoryHost, count = 3): Promise<ConnectivityResult> {
  const tag = `bpfnet-health-${process.pid}`;
  const result: ConnectivityResult = { from: a.name, to: b.name, sent: count, received: 0, detail: "" };
  const add = async (s: SshSession, h: InventoryHost) => {
    const ns = `${tag}-${h.name}`;
    await s.run(shellWords(["ip", "netns", "add", ns]));
    const out = await s.run(agentCli(h, ["endpoint", "add", "--netns", `/run/netns/${ns}`, "--id", ns, "--json"]));
    return (JSON.parse(out) as { endpoint: { address: string } }).endpoint.address.split("/")[0];
  };
  const remove = (s: SshSession, h: InventoryHost) =>
    s.exec(tempEndpointRemoval(h, `${tag}-${h.name}`, `${tag}-${h.name}`));
  await withSsh(sshConnectionFor(a.ssh), (sa) =>
    withSsh(sshConnectionFor(b.ssh), async (sb) => {
      try {
        await add(sa, a);
        const target = await add(sb, b);
        const ping = await sa.exec(shellWords(["ip", "netns", "exec", `${tag}-${a.name}`, "ping", "-c", count, "-i", "0.2", "-W", 1, target]));
        const m = /(\d+) received/.exec(ping.stdout);
        result.received = m ? Number(m[1]) : 0;
        const rtt = /= [\d.]+\/([\d.]+)\//.exec(ping.stdout);
        if (rtt) result.rttMs = Number(rtt[1]);
        result.detail = `${target}`;
      } catch (e) {
        result.detail = (e as Error).message;
      } finally {
        await remove(sa, a);
        await remove(sb, b);
      }
    }),
  );
  return result;
}

/** Each host's view of its peers, over SSH (`bpfnet status --json` on the host). */
export async function healthRows(hosts: readonly InventoryHost[]): Promise<{ rows: MatrixRow[]; hosts: HostHealth[] }> {
  const all = await Promise.all(hosts.map(hostHealth));
  const rows = all.map((h): MatrixRow => {
    if (!h.agent) return { from: h.host, error: h.detail, peers: [] };
    if (!h.agent.health) return { from: h.host, error: "the agent reports no health (an older agent?)", peers: [] };
    return { from: h.host, peers: h.agent.health.peers };
  });
  return { rows, hosts: all };
}

/**
 * `bpfnet health --inventory F [--wait S] [--json] [--no-connectivity]`: every agent's state, the
 * host × host health matrix from the agents' own probes (waiting up to S seconds, default 30,
 * for every path to be up: agents that just started have not probed yet), and a container ping
 * between two hosts. Exits 1 when any path is down or unknown.
 */
export async function healthCommand(flags: Map<string, string>): Promise<number> {
  const waitText = flags.get("wait") ?? "30";
  if (!/^\d{1,4}$/.test(waitText)) throw new Error(`--wait must be a number of seconds (0-9999), got ${JSON.stringify(waitText)}`);
  const inv: Inventory = readInventory(flags.get("inventory") ?? "/run/bpfnet/lab/bpfnet/inventory.json");
  const deadline = Date.now() + Number(waitText) * 1000;
  const names = inv.hosts.map((h) => h.name);
  let { rows, hosts } = await healthRows(inv.hosts);
  let matrix = healthMatrix(names, rows);
  while (!matrix.allOk && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    ({ rows, hosts } = await healthRows(inv.hosts));
    matrix = healthMatrix(names, rows);
  }
  if (flags.has("json")) {
    console.log(JSON.stringify({ hosts: names, rows, ...matrix }, null, 2));
    return matrix.allOk ? 0 : 1;
  }
  const reachable = hosts.filter((h) => h.reachable).length;
  const ready = hosts.filter((h) => h.agent?.agent.ready);
  const lines = [`health: ${reachable}/${hosts.length} hosts reachable over SSH (host keys verified), ${ready.length}/${hosts.length} agents ready`];
  for (const h of hosts) {
    const peers = h.agent ? `, ${h.agent.peers.length} peers, ${h.agent.programs.filter((p) => p.current).length} programs attached` : "";
    lines.push(`  ${h.host}: ${h.detail}${peers}`);
  }
  lines.push(...formatMatrix(names, matrix).split("\n").map((l) => `  ${l}`));
  let ok = reachable === hosts.length && ready.length === hosts.length && matrix.allOk;
  if (ready.length >= 2 && !flags.has("no-connectivity")) {
    const [a, b] = ready.map((r) => inv.hosts.find((h) => h.name === r.host)!);
    const c = await containerPing(a, b);
    lines.push(`  container on ${c.from} → container on ${c.to} (${c.detail}): ${c.received}/${c.sent} pings${c.rttMs !== undefined ? `, rtt ${c.rttMs} ms` : ""}`);
    ok = ok && c.received === c.sent;
  }
  console.log(lines.join("\n"));
  return ok ? 0 : 1;
}
