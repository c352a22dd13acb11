// The NetworkPolicy spec: its shape, validation and normal form, and the record stored at
// <prefix>/policies/v1/<name>. Pure: runs in `check` before anything is written, and in the
// node agent when it reads the record back, so both judge a policy the same way. Every message
// names the user's field (e.g. `ingress[0].toPorts[1].port`) and the value given.
import type { Failure } from "../network/networkSpec";
import { checkCidr } from "../network/networkSpec";
import { formatCidr } from "../ipam/cidr";
import { nameProblem, SCHEMA_VERSION } from "../etcd/keys";
import { isUnknown } from "../common/unknown";

/** Label keys as in Kubernetes: an optional DNS prefix and "/", then a 1-63 character name. */
const LABEL_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const LABEL_PREFIX = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
/** Label values: empty, or 1-63 characters of letters, digits, ".", "_", "-" (ends alphanumeric). */
const LABEL_VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;
export const MAX_LABELS = 64;
export const MAX_RULES = 1024;
export const MAX_REGEX_LENGTH = 1024;

/** Protocols of a port rule; ANY matches every protocol (the datapath's proto 0). */
export const PROTOCOLS = ["TCP", "UDP", "ICMP", "ANY"] as const;
/** A port rule's protocol: "TCP", "UDP", "ICMP" or "ANY". */
export type Protocol = (typeof PROTOCOLS)[number];

/**
 * Entities: reserved peers that carry no labels. host = this host; remote-node = every other
 * host of the network; world = anything outside the network; cluster = every endpoint and host
 * of the network; all = cluster + world; health = the agents' health endpoints.
 */
export const ENTITIES = ["host", "remote-node", "world", "cluster", "all", "health"] as const;
/** A reserved peer without labels (see ENTITIES). */
export type Entity = (typeof ENTITIES)[number];

/** A label selector: an endpoint matches when it carries every pair. {} matches every endpoint. */
export type Selector = Record<string, string>;

/** An L7 HTTP rule: the requests allowed on a port. */
export interface HttpRule {
  /** Regex over the request method, matched whole (e.g. "GET|HEAD"). */
  method?: string;
  /** Regex over the request path, matched whole (e.g. "/v1/.*"). */
  path?: string;
}

/** Ports a rule allows, by protocol, with optional HTTP rules. */
export interface PortRule {
  /** 1-65535; omitted = every port of the protocol. Not allowed with ICMP. */
  port?: number;
  /** Default "ANY". */
  protocol?: Protocol;
  /** L7: requests allowed on this TCP port; others are answered 403 (see docs/policy.md). */
  http?: HttpRule[];
}

/** Traffic into the selected endpoints: allowed when it comes from any listed peer (endpoints, entities, CIDRs) on any listed port. */
export interface IngressRule {
  fromEndpoints?: Selector[];
  fromEntities?: Entity[];
  fromCidrs?: string[];
  toPorts?: PortRule[];
}

/** Traffic out of the selected endpoints: allowed when it goes to any listed peer (endpoints, entities, CIDRs) on any listed port. */
export interface EgressRule {
  toEndpoints?: Selector[];
  toEntities?: Entity[];
  toCidrs?: string[];
  toPorts?: PortRule[];
}

/** The spec as the user writes it (any field may be the preview's unknown sentinel). */
export interface PolicySpecInputs {
  policyName?: string;
  endpointSelector?: Selector;
  ingress?: IngressRule[];
  egress?: EgressRule[];
  audit?: boolean;
}

/**
 * The normal form: protocols filled in, CIDRs canonical, empty lists dropped. `ingress` or
 * `egress` present (even empty) means the selected endpoints are default-deny in that
 * direction; absent means this policy leaves that direction alone.
 */
export interface PolicySpec {
  policyName: string;
  endpointSelector: Selector;
  ingress?: IngressRule[];
  egress?: EgressRule[];
  audit: boolean;
}

/** The record at <prefix>/policies/v1/<name>. */
export interface StoredPolicy extends PolicySpec {
  schema: number;
  /** Written by the resource that created it; only that resource rewrites or deletes it. */
  policyId: string;
}

