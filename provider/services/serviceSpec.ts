// The Service spec: its shape, validation and normal form, and the record stored at
// <prefix>/services/v1/specs/<name>. Pure: runs in `check` before anything is written, and in
// the node agent when it reads the record back, so both judge a service the same way. Every
// message names the user's field (e.g. `frontend.ports[1].port`) and the value given.
import type { Failure } from "../network/networkSpec";
import { checkCidr } from "../network/networkSpec";
import { containsAddress, parseIpv4 } from "../ipam/cidr";
import { nameProblem, SCHEMA_VERSION } from "../etcd/keys";
import { isUnknown } from "../common/unknown";
import { checkLabels, hasUnknown, Selector } from "../policy/policySpec";

/** Protocols a service port forwards. */
export const SERVICE_PROTOCOLS = ["TCP", "UDP"] as const;
/** A service port's protocol: "TCP" or "UDP". */
export type ServiceProtocol = (typeof SERVICE_PROTOCOLS)[number];
/** "none": each new connection picks a backend; "clientIP": a client keeps its backend for the timeout. */
export type SessionAffinity = "none" | "clientIP";
/** "random" (uniform over live backends) or "maglev" (consistent hashing of the flow: a backend change moves the fewest flows). */
export type ServiceAlgorithm = "random" | "maglev";

export const MAX_SERVICE_PORTS = 64;
/** Kubernetes' default ClientIP timeout (3 h); the datapath field is 16 bits of seconds. */
export const DEFAULT_AFFINITY_TIMEOUT_S = 10800;
export const MAX_AFFINITY_TIMEOUT_S = 65535;
export const MAX_REV_NAT_INDEX = 65535;

/** One port of a service's virtual IP, as the user writes it. */
export interface ServicePortArgs {
  /** The port clients connect to on the virtual IP, 1-65535. */
  port: number;
  /** The backends' port (default: `port`). */
  targetPort?: number;
  /** "TCP" (default) or "UDP". */
  protocol?: ServiceProtocol;
}

/** The service's front: its virtual IP (omitted: allocated from the network's serviceCidr) and ports. */
export interface ServiceFrontendArgs {
  ip?: string;
  ports: ServicePortArgs[];
}

/** A port in normal form. */
export interface ServicePort {
  port: number;
  targetPort: number;
  protocol: ServiceProtocol;
}

/** The spec as the user writes it (any field may be the preview's unknown sentinel). */
export interface ServiceSpecInputs {
  serviceName?: string;
  frontend?: ServiceFrontendArgs;
  selector?: Selector;
  sessionAffinity?: SessionAffinity;
  sessionAffinityTimeoutSeconds?: number;
  algorithm?: ServiceAlgorithm;
  /** The network's serviceCidr when known at preview: an explicit IP must lie inside it. */
  serviceCidr?: string;
}

/** The normal form: defaults filled in, ports sorted by (protocol, port). `ip` absent: to be allocated. */
export interface ServiceSpec {
  serviceName: string;
  frontend: { ip?: string; ports: ServicePort[] };
  selector: Selector;
  sessionAffinity: SessionAffinity;
  sessionAffinityTimeoutSeconds: number;
  algorithm: ServiceAlgorithm;
}

/** A port as stored: with its cluster-wide reverse-NAT number (one per VIP:port:protocol). */
export interface StoredServicePort extends ServicePort {
  revNatIndex: number;
}

/** The record at <prefix>/services/v1/specs/<name>: the VIP is always set there. */
export interface StoredService extends Omit<ServiceSpec, "frontend"> {
  schema: number;
  /** Written by the resource that created it; only that resource rewrites or deletes it. */
  serviceId: string;
  frontend: { ip: string; ports: StoredServicePort[] };
  /** True when the VIP came from the serviceCidr (the resource gives it back on delete either way). */
  ipAllocated: boolean;
}

const show = (v: unknown) => JSON.stringify(v);
const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
const given = (v: unknown) => v !== undefined && v !== null;

function unknownFields(field: string, raw: Record<string, unknown>, allowed: readonly string[], failures: Failure[]): void {
  for (const k of Object.keys(raw)) {
    if (!allowed.includes(k)) failures.push({ property: field, reason: `${field} has an unknown field ${show(k)} (expected one of ${allowed.join(", ")})` });
  }
}

function checkPortNumber(field: string, raw: unknown, failures: Failure[]): number | undefined {
  if (typeof raw === "number" && Number.isInteger(raw) && raw >= 1 && raw <= 65535) return raw;
  failures.push({ property: field, reason: `${field} must be an integer in 1-65535, got ${show(raw)}` });
  return undefined;
}

