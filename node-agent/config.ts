// The agent's configuration file: its type, defaults and validation. Pure apart from loadConfig,
// so every message names the field and the value it got.
import * as fs from "fs";
import * as path from "path";
import { connectionProblems, EtcdConnection } from "../provider/etcd/etcdClient";
import { nameProblem, prefixProblem } from "../provider/etcd/keys";
import { parseIpv4 } from "../provider/ipam/cidr";
import { interfaceNameProblem, listenAddressProblem, MAX_LEASE_TTL_SECONDS } from "../provider/common/validate";
import { MapSizes, mapSizesProblems } from "../provider/network/mapSizes";

export interface AgentConfig {
  /** This host's name in the network: its key under ipam/v1/hosts/ and state/nodes/v1/. */
  hostName: string;
  /** The network's etcd prefix, e.g. "/bpfnet/dev". */
  networkPrefix: string;
  etcd: EtcdConnection;
  /** The agent's own directory: endpoints.json, the cached network, the API socket. */
  stateDir: string;
  /** bpffs directory the maps are pinned in (e.g. /sys/fs/bpf/bpfnet); must be on bpffs. */
  bpffsDir: string;
  /** The data-plane interface (VXLAN packets leave through it; informational in l3 mode). */
  underlayInterface: string;
  /** This host's data-plane address, published to the other agents. */
  underlayIp: string;
  /** The API's unix socket (default <stateDir>/agent.sock). */
  apiSocket: string;
  /** Directory of bpf_{lxc,overlay,host}.o (default: the bundle's build/bpf). */
  bpfObjectDir?: string;
  /** Path of bpfnet_native.node (default: the bundle's bpf/addon/build/Release). */
  nativeAddon?: string;
  /** TTL of the registration lease (default 15 s): how long a dead agent's host stays routed. */
  leaseTtlSeconds: number;
  /** Full re-reconcile of every map this often, to repair drift (default 30 s). */
  resyncSeconds: number;
  /** Run the health endpoint and probe the peers (default true; docs/observability.md). */
  health: boolean;
  /** How often the health prober probes every peer (default 10 s). */
  healthIntervalSeconds: number;
  logLevel: LogLevel;
  /** Prometheus metrics at GET /metrics on "IPV4:PORT" (NodeAgent: the host's control address, port 9962); absent: not served. */
  metricsAddress?: string;
  /** The datapath's node-monitor events (default true); false: none at all (bpfnet_config EVENTS_OFF). */
  monitorEvents: boolean;
  /** Trace 1 in N forwarded packets of every endpoint (default 0: only endpoints a listener traces). */
  traceSampleEvery: number;
  /** Sizes of the maps that grow with the network, from its spec (provider/network/mapSizes.ts); absent: the compiled sizes. */
  mapSizes?: MapSizes;
}

export type LogLevel = "debug" | "info" | "warn" | "error";
const LOG_LEVELS: LogLevel[] = ["debug", "info", "warn", "error"];

export const DEFAULT_LEASE_TTL_SECONDS = 15;
export const DEFAULT_RESYNC_SECONDS = 30;
export const DEFAULT_HEALTH_INTERVAL_SECONDS = 10;
export const API_SOCKET_NAME = "agent.sock";


