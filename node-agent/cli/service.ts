// `bpfnet service list`: the services this host's agent programs, through its API.
import { AgentClient } from "../api/client";
import type { ServiceList } from "../api/types";
import { socketFromFlags } from "../config";

export const SERVICE_USAGE = `bpfnet service list [--socket PATH | --config FILE] [--json]
  every service: VIP, ports (port → targetPort/protocol) and backends with host and state`;

/** One block per service: its VIP and settings, then a line per port with its backends. Pure. */
export function formatServices(l: ServiceList): string {
  const lines: string[] = [];
  if (!l.synced) lines.push("(not synced with etcd yet: nothing programmed)");
  if (!l.programmed) lines.push("(no datapath maps: computed only)");
  for (const s of l.services) {
    lines.push(`${s.name}  ${s.vip}  affinity=${s.sessionAffinity}  algorithm=${s.algorithm}`);
    for (const p of s.ports) {
      const bes = p.backends.map((b) => `${b.address}:${b.port}@${b.host}(${b.state}${b.id !== undefined ? ` #${b.id}` : ""})`);
      lines.push(`  ${p.port}/${p.protocol} → ${p.targetPort}  [revnat ${p.revNatIndex}]  ${bes.length ? bes.join(" ") : "no backends"}`);
    }
  }
  if (l.services.length === 0) lines.push("no services");
  for (const d of l.draining) lines.push(`draining: ${d.backend} #${d.id} (terminating: established flows only)`);
  for (const p of l.problems) lines.push(`problem: ${p}`);
  return lines.join("\n");
}

export async function serviceCommand(sub: string | undefined, flags: Map<string, string>): Promise<number> {
  if (sub !== "list") {
    console.error(SERVICE_USAGE);
    return 2;
  }
  const l = await new AgentClient(socketFromFlags(flags)).services();
  console.log(flags.has("json") ? JSON.stringify(l, null, 2) : formatServices(l));
  return 0;
}
