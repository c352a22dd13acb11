// `bpfnet endpoint add|del|list` and `bpfnet status`: clients of the agent API.
import { AgentClient } from "../api/client";
import { formatHealth } from "../health/view";
import { formatMonitorStatus } from "../monitor/statusText";
import type { AgentStatus, EndpointView } from "../api/types";
import { socketFromFlags } from "../config";

export const ENDPOINT_USAGE = `usage: bpfnet endpoint add --netns PATH --id ID [--labels k=v,…] [--ifname eth0]
       bpfnet endpoint del --id ID
       bpfnet endpoint list
       bpfnet status
  each takes --socket PATH (the agent's API socket) or --config FILE (the agent's config); --json prints JSON`;

/** "a=b,c=d" → {a: "b", c: "d"}. */
export function parseLabels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new Error(`label ${JSON.stringify(part)} must look like key=value`);
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

function line(ep: EndpointView): string {
  const labels = Object.entries(ep.labels).map(([k, v]) => `${k}=${v}`).join(",");
  // Identity and per-direction policy (docs/policy.md); "-" while no identity is allocated.
  const policy = [`identity=${ep.identity ?? "-"}`, `ingress=${ep.ingress ?? "open"}`, `egress=${ep.egress ?? "open"}`].join(" ");
  return [ep.id, ep.address, ep.status, ep.hostIfname, ep.netns, labels, policy].join("\t");
}

export async function endpointCommand(sub: string | undefined, flags: Map<string, string>): Promise<number> {
  const json = flags.has("json");
  const need = (name: string) => {
    const v = flags.get(name);
    if (!v) throw new Error(`--${name} is required\n${ENDPOINT_USAGE}`);
    return v;
  };
  switch (sub) {
    case "add": {
      const client = new AgentClient(socketFromFlags(flags));
      const ifname = flags.get("ifname");
      const r = await client.addEndpoint({ id: need("id"), netns: need("netns"), labels: parseLabels(flags.get("labels")), ...(ifname ? { ifname } : {}) });
      if (json) console.log(JSON.stringify(r, null, 2));
      else console.log(`${r.created ? "added" : "exists"}\t${line(r.endpoint)}`);
      return 0;
    }
    case "del": {
      const client = new AgentClient(socketFromFlags(flags));
      const id = need("id");
      const r = await client.deleteEndpoint(id);
      if (json) console.log(JSON.stringify(r, null, 2));
      else console.log(r.deleted ? `deleted\t${id}` : `absent\t${id}`);
      return 0;
    }
    case "list": {
      const eps = await new AgentClient(socketFromFlags(flags)).listEndpoints();
      if (json) console.log(JSON.stringify(eps, null, 2));
      else for (const ep of eps) console.log(line(ep));
      return 0;
    }
    default:
      console.error(ENDPOINT_USAGE);
      return 2;
  }
}

export function formatStatus(s: AgentStatus): string {
  const a = s.agent;
  const out: string[] = [];
  out.push(`agent     ${a.host} ${a.ready ? "ready" : "starting"}, version ${a.version}, pid ${a.pid}, up ${a.uptimeSeconds}s (incarnation ${a.incarnation.slice(0, 8)})`);
  out.push(`network   ${a.networkPrefix} mode ${a.mode}, cluster ${a.clusterCidr}, pods ${a.podCidr} via ${a.gateway}, mtu ${a.mtu}${a.mode === "vxlan" ? `, vni ${a.vni}` : ""}`);
  out.push(`etcd      ${s.etcd.state === "degraded" ? `DEGRADED since ${s.etcd.degradedSince} (forwarding on the last known state), ` : ""}${s.etcd.registered ? "registered" : "NOT registered"}${s.etcd.lease ? ` (lease ${s.etcd.lease})` : ""}, view ${s.etcd.viewSynced ? "synced" : "syncing"}; ` +
    s.etcd.watches.map((w) => `${w.prefix.slice(a.networkPrefix.length + 1)}@${w.revision}${w.connected ? "" : " (disconnected)"}`).join(", "));
  out.push(`devices   ${s.devices.map((d) => `${d.name}${d.ifindex ? `#${d.ifindex}` : ""} ${d.up ? "up" : "DOWN"}${d.mtu ? ` mtu ${d.mtu}` : ""}`).join(", ")}`);
  const stale = s.programs.filter((p) => !p.current);
  out.push(`programs  ${s.programs.length - stale.length}/${s.programs.length} attached` + (stale.length ? `; missing or foreign: ${stale.map((p) => `${p.program}@${p.device}`).join(", ")}` : ""));
  for (const p of s.programs) out.push(`  ${p.program.padEnd(8)} ${p.device} ${p.direction}${p.attachedProgId ? ` prog ${p.attachedProgId}` : " (none)"}${p.current ? "" : " STALE"}`);
  out.push(`maps      endpoints ${s.maps.endpoints}, tunnel ${s.maps.tunnel}, metrics ${s.maps.metrics}`);
  out.push(`endpoints ${s.endpoints.total} (${s.endpoints.ready} ready${s.endpoints.lost ? `, ${s.endpoints.lost} lost` : ""})`);
  out.push(`peers     ${s.peers.length ? s.peers.map((p) => `${p.host} ${p.podCidr} → ${p.underlayIp}`).join(", ") : "none"}`);
  const drops = Object.entries(s.counters.dropped).map(([k, v]) => `${k} ${v}`).join(", ");
  out.push(`counters  forwarded ${s.counters.forwarded.packets} pkts / ${s.counters.forwarded.bytes} B, passed ${s.counters.passed.packets} pkts${drops ? `, dropped: ${drops}` : ""}`);
  if (s.monitor) out.push(formatMonitorStatus(s.monitor));
  if (s.health) out.push(...formatHealth(s.health));
  for (const p of s.problems) out.push(`PROBLEM   ${p}`);
  return out.join("\n");
}

export async function statusCommand(flags: Map<string, string>): Promise<number> {
  const s = await new AgentClient(socketFromFlags(flags)).status();
  console.log(flags.has("json") ? JSON.stringify(s, null, 2) : formatStatus(s));
  return s.agent.ready && s.problems.length === 0 ? 0 : 1;
}
