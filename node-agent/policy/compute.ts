// From policies + endpoints + identities to what the datapath enforces: per local endpoint its
// enforcement flags and policy-map entries (the contract in docs/policy.md), plus the agent-local
// CIDR identities the ipcache needs. Pure; the agent's reconciler applies the result.
//
// Semantics (Kubernetes / Cilium): an endpoint no policy selects in a direction is open in that
// direction; selected, only what some rule of some selecting policy allows passes; rules add up.
import type { EgressRule, HttpRule, IngressRule, PolicySpec, PortRule } from "../../provider/policy/policySpec";
import { Cidr, containsCidr, parseCidr } from "../../provider/ipam/cidr";
import { EndpointFlags, PolicyAction, PolicyDirection, PolicyRow } from "../../bpf/abi";
import {
  CIDR_IDENTITY_BASE,
  IDENTITY_ANY,
  IDENTITY_HEALTH,
  IDENTITY_HOST,
  IDENTITY_REMOTE_NODE,
  IDENTITY_WORLD,
  Labels,
  selects,
} from "./identity";

// Codes of the datapath's maps (bpf/lib/abi.h, mirrored in bpf/abi.ts).
export const DIRECTION = { ingress: PolicyDirection.INGRESS, egress: PolicyDirection.EGRESS } as const;
export type Direction = keyof typeof DIRECTION;
export const PROTO = { ANY: 0, ICMP: 1, TCP: 6, UDP: 17 } as const;
export const ACTION = { allow: PolicyAction.ALLOW, deny: PolicyAction.DENY, redirect: PolicyAction.REDIRECT } as const;
/** bpfnet_endpoint.flags bits. */
export const ENDPOINT_FLAGS = EndpointFlags;

/** One policy-map row: key {endpointId, identity, dport, proto, direction} → {action, proxyPort, ruleId}. */
export type PolicyEntry = PolicyRow;

export interface PolicyEndpoint {
  endpointId: number;
  labels: Labels;
}

/** A rule's number in the policy map's rule_id (counters and verdict logs name it back). */
export interface RuleRef {
  ruleId: number;
  policy: string;
  direction: Direction;
  index: number;
}

export interface EndpointPolicy {
  endpointId: number;
  flags: number;
  entries: PolicyEntry[];
  /** Names of the policies selecting the endpoint. */
  policies: string[];
  /** The L7 proxy's rules: entryKey of each redirect row → the HTTP rules of every rule that made it. */
  http: Map<string, HttpRule[]>;
}

export interface ComputeInput {
  policies: PolicySpec[];
  /** This host's endpoints. */
  endpoints: PolicyEndpoint[];
  /** Every endpoint identity of the network: number → labels. */
  identities: Map<number, Labels>;
  /** The CIDR identities handed out last time: kept, so a new CIDR never renumbers the others. */
  previousCidrIdentities?: Map<string, number>;
  /** Port of this agent's L7 proxy; without it HTTP rules allow their port at L4 (a warning says so). */
  proxyPort?: number;
}

export interface ComputedPolicy {
  endpoints: EndpointPolicy[];
  /** ipcache prefixes for CIDR rules: canonical CIDR → agent-local identity. */
  cidrIdentities: Map<string, number>;
  rules: RuleRef[];
  warnings: string[];
}

/** Every CIDR any rule names, numbered stably from CIDR_IDENTITY_BASE. */
export function assignCidrIdentities(policies: PolicySpec[], previous: Map<string, number> = new Map()): Map<string, number> {
  const cidrs = new Set<string>();
  for (const p of policies) {
    for (const r of p.ingress ?? []) for (const c of r.fromCidrs ?? []) cidrs.add(c);
    for (const r of p.egress ?? []) for (const c of r.toCidrs ?? []) cidrs.add(c);
  }
  const out = new Map<string, number>();
  const used = new Set<number>();
  for (const c of [...cidrs].sort()) {
    const id = previous.get(c);
    if (id !== undefined && !used.has(id)) {
      out.set(c, id);
      used.add(id);
    }
  }
  let next = CIDR_IDENTITY_BASE;
  for (const c of [...cidrs].sort()) {
    if (out.has(c)) continue;
    while (used.has(next)) next++;
    out.set(c, next);
    used.add(next);
  }
  return out;
}

