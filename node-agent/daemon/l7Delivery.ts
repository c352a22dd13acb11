// What the agent adds around its L7 proxy (docs/policy.md, "L7 HTTP"): the policy route that
// delivers packets the datapath assigned to the proxy's socket locally, and the verdict on a
// proxied connection's request from both ends' computed policy.
import { ABI_CONSTANTS } from "../../bpf/abi";
import { ENDPOINT_FLAGS, EndpointPolicy } from "../policy/compute";
import { judgeHttp } from "../policy/l7";
import type { LocalEndpoint } from "./policy";
import type { ProxiedConnection, ProxyVerdict } from "./l7Proxy";
import { ip, tryIp } from "./exec";

/** Routing table and rule priority of the proxy route (Cilium uses table 2004 too). */
export const PROXY_TABLE = "2004";
export const PROXY_RULE_PREF = "9000";
const FWMARK = `0x${ABI_CONSTANTS.BPFNET_MARK_TO_PROXY.toString(16)}/0xffff`;

/** Idempotent: marked packets look up a table whose only route says "every address is local". */
export async function installProxyRoute(): Promise<void> {
  await ip("route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", PROXY_TABLE);
  const rules = await ip("rule", "show", "pref", PROXY_RULE_PREF);
  if (!rules.includes(`lookup ${PROXY_TABLE}`)) await ip("rule", "add", "pref", PROXY_RULE_PREF, "fwmark", FWMARK, "lookup", PROXY_TABLE);
}

export async function removeProxyRoute(): Promise<void> {
  while ((await tryIp("rule", "del", "pref", PROXY_RULE_PREF)).ok);
  await tryIp("route", "flush", "table", PROXY_TABLE);
}

export interface ConnectionJudgeInputs {
  local: LocalEndpoint[];
  policyOf: (endpointNumber: number) => EndpointPolicy | undefined;
  identityOf: (ip: string) => number;
}

/**
 * A request on a proxied connection needs the sender's egress and the receiver's ingress, each
 * judged where it is a local endpoint (an open direction allows; audit allows and says so). The
 * upstream connection is marked only when the receiver is local: its ingress was judged here.
 */
export function judgeConnection(conn: ProxiedConnection, method: string, path: string, o: ConnectionJudgeInputs): ProxyVerdict {
  const side = (epIp: string, peerIp: string, direction: "ingress" | "egress") => {
    const ep = o.local.find((e) => e.ip === epIp);
    if (!ep) return undefined;
    const pol = o.policyOf(ep.number);
    const [enforce, audit] = direction === "ingress" ? [ENDPOINT_FLAGS.ENFORCE_INGRESS, ENDPOINT_FLAGS.AUDIT_INGRESS] : [ENDPOINT_FLAGS.ENFORCE_EGRESS, ENDPOINT_FLAGS.AUDIT_EGRESS];
    if (!pol || !(pol.flags & enforce)) return { endpointId: ep.number, allowed: true, ruleId: 0, reason: `${direction}-open` };
    const v = judgeHttp(pol, direction, o.identityOf(peerIp), conn.dport, method, path);
    if (!v.allowed && pol.flags & audit) return { endpointId: ep.number, allowed: true, ruleId: 0, reason: `${direction}-audit:${v.reason}` };
    return { endpointId: ep.number, ...v, reason: `${direction}-${v.reason}` };
  };
  const egress = side(conn.src, conn.dst, "egress");
  const ingress = side(conn.dst, conn.src, "ingress");
  const judged = [egress, ingress].filter((v) => v !== undefined);
  if (judged.length === 0) return { allowed: false, ruleId: 0, reason: "no-local-endpoint" };
  const denied = judged.find((v) => !v.allowed);
  const decisive = denied ?? ingress ?? egress!;
  return { ...decisive, allowed: !denied, markUpstream: !denied && ingress !== undefined };
}