const show = (v: unknown) => JSON.stringify(v);
const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** Problems of a label key ("app", "example.com/tier"), or undefined when it is valid. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const [prefix, name] = slash < 0 ? [undefined, key] : [key.slice(0, slash), key.slice(slash + 1)];
  const ok = LABEL_NAME.test(name) && (prefix === undefined || LABEL_PREFIX.test(prefix));
  return ok ? undefined : `must be a label key like "app" or "example.com/tier" (1-63 letters, digits, ".", "_", "-", starting and ending alphanumeric)`;
}

export function labelValueProblem(value: unknown): string | undefined {
  return typeof value === "string" && LABEL_VALUE.test(value)
    ? undefined
    : `must be a label value: empty or 1-63 letters, digits, ".", "_", "-", starting and ending alphanumeric`;
}

/** Validates a label set (a selector, or an endpoint's labels); returns its normal form. */
export function checkLabels(field: string, raw: unknown, failures: Failure[]): Selector | undefined {
  if (!isObject(raw)) {
    failures.push({ property: field, reason: `${field} must be a map of label key to value like { app: "web" }, got ${show(raw)}` });
    return undefined;
  }
  const keys = Object.keys(raw);
  if (keys.length > MAX_LABELS) {
    failures.push({ property: field, reason: `${field} has ${keys.length} labels; at most ${MAX_LABELS} are allowed` });
    return undefined;
  }
  const out: Selector = {};
  let ok = true;
  for (const k of keys.sort()) {
    const kp = labelKeyProblem(k);
    if (kp) {
      failures.push({ property: field, reason: `${field} key ${show(k)} ${kp}` });
      ok = false;
      continue;
    }
    const v = raw[k];
    if (isUnknown(v)) continue;
    const vp = labelValueProblem(v);
    if (vp) {
      failures.push({ property: field, reason: `${field}.${k} ${vp}, got ${show(v)}` });
      ok = false;
      continue;
    }
    out[k] = v as string;
  }
  return ok ? out : undefined;
}

/** A whole-match regex, or a failure naming the field. Control characters are refused. */
function checkRegex(field: string, raw: unknown, failures: Failure[]): string | undefined {
  if (typeof raw !== "string" || raw === "" || raw.length > MAX_REGEX_LENGTH || /[\u0000-\u001f\u007f]/.test(raw)) {
    failures.push({ property: field, reason: `${field} must be a non-empty regex of at most ${MAX_REGEX_LENGTH} printable characters, got ${show(raw)}` });
    return undefined;
  }
  try {
    new RegExp(`^(?:${raw})$`);
  } catch (e) {
    failures.push({ property: field, reason: `${field} is not a valid regex (${(e as Error).message}), got ${show(raw)}` });
    return undefined;
  }
  return raw;
}

/** Calls `each` on every element of an optional list field; records a failure when it is no list. */
function eachOf(field: string, raw: unknown, failures: Failure[], each: (v: unknown, f: string) => void): boolean {
  if (raw === undefined || raw === null || isUnknown(raw)) return true;
  if (!Array.isArray(raw)) {
    failures.push({ property: field, reason: `${field} must be a list, got ${show(raw)}` });
    return false;
  }
  if (raw.length > MAX_RULES) {
    failures.push({ property: field, reason: `${field} has ${raw.length} entries; at most ${MAX_RULES} are allowed` });
    return false;
  }
  raw.forEach((v, i) => {
    if (!isUnknown(v)) each(v, `${field}[${i}]`);
  });
  return true;
}

function unknownFields(field: string, raw: Record<string, unknown>, allowed: readonly string[], failures: Failure[]): void {
  for (const k of Object.keys(raw)) {
    if (!allowed.includes(k)) failures.push({ property: field, reason: `${field} has an unknown field ${show(k)} (expected one of ${allowed.join(", ")})` });
  }
}