/** Ports of a rule as (dport, proto, http) triples; ANY with a port means TCP and UDP on it. */
interface L4 {
  dport: number;
  proto: number;
  http?: HttpRule[];
}

function l4Of(ports: PortRule[] | undefined): L4[] {
  if (!ports || ports.length === 0) return [{ dport: 0, proto: PROTO.ANY }];
  return ports.flatMap((p): L4[] => {
    const proto = p.protocol ?? "ANY";
    const dport = p.port ?? 0;
    const http = p.http?.length ? p.http : undefined;
    if (proto === "ANY") return dport === 0 ? [{ dport, proto: PROTO.ANY, http }] : [{ dport, proto: PROTO.TCP, http }, { dport, proto: PROTO.UDP, http }];
    return [{ dport: proto === "ICMP" ? 0 : dport, proto: PROTO[proto], http }];
  });
}

interface Peers {
  endpoints?: Labels[];
  entities?: string[];
  cidrs?: string[];
}

function peersOf(rule: IngressRule | EgressRule, dir: Direction): Peers {
  const r = rule as Record<string, unknown>;
  const side = dir === "ingress" ? "from" : "to";
  return { endpoints: r[`${side}Endpoints`] as Labels[] | undefined, entities: r[`${side}Entities`] as string[] | undefined, cidrs: r[`${side}Cidrs`] as string[] | undefined };
}

/** The identities a rule's peers stand for; [0] (any) when the rule names no peer at all. */
function peerIdentities(peers: Peers, identities: Map<number, Labels>, cidrIds: Map<string, number>, parsedCidrs: [Cidr, number][]): number[] {
  if (!peers.endpoints && !peers.entities && !peers.cidrs) return [IDENTITY_ANY];
  const out = new Set<number>();
  const endpointIds = [...identities.keys()];
  for (const sel of peers.endpoints ?? []) for (const [id, labels] of identities) if (selects(sel, labels)) out.add(id);
  for (const e of peers.entities ?? []) {
    if (e === "all") return [IDENTITY_ANY];
    if (e === "host") out.add(IDENTITY_HOST);
    if (e === "remote-node") out.add(IDENTITY_REMOTE_NODE);
    if (e === "health") out.add(IDENTITY_HEALTH);
    if (e === "world") [IDENTITY_WORLD, ...cidrIds.values()].forEach((id) => out.add(id));
    if (e === "cluster") [IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_HEALTH, ...endpointIds].forEach((id) => out.add(id));
  }
  // An address gets the identity of the longest CIDR row holding it: a rule for C matches every
  // CIDR identity of a prefix inside C.
  for (const text of peers.cidrs ?? []) {
    const c = parseCidr(text);
    if (c) for (const [d, id] of parsedCidrs) if (containsCidr(c, d)) out.add(id);
  }
  return [...out].sort((a, b) => a - b);
}

export const entryKey = (e: Pick<PolicyEntry, "identity" | "dport" | "proto" | "direction">) => `${e.identity}/${e.dport}/${e.proto}/${e.direction}`;

/** Allow beats redirect on the same key: a rule allowing the port whole is not narrowed by another's L7 rules. */
function merge(a: PolicyEntry, b: PolicyEntry): PolicyEntry {
  const rank = (x: number) => (x === ACTION.deny ? 0 : x === ACTION.allow ? 1 : 2);
  const [win, lose] = rank(a.action) <= rank(b.action) ? [a, b] : [b, a];
  return { ...win, ruleId: Math.min(win.ruleId, lose.ruleId) };
}