function checkPort(field: string, raw: unknown, failures: Failure[]): ServicePort | undefined {
  if (!isObject(raw)) {
    failures.push({ property: field, reason: `${field} must be { port, targetPort?, protocol? }, got ${show(raw)}` });
    return undefined;
  }
  const before = failures.length;
  unknownFields(field, raw, ["port", "targetPort", "protocol"], failures);
  const port = isUnknown(raw.port) ? undefined : checkPortNumber(`${field}.port`, raw.port, failures);
  const targetPort = !given(raw.targetPort) ? port : isUnknown(raw.targetPort) ? undefined : checkPortNumber(`${field}.targetPort`, raw.targetPort, failures);
  const protocol = raw.protocol ?? "TCP";
  if (!isUnknown(protocol) && !(typeof protocol === "string" && (SERVICE_PROTOCOLS as readonly string[]).includes(protocol))) {
    failures.push({ property: `${field}.protocol`, reason: `${field}.protocol must be one of ${SERVICE_PROTOCOLS.join(", ")}, got ${show(protocol)}` });
  }
  if (failures.length > before || port === undefined || targetPort === undefined || isUnknown(protocol)) return undefined;
  return { port, targetPort, protocol: protocol as ServiceProtocol };
}

/** The frontend's IP: a unicast IPv4 address, inside the serviceCidr when that is known. */
function checkIp(raw: unknown, serviceCidr: unknown, failures: Failure[]): string | undefined {
  const n = typeof raw === "string" ? parseIpv4(raw) : undefined;
  if (n === undefined || n === 0 || n >= 0xe0000000 || raw === "255.255.255.255") {
    failures.push({ property: "frontend.ip", reason: `frontend.ip must be a unicast IPv4 address like "10.96.0.10" (or omitted: one is allocated from the network's serviceCidr), got ${show(raw)}` });
    return undefined;
  }
  if (typeof serviceCidr === "string") {
    const cidr = checkCidr("serviceCidr", "serviceCidr", serviceCidr, failures);
    if (cidr && !containsAddress(cidr, n)) {
      failures.push({ property: "frontend.ip", reason: `frontend.ip ${show(raw)} is outside the network's serviceCidr ${show(serviceCidr)}` });
      return undefined;
    }
  }
  return raw as string;
}

/**
 * Validates raw inputs. `spec` is set only when nothing failed and nothing was unknown;
 * `inputs` is the raw bag with the defaults filled.
 */
