// The L7 proxy's verdict on one HTTP request, from the same computed policy the datapath holds:
// the rows the datapath's lookup would walk for (peer identity, port, TCP, direction), where an
// allow row opens the port whole and a redirect row's HTTP rules are matched. Rules add up, as at
// L4: a request passes when any rule on the walk allows it. Pure; the proxy calls it per request.
import type { HttpRule } from "../../provider/policy/policySpec";
import { ACTION, DIRECTION, Direction, EndpointPolicy, entryKey, PROTO } from "./compute";
import { IDENTITY_ANY } from "./identity";

export interface HttpVerdict {
  allowed: boolean;
  /** The rule that allowed it (its policy-map rule_id), or 0. */
  ruleId: number;
  /** Why, for the log: "rule", "l4-allow", "no-rule", "bad-path". */
  reason: "rule" | "l4-allow" | "no-rule" | "bad-path";
}

/** The keys the datapath tries, in its order (bpf/lib/policy.h), for one TCP port. */
function lookupKeys(identity: number, dport: number, direction: number) {
  const steps: [number, number, number][] = [
    [identity, dport, PROTO.TCP],
    [identity, 0, PROTO.TCP],
    [identity, 0, PROTO.ANY],
    [IDENTITY_ANY, dport, PROTO.TCP],
    [IDENTITY_ANY, 0, PROTO.TCP],
    [IDENTITY_ANY, 0, PROTO.ANY],
  ];
  return [...new Set(steps.map(([id, port, proto]) => entryKey({ identity: id, dport: port, proto, direction })))];
}

const compiled = new Map<string, RegExp>();
/** Whole-match, like Cilium's: "/v1/.*" does not match "/v1x" nor "/a/v1/b". */
function whole(re: string): RegExp {
  let r = compiled.get(re);
  if (!r) {
    r = new RegExp(`^(?:${re})$`);
    if (compiled.size > 4096) compiled.clear();
    compiled.set(re, r);
  }
  return r;
}

export function httpRuleMatches(rule: HttpRule, method: string, path: string): boolean {
  return (rule.method === undefined || whole(rule.method).test(method)) && (rule.path === undefined || whole(rule.path).test(path));
}

/**
 * A request target the rules can judge: origin-form ("/…"), printable ASCII, no dot segments
 * ("/v1/../admin" would match "/v1/.*" yet reach "/admin" on most servers), no encoded dot or
 * slash that a server could decode into one.
 */
export function judgeablePath(target: string): boolean {
  if (!/^\/[\x21-\x7e]*$/.test(target)) return false;
  const path = target.split("?")[0];
  if (/%2e|%2f|%5c|\\/i.test(path)) return false;
  return !path.split("/").some((seg) => seg === "." || seg === "..");
}

/**
 * The verdict on a request to (or, for an egress redirect, from) `endpoint` by the peer
 * `identity` on TCP `dport`. `path` is the request target as sent (path and query, as Cilium
 * matches it).
 */
export function judgeHttp(endpoint: EndpointPolicy, direction: Direction, identity: number, dport: number, method: string, path: string): HttpVerdict {
  if (!judgeablePath(path)) return { allowed: false, ruleId: 0, reason: "bad-path" };
  const rows = new Map(endpoint.entries.map((e) => [entryKey(e), e]));
  for (const key of lookupKeys(identity, dport, DIRECTION[direction])) {
    const row = rows.get(key);
    if (!row) continue;
    if (row.action === ACTION.allow) return { allowed: true, ruleId: row.ruleId, reason: "l4-allow" };
    if (row.action === ACTION.redirect && (endpoint.http.get(key) ?? []).some((r) => httpRuleMatches(r, method, path))) {
      return { allowed: true, ruleId: row.ruleId, reason: "rule" };
    }
  }
  return { allowed: false, ruleId: 0, reason: "no-rule" };
}