export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid agent config ${source}:\n  - ${problems.join("\n  - ")}`);
  }
}

/** Validates a parsed config document and fills in defaults; throws ConfigError listing every problem. */
export function parseAgentConfig(raw: unknown, source = "(inline)"): AgentConfig {
  const problems: string[] = [];
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(source, ["the config must be a JSON object"]);
  const r = raw as Record<string, unknown>;
  const show = (v: unknown) => JSON.stringify(v);
  const str = (field: string): string | undefined => {
    const v = r[field];
    if (typeof v === "string" && v !== "") return v;
    problems.push(`${field} is required (a non-empty string), got ${show(v)}`);
    return undefined;
  };
  const absPath = (field: string, v: unknown, optional: boolean): string | undefined => {
    if (v === undefined && optional) return undefined;
    if (typeof v !== "string" || !path.isAbsolute(v)) {
      problems.push(`${field} must be an absolute path, got ${show(v)}`);
      return undefined;
    }
    return path.normalize(v);
  };
  const posInt = (field: string, dflt: number, max: number): number => {
    const v = r[field];
    if (v === undefined) return dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > max) {
      problems.push(`${field} must be an integer from 1 to ${max}, got ${show(v)}`);
      return dflt;
    }
    return v;
  };

  const hostName = str("hostName");
  if (hostName !== undefined) pushIf(problems, nameProblem("hostName", hostName));
  const networkPrefix = str("networkPrefix");
  if (networkPrefix !== undefined) pushIf(problems, prefixProblem("networkPrefix", networkPrefix));
  for (const f of connectionProblems(r.etcd, "etcd")) problems.push(f.reason);
  const stateDir = absPath("stateDir", r.stateDir, false);
  const bpffsDir = absPath("bpffsDir", r.bpffsDir, false);
  const underlayInterface = str("underlayInterface");
  if (underlayInterface !== undefined) pushIf(problems, interfaceNameProblem("underlayInterface", underlayInterface));
  const underlayIp = str("underlayIp");
  if (underlayIp !== undefined && parseIpv4(underlayIp) === undefined) problems.push(`underlayIp must be an IPv4 address, got ${show(underlayIp)}`);
  const apiSocket = absPath("apiSocket", r.apiSocket, true);
  const bpfObjectDir = absPath("bpfObjectDir", r.bpfObjectDir, true);
  const nativeAddon = absPath("nativeAddon", r.nativeAddon, true);
  const leaseTtlSeconds = posInt("leaseTtlSeconds", DEFAULT_LEASE_TTL_SECONDS, MAX_LEASE_TTL_SECONDS);
  const resyncSeconds = posInt("resyncSeconds", DEFAULT_RESYNC_SECONDS, 86400);
  const healthIntervalSeconds = posInt("healthIntervalSeconds", DEFAULT_HEALTH_INTERVAL_SECONDS, 3600);
  if (r.health !== undefined && typeof r.health !== "boolean") problems.push(`health must be true or false, got ${show(r.health)}`);
  const metricsAddress = r.metricsAddress === undefined ? undefined : r.metricsAddress;
  if (metricsAddress !== undefined) pushIf(problems, listenAddressProblem("metricsAddress", metricsAddress));
  if (r.monitorEvents !== undefined && typeof r.monitorEvents !== "boolean") problems.push(`monitorEvents must be true or false, got ${show(r.monitorEvents)}`);
  const traceSampleEvery = r.traceSampleEvery === undefined ? 0 : r.traceSampleEvery;
  if (typeof traceSampleEvery !== "number" || !Number.isInteger(traceSampleEvery) || traceSampleEvery < 0 || traceSampleEvery > 65535) {
    problems.push(`traceSampleEvery must be an integer from 0 (no sampling) to 65535, got ${show(r.traceSampleEvery)}`);
  }
  problems.push(...mapSizesProblems("mapSizes", r.mapSizes));
  let logLevel: LogLevel = "info";
  if (r.logLevel !== undefined) {
    if (LOG_LEVELS.includes(r.logLevel as LogLevel)) logLevel = r.logLevel as LogLevel;
    else problems.push(`logLevel must be one of ${LOG_LEVELS.join(", ")}, got ${show(r.logLevel)}`);
  }
  const known = new Set([
    "hostName", "networkPrefix", "etcd", "stateDir", "bpffsDir", "underlayInterface", "underlayIp",
    "apiSocket", "bpfObjectDir", "nativeAddon", "leaseTtlSeconds", "resyncSeconds", "health", "healthIntervalSeconds", "logLevel", "metricsAddress", "monitorEvents", "traceSampleEvery",
    "mapSizes",
  ]);
  for (const k of Object.keys(r)) if (!known.has(k)) problems.push(`unknown field ${show(k)} (known: ${[...known].join(", ")})`);

  if (problems.length > 0) throw new ConfigError(source, problems);
  return {
    hostName: hostName!,
    networkPrefix: networkPrefix!,
    etcd: r.etcd as EtcdConnection,
    stateDir: stateDir!,
    bpffsDir: bpffsDir!,
    underlayInterface: underlayInterface!,
    underlayIp: underlayIp!,
    apiSocket: apiSocket ?? path.join(stateDir!, API_SOCKET_NAME),
    ...(bpfObjectDir ? { bpfObjectDir } : {}),
    ...(nativeAddon ? { nativeAddon } : {}),
    leaseTtlSeconds,
    resyncSeconds,
    health: r.health !== false,
    healthIntervalSeconds,
    logLevel,
    ...(typeof metricsAddress === "string" ? { metricsAddress } : {}),
    monitorEvents: r.monitorEvents !== false,
    traceSampleEvery: traceSampleEvery as number,
    ...(r.mapSizes !== undefined ? { mapSizes: r.mapSizes as MapSizes } : {}),
  };
}

/** Reads and validates a config file. */
export function loadAgentConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(file, [`cannot read it: ${(e as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, [`not JSON: ${(e as Error).message}`]);
  }
  return parseAgentConfig(raw, file);
}

/** The API socket a CLI command talks to: --socket, else the one of --config. */
export function socketFromFlags(flags: Map<string, string>): string {
  const socket = flags.get("socket");
  if (socket) return socket;
  const config = flags.get("config");
  if (config) return loadAgentConfig(config).apiSocket;
  throw new Error("give the agent's API socket with --socket PATH, or its config with --config FILE");
}

function pushIf(list: string[], problem: string | undefined): void {
  if (problem) list.push(problem);
}