export function checkServiceSpec(raw: ServiceSpecInputs): { spec?: ServiceSpec; inputs: Record<string, unknown>; failures: Failure[] } {
  const failures: Failure[] = [];
  const r = raw as Record<string, unknown>;
  const inputs: Record<string, unknown> = { ...raw };

  let serviceName: string | undefined;
  if (given(r.serviceName) && !isUnknown(r.serviceName)) {
    const p = nameProblem("serviceName", r.serviceName);
    if (p) failures.push({ property: "serviceName", reason: p });
    else serviceName = r.serviceName as string;
  } else if (!isUnknown(r.serviceName)) failures.push({ property: "serviceName", reason: "serviceName is required" });

  let ip: string | undefined;
  const ports: ServicePort[] = [];
  const fe = r.frontend;
  if (!given(fe)) {
    failures.push({ property: "frontend", reason: `frontend is required: { ip?, ports: [{ port, targetPort?, protocol? }] }` });
  } else if (!isUnknown(fe)) {
    if (!isObject(fe)) failures.push({ property: "frontend", reason: `frontend must be { ip?, ports }, got ${show(fe)}` });
    else {
      unknownFields("frontend", fe, ["ip", "ports"], failures);
      if (given(fe.ip) && !isUnknown(fe.ip)) ip = checkIp(fe.ip, isUnknown(r.serviceCidr) ? undefined : r.serviceCidr, failures);
      if (!isUnknown(fe.ports)) {
        if (!Array.isArray(fe.ports) || fe.ports.length === 0 || fe.ports.length > MAX_SERVICE_PORTS) {
          failures.push({ property: "frontend.ports", reason: `frontend.ports must be a list of 1-${MAX_SERVICE_PORTS} ports, got ${show(fe.ports)}` });
        } else {
          const seen = new Map<string, number>();
          fe.ports.forEach((p, i) => {
            if (isUnknown(p)) return;
            const port = checkPort(`frontend.ports[${i}]`, p, failures);
            if (!port) return;
            const key = `${port.protocol}/${port.port}`;
            const first = seen.get(key);
            if (first !== undefined) {
              failures.push({ property: `frontend.ports[${i}].port`, reason: `frontend.ports[${i}] repeats ${port.protocol} port ${port.port} of frontend.ports[${first}]` });
            } else {
              seen.set(key, i);
              ports.push(port);
            }
          });
        }
      }
    }
  }

  let selector: Selector | undefined;
  if (!given(r.selector)) {
    failures.push({ property: "selector", reason: `selector is required: the labels of the backends, e.g. { app: "api" }` });
  } else if (!isUnknown(r.selector)) {
    selector = checkLabels("selector", r.selector, failures);
    if (selector && Object.keys(r.selector as object).length === 0) {
      failures.push({ property: "selector", reason: `selector must name at least one label (an empty selector would make every endpoint of the network a backend), got {}` });
      selector = undefined;
    }
  }

  inputs.sessionAffinity = r.sessionAffinity ?? "none";
  if (!isUnknown(inputs.sessionAffinity) && inputs.sessionAffinity !== "none" && inputs.sessionAffinity !== "clientIP") {
    failures.push({ property: "sessionAffinity", reason: `sessionAffinity must be "none" or "clientIP", got ${show(inputs.sessionAffinity)}` });
  }
  inputs.sessionAffinityTimeoutSeconds = r.sessionAffinityTimeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_S;
  const t = inputs.sessionAffinityTimeoutSeconds;
  if (!isUnknown(t) && !(typeof t === "number" && Number.isInteger(t) && t >= 1 && t <= MAX_AFFINITY_TIMEOUT_S)) {
    failures.push({ property: "sessionAffinityTimeoutSeconds", reason: `sessionAffinityTimeoutSeconds must be an integer in 1-${MAX_AFFINITY_TIMEOUT_S}, got ${show(t)}` });
  }
  inputs.algorithm = r.algorithm ?? "random";
  if (!isUnknown(inputs.algorithm) && inputs.algorithm !== "random" && inputs.algorithm !== "maglev") {
    failures.push({ property: "algorithm", reason: `algorithm must be "random" or "maglev", got ${show(inputs.algorithm)}` });
  }

  if (failures.length || serviceName === undefined || selector === undefined || ports.length === 0 || hasUnknown(raw)) return { inputs, failures };
  ports.sort((a, b) => (a.protocol === b.protocol ? a.port - b.port : a.protocol < b.protocol ? -1 : 1));
  const spec: ServiceSpec = {
    serviceName,
    frontend: { ...(ip !== undefined ? { ip } : {}), ports },
    selector,
    sessionAffinity: inputs.sessionAffinity as SessionAffinity,
    sessionAffinityTimeoutSeconds: t as number,
    algorithm: inputs.algorithm as ServiceAlgorithm,
  };
  return { spec, inputs, failures };
}

/** The identity of a port across updates: its reverse-NAT number follows it. */
export function portKey(p: { port: number; protocol: ServiceProtocol }): string {
  return `${p.protocol}/${p.port}`;
}

/**
 * Parses a stored record, re-validating it (a hand edit may have broken it). Returns undefined
 * for an unknown schema or a record that does not validate; `problems` says why.
 */
export function parseStoredService(text: string): { service?: StoredService; problems: string[] } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { problems: ["not JSON"] };
  }
  if (!isObject(v)) return { problems: ["not a JSON object"] };
  if (v.schema !== SCHEMA_VERSION) return { problems: [`unknown schema ${show(v.schema)}`] };
  if (typeof v.serviceId !== "string") return { problems: ["no serviceId"] };
  const fe = v.frontend;
  if (!isObject(fe) || typeof fe.ip !== "string" || !Array.isArray(fe.ports)) return { problems: ["no frontend with ip and ports"] };
  const revNat = fe.ports.map((p) => (isObject(p) ? p.revNatIndex : undefined));
  const badRevNat = revNat.findIndex((n) => typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_REV_NAT_INDEX);
  if (badRevNat >= 0) return { problems: [`frontend.ports[${badRevNat}].revNatIndex must be an integer in 1-${MAX_REV_NAT_INDEX}, got ${show(revNat[badRevNat])}`] };
  const { schema: _s, serviceId, ipAllocated, ...rest } = v;
  const bare = { ...rest, frontend: { ip: fe.ip, ports: fe.ports.map((p) => ({ ...(p as object), revNatIndex: undefined })).map(({ revNatIndex: _r, ...p }) => p) } };
  const { spec, failures } = checkServiceSpec(bare as ServiceSpecInputs);
  if (!spec || spec.frontend.ip === undefined) return { problems: failures.map((f) => f.reason) };
  const byKey = new Map(fe.ports.map((p, i) => [portKey(p as ServicePort), revNat[i] as number]));
  return {
    service: {
      schema: SCHEMA_VERSION,
      serviceId,
      ...spec,
      frontend: { ip: spec.frontend.ip, ports: spec.frontend.ports.map((p) => ({ ...p, revNatIndex: byKey.get(portKey(p))! })) },
      ipAllocated: ipAllocated === true,
    },
    problems: [],
  };
}