function checkPortRule(field: string, raw: unknown, failures: Failure[]): PortRule | undefined {
  if (!isObject(raw)) {
    failures.push({ property: field, reason: `${field} must be { port?, protocol?, http? }, got ${show(raw)}` });
    return undefined;
  }
  const before = failures.length;
  unknownFields(field, raw, ["port", "protocol", "http"], failures);
  const out: PortRule = {};
  const protocol = raw.protocol ?? "ANY";
  if (!isUnknown(protocol)) {
    if (typeof protocol !== "string" || !(PROTOCOLS as readonly string[]).includes(protocol)) {
      failures.push({ property: `${field}.protocol`, reason: `${field}.protocol must be one of ${PROTOCOLS.join(", ")}, got ${show(protocol)}` });
    } else out.protocol = protocol as Protocol;
  }
  if (raw.port !== undefined && raw.port !== null && !isUnknown(raw.port)) {
    const p = raw.port;
    if (typeof p !== "number" || !Number.isInteger(p) || p < 1 || p > 65535) {
      failures.push({ property: `${field}.port`, reason: `${field}.port must be an integer in 1-65535 (omit it for every port), got ${show(p)}` });
    } else if (out.protocol === "ICMP") {
      failures.push({ property: `${field}.port`, reason: `${field}.port ${p} makes no sense with protocol "ICMP" (ICMP has no ports): omit it` });
    } else out.port = p;
  }
  if (raw.http !== undefined && raw.http !== null && !isUnknown(raw.http)) {
    if (out.protocol !== "TCP" && !isUnknown(raw.protocol)) {
      failures.push({ property: `${field}.http`, reason: `${field}.http needs protocol "TCP" (HTTP runs over TCP), got protocol ${show(protocol)}` });
    } else if (raw.port === undefined || raw.port === null) {
      failures.push({ property: `${field}.http`, reason: `${field}.http needs a port: HTTP rules apply to one TCP port` });
    }
    const http: HttpRule[] = [];
    eachOf(`${field}.http`, raw.http, failures, (h, f) => {
      if (!isObject(h)) {
        failures.push({ property: f, reason: `${f} must be { method?, path? }, got ${show(h)}` });
        return;
      }
      unknownFields(f, h, ["method", "path"], failures);
      const r: HttpRule = {};
      if (h.method !== undefined && !isUnknown(h.method)) {
        const m = checkRegex(`${f}.method`, h.method, failures);
        if (m !== undefined) r.method = m;
      }
      if (h.path !== undefined && !isUnknown(h.path)) {
        const p = checkRegex(`${f}.path`, h.path, failures);
        if (p !== undefined) r.path = p;
      }
      http.push(r);
    });
    if (http.length) out.http = http;
  }
  return failures.length === before ? out : undefined;
}

/** One ingress or egress rule; `peer` is "from" or "to". */
function checkRule(field: string, raw: unknown, peer: "from" | "to", failures: Failure[]): Record<string, unknown> | undefined {
  const fields = [`${peer}Endpoints`, `${peer}Entities`, `${peer}Cidrs`, "toPorts"];
  if (!isObject(raw)) {
    failures.push({ property: field, reason: `${field} must be a rule { ${fields.join("?, ")}? }, got ${show(raw)}` });
    return undefined;
  }
  const before = failures.length;
  unknownFields(field, raw, fields, failures);
  const out: Record<string, unknown> = {};
  const selectors: Selector[] = [];
  eachOf(`${field}.${peer}Endpoints`, raw[`${peer}Endpoints`], failures, (s, f) => {
    const sel = checkLabels(f, s, failures);
    if (sel) selectors.push(sel);
  });
  if (selectors.length) out[`${peer}Endpoints`] = selectors;
  const entities: Entity[] = [];
  eachOf(`${field}.${peer}Entities`, raw[`${peer}Entities`], failures, (e, f) => {
    if (typeof e === "string" && (ENTITIES as readonly string[]).includes(e)) entities.push(e as Entity);
    else failures.push({ property: f, reason: `${f} must be one of ${ENTITIES.join(", ")}, got ${show(e)}` });
  });
  if (entities.length) out[`${peer}Entities`] = [...new Set(entities)];
  const cidrs: string[] = [];
  eachOf(`${field}.${peer}Cidrs`, raw[`${peer}Cidrs`], failures, (c, f) => {
    const parsed = checkCidr(f, f, c, failures);
    if (parsed) cidrs.push(formatCidr(parsed));
  });
  if (cidrs.length) out[`${peer}Cidrs`] = [...new Set(cidrs)];
  const ports: PortRule[] = [];
  eachOf(`${field}.toPorts`, raw.toPorts, failures, (p, f) => {
    const r = checkPortRule(f, p, failures);
    if (r) ports.push(r);
  });
  if (ports.length) out.toPorts = ports;
  return failures.length === before ? out : undefined;
}