export function computePolicy(input: ComputeInput): ComputedPolicy {
  const policies = [...input.policies].sort((a, b) => (a.policyName < b.policyName ? -1 : a.policyName > b.policyName ? 1 : 0));
  const cidrIdentities = assignCidrIdentities(policies, input.previousCidrIdentities);
  const parsedCidrs = [...cidrIdentities].map(([c, id]) => [parseCidr(c)!, id] as [Cidr, number]);
  const warnings: string[] = [];

  // Rule numbers, and each rule's rows without the endpoint id (shared by every endpoint it selects).
  const rules: RuleRef[] = [];
  type Row = Omit<PolicyEntry, "endpointId"> & { http?: HttpRule[] };
  const rowsOf = new Map<PolicySpec, Record<Direction, Row[]>>();
  for (const p of policies) {
    const rows: Record<Direction, Row[]> = { ingress: [], egress: [] };
    for (const dir of ["ingress", "egress"] as const) {
      (p[dir] ?? []).forEach((rule, index) => {
        const ruleId = rules.length + 1;
        rules.push({ ruleId, policy: p.policyName, direction: dir, index });
        const ids = peerIdentities(peersOf(rule, dir), input.identities, cidrIdentities, parsedCidrs);
        for (const l4 of l4Of(rule.toPorts)) {
          const redirect = l4.http !== undefined && input.proxyPort !== undefined;
          if (l4.http && input.proxyPort === undefined) {
            warnings.push(`${p.policyName}.${dir}[${index}]: HTTP rules on port ${l4.dport} are enforced at L4 only (no L7 proxy on this agent): the port is allowed whole`);
          }
          for (const identity of ids) {
            rows[dir].push({
              identity,
              dport: l4.dport,
              proto: l4.proto,
              direction: DIRECTION[dir],
              action: redirect ? ACTION.redirect : ACTION.allow,
              proxyPort: redirect ? input.proxyPort! : 0,
              ruleId,
              ...(redirect ? { http: l4.http } : {}),
            });
          }
        }
      });
    }
    rowsOf.set(p, rows);
  }

  const endpoints = [...input.endpoints]
    .sort((a, b) => a.endpointId - b.endpointId)
    .map((ep): EndpointPolicy => {
      const selecting = policies.filter((p) => selects(p.endpointSelector, ep.labels));
      let flags = 0;
      const entries = new Map<string, PolicyEntry>();
      const http = new Map<string, HttpRule[]>();
      for (const dir of ["ingress", "egress"] as const) {
        const inDir = selecting.filter((p) => p[dir] !== undefined);
        if (inDir.length === 0) continue;
        // Enforced when any selecting policy enforces; audit (count, pass) when all of them audit.
        const audit = inDir.every((p) => p.audit);
        flags |= dir === "ingress" ? ENDPOINT_FLAGS.ENFORCE_INGRESS : ENDPOINT_FLAGS.ENFORCE_EGRESS;
        if (audit) flags |= dir === "ingress" ? ENDPOINT_FLAGS.AUDIT_INGRESS : ENDPOINT_FLAGS.AUDIT_EGRESS;
        for (const p of inDir) {
          for (const { http: rules, ...row } of rowsOf.get(p)![dir]) {
            const e: PolicyEntry = { endpointId: ep.endpointId, ...row };
            const k = entryKey(e);
            const had = entries.get(k);
            entries.set(k, had ? merge(had, e) : e);
            if (rules) http.set(k, [...(http.get(k) ?? []), ...rules]);
          }
        }
      }
      // HTTP rules only where the merged row stayed a redirect (an allow on the key opens the port whole).
      for (const k of [...http.keys()]) if (entries.get(k)?.action !== ACTION.redirect) http.delete(k);
      return { endpointId: ep.endpointId, flags, entries: [...entries.values()], policies: selecting.map((p) => p.policyName), http };
    });

  return { endpoints, cidrIdentities, rules, warnings: [...new Set(warnings)] };
}