function checkRules(field: "ingress" | "egress", raw: unknown, failures: Failure[]): Record<string, unknown>[] | undefined {
  const rules: Record<string, unknown>[] = [];
  const ok = eachOf(field, raw, failures, (r, f) => {
    const checked = checkRule(f, r, field === "ingress" ? "from" : "to", failures);
    if (checked) rules.push(checked);
  });
  return ok ? rules : undefined;
}

/**
 * Validates raw inputs. `spec` is set only when nothing failed and nothing was unknown;
 * `inputs` is the raw bag with the defaults filled.
 */
export function checkPolicySpec(raw: PolicySpecInputs): { spec?: PolicySpec; inputs: Record<string, unknown>; failures: Failure[] } {
  const failures: Failure[] = [];
  const inputs: Record<string, unknown> = { ...raw };
  const r = raw as Record<string, unknown>;
  let complete = true;
  const known = (v: unknown) => {
    if (isUnknown(v)) complete = false;
    return v !== undefined && v !== null && !isUnknown(v);
  };

  let policyName: string | undefined;
  if (known(r.policyName)) {
    const p = nameProblem("policyName", r.policyName);
    if (p) failures.push({ property: "policyName", reason: p });
    else policyName = r.policyName as string;
  } else if (!isUnknown(r.policyName)) failures.push({ property: "policyName", reason: "policyName is required" });

  let endpointSelector: Selector | undefined;
  if (r.endpointSelector === undefined || r.endpointSelector === null) {
    failures.push({ property: "endpointSelector", reason: `endpointSelector is required: the labels of the endpoints this policy selects, e.g. { app: "api" } ({} selects every endpoint)` });
  } else if (known(r.endpointSelector)) {
    endpointSelector = checkLabels("endpointSelector", r.endpointSelector, failures);
    if (endpointSelector && Object.values(r.endpointSelector as object).some(isUnknown)) complete = false;
  }

  const ingress = known(r.ingress) ? checkRules("ingress", r.ingress, failures) : undefined;
  const egress = known(r.egress) ? checkRules("egress", r.egress, failures) : undefined;
  if ((r.ingress === undefined || r.ingress === null) && (r.egress === undefined || r.egress === null)) {
    failures.push({ property: "ingress", reason: "a policy needs ingress or egress rules (an empty list denies everything in that direction)" });
  }

  inputs.audit = r.audit ?? false;
  if (known(inputs.audit) && typeof inputs.audit !== "boolean") {
    failures.push({ property: "audit", reason: `audit must be true or false, got ${show(inputs.audit)}` });
  }

  if (failures.length || !complete || policyName === undefined || endpointSelector === undefined || hasUnknown(raw)) return { inputs, failures };
  const spec: PolicySpec = { policyName, endpointSelector, audit: inputs.audit === true };
  if (ingress) spec.ingress = ingress as IngressRule[];
  if (egress) spec.egress = egress as EgressRule[];
  return { spec, inputs, failures };
}

/** True when an unknown sentinel sits anywhere in the value (preview): no spec can be built yet. */
export function hasUnknown(v: unknown): boolean {
  if (isUnknown(v)) return true;
  if (Array.isArray(v)) return v.some(hasUnknown);
  if (isObject(v)) return Object.values(v).some(hasUnknown);
  return false;
}

export function toStoredPolicy(spec: PolicySpec, policyId: string): StoredPolicy {
  return { schema: SCHEMA_VERSION, policyId, ...spec };
}

/**
 * Parses a stored record, re-validating it (a hand edit may have broken it). Returns undefined
 * for an unknown schema or a record that does not validate; `problems` says why.
 */
export function parseStoredPolicy(text: string): { policy?: StoredPolicy; problems: string[] } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { problems: ["not JSON"] };
  }
  if (!isObject(v)) return { problems: ["not a JSON object"] };
  if (v.schema !== SCHEMA_VERSION) return { problems: [`unknown schema ${show(v.schema)}`] };
  if (typeof v.policyId !== "string") return { problems: ["no policyId"] };
  const { schema: _s, policyId, ...rest } = v;
  const { spec, failures } = checkPolicySpec(rest as PolicySpecInputs);
  if (!spec) return { problems: failures.map((f) => f.reason) };
  return { policy: { schema: SCHEMA_VERSION, policyId, ...spec }, problems: [] };
}
