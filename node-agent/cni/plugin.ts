// bpfnet-cni: a CNI 1.0.0 plugin that hands the work to the node agent's API.
//
// Network config (stdin), e.g. in a .conflist:
//   { "cniVersion": "1.0.0", "name": "bpfnet", "plugins": [
//       { "type": "bpfnet-cni", "agentSocket": "/var/lib/bpfnet/agent.sock", "labels": {"team": "a"} } ] }
// Parameters come in CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH.
// Results and errors go to stdout in the spec's JSON; errors exit 1.
import * as fs from "fs";
import { AgentClient, ApiError } from "../api/client";
import type { EndpointView } from "../api/types";
import { deletionQueueDir, queueDeletion, removeEntry } from "./deletionQueue";

export const CNI_VERSION = "1.0.0";
export const SUPPORTED_VERSIONS = ["1.0.0"];
export const DEFAULT_AGENT_SOCKET = "/var/lib/bpfnet/agent.sock";

/** The spec's well-known error codes (1-99), plus ours from 100. */
export const CniCode = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILED: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  /** The endpoint id exists with another namespace or interface. */
  CONFLICT: 100,
  /** No address left in this host's pod CIDR. */
  POOL_EXHAUSTED: 101,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = "",
  ) {
    super(message);
  }
}

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  agentSocket: string;
  labels: Record<string, string>;
  dns?: Record<string, unknown>;
  prevResult?: CniResult;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
}

export interface CniInvocation {
  command: string;
  containerId: string;
  netns: string;
  ifname: string;
  args: Record<string, string>;
}

/** Pure: parses and checks the network config. */
export function parseNetConf(stdin: string): NetConf {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(CniCode.DECODE_FAILED, "cannot decode the network config", (e as Error).message);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new CniError(CniCode.DECODE_FAILED, "the network config must be a JSON object");
  if (typeof raw.cniVersion !== "string") throw new CniError(CniCode.INVALID_CONFIG, "cniVersion is required");
  if (!SUPPORTED_VERSIONS.includes(raw.cniVersion)) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, `incompatible CNI version ${raw.cniVersion}`, `supported: ${SUPPORTED_VERSIONS.join(", ")}`);
  }
  if (typeof raw.name !== "string" || raw.name === "") throw new CniError(CniCode.INVALID_CONFIG, "name is required");
  if (raw.agentSocket !== undefined && (typeof raw.agentSocket !== "string" || !raw.agentSocket.startsWith("/"))) {
    throw new CniError(CniCode.INVALID_CONFIG, `agentSocket must be an absolute path, got ${JSON.stringify(raw.agentSocket)}`);
  }
  const labels: Record<string, string> = {};
  if (raw.labels !== undefined) {
    if (!raw.labels || typeof raw.labels !== "object" || Array.isArray(raw.labels)) throw new CniError(CniCode.INVALID_CONFIG, "labels must be an object of strings");
    for (const [k, v] of Object.entries(raw.labels as Record<string, unknown>)) {
      if (typeof v !== "string") throw new CniError(CniCode.INVALID_CONFIG, `label ${k} must be a string`);
      labels[k] = v;
    }
  }
  return {
    cniVersion: raw.cniVersion,
    name: raw.name,
    type: String(raw.type ?? ""),
    agentSocket: (raw.agentSocket as string | undefined) ?? DEFAULT_AGENT_SOCKET,
    labels,
    ...(raw.dns && typeof raw.dns === "object" ? { dns: raw.dns as Record<string, unknown> } : {}),
    ...(raw.prevResult && typeof raw.prevResult === "object" ? { prevResult: raw.prevResult as CniResult } : {}),
  };
}

/** Pure: reads the CNI_* variables the command needs. */
export function parseInvocation(env: NodeJS.ProcessEnv): CniInvocation {
  const command = env.CNI_COMMAND ?? "";
  const need = (name: string): string => {
    const v = env[name];
    if (!v) throw new CniError(CniCode.INVALID_ENV, `${name} is required for ${command}`);
    return v;
  };
  const args: Record<string, string> = {};
  for (const pair of (env.CNI_ARGS ?? "").split(";").filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new CniError(CniCode.INVALID_ENV, `CNI_ARGS has a malformed pair ${JSON.stringify(pair)}`);
    args[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  switch (command) {
    case "ADD":
      return { command, containerId: need("CNI_CONTAINERID"), netns: need("CNI_NETNS"), ifname: need("CNI_IFNAME"), args };
    case "DEL":
    case "CHECK":
      // DEL may come without a netns (the container is already gone).
      return { command, containerId: need("CNI_CONTAINERID"), netns: env.CNI_NETNS ?? "", ifname: need("CNI_IFNAME"), args };
    case "VERSION":
      return { command, containerId: "", netns: "", ifname: "", args };
    default:
      throw new CniError(CniCode.INVALID_ENV, `unknown CNI_COMMAND ${JSON.stringify(command)} (ADD, DEL, CHECK, VERSION)`);
  }
}

/** The agent's endpoint id for a container attachment: one endpoint per (container, interface). */
export function endpointIdFor(inv: CniInvocation): string {
  return inv.ifname === "eth0" ? inv.containerId : `${inv.containerId}.${inv.ifname}`;
}

/** Pure: the CNI result of an endpoint. */
export function resultFor(conf: NetConf, ep: EndpointView): CniResult {
  return {
    cniVersion: conf.cniVersion,
    interfaces: [
      { name: ep.hostIfname, ...(ep.hostMac ? { mac: ep.hostMac } : {}) },
      { name: ep.ifname, ...(ep.mac ? { mac: ep.mac } : {}), sandbox: ep.netns },
    ],
    ips: [{ address: ep.address, gateway: ep.gateway, interface: 1 }],
    routes: [{ dst: "0.0.0.0/0", gw: ep.gateway }],
    dns: conf.dns ?? {},
  };
}

/** Agent API errors → CNI codes. */
export function cniErrorFromApi(e: unknown, what: string): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof ApiError) {
    const code =
      e.status === 0 || e.status === 503 ? CniCode.TRY_AGAIN_LATER
      : e.status === 400 ? CniCode.INVALID_CONFIG
      : e.status === 404 ? CniCode.UNKNOWN_CONTAINER
      : e.status === 409 ? CniCode.CONFLICT
      : e.status === 507 ? CniCode.POOL_EXHAUSTED
      : CniCode.IO_FAILURE;
    return new CniError(code, `${what}: ${e.message}`, e.code);
  }
  return new CniError(CniCode.IO_FAILURE, `${what}: ${(e as Error).message ?? String(e)}`);
}

/**
 * Records a DEL for the agent's next start, then tries the agent once more: one that came up
 * meanwhile (and may have drained already) gets the delete now and the entry goes.
 */
export async function queueDeletionWhileDown(agentSocket: string, id: string, retry: () => Promise<unknown>): Promise<void> {
  const dir = deletionQueueDir(agentSocket);
  try {
    queueDeletion(dir, id);
  } catch (e) {
    // An id the API would refuse names no endpoint and never becomes a queue file name.
    if (e instanceof RangeError) throw new CniError(CniCode.INVALID_ENV, `CNI_CONTAINERID/CNI_IFNAME: ${e.message}`);
    throw new CniError(CniCode.TRY_AGAIN_LATER, `deleting ${id}: the agent is down and the deletion could not be queued`, (e as Error).message);
  }
  try {
    await retry();
    removeEntry(dir, id);
  } catch {
    /* still down: the queued entry stands */
  }
}

/** Runs one invocation; returns what goes to stdout (may be empty). Throws CniError. */
export async function runCni(env: NodeJS.ProcessEnv, stdin: string): Promise<string> {
  const inv = parseInvocation(env);
  if (inv.command === "VERSION") {
    return JSON.stringify({ cniVersion: CNI_VERSION, supportedVersions: SUPPORTED_VERSIONS });
  }
  const conf = parseNetConf(stdin);
  const client = new AgentClient(conf.agentSocket);
  const id = endpointIdFor(inv);
  switch (inv.command) {
    case "ADD": {
      const labels = { ...conf.labels, ...Object.fromEntries(Object.entries(inv.args).filter(([k]) => k !== "IgnoreUnknown")), "cni.network": conf.name };
      try {
        const r = await client.addEndpoint({ id, netns: inv.netns, ifname: inv.ifname, labels });
        return JSON.stringify(resultFor(conf, r.endpoint));
      } catch (e) {
        throw cniErrorFromApi(e, `adding ${id}`);
      }
    }
    case "DEL": {
      try {
        await client.deleteEndpoint(id);
        return "";
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 0)) throw cniErrorFromApi(e, `deleting ${id}`);
      }
      // The agent is down: DEL must still succeed (the spec; a kubelet would retry forever).
      // Queue it for the agent's next start (node-agent/cni/deletionQueue.ts).
      await queueDeletionWhileDown(conf.agentSocket, id, () => client.deleteEndpoint(id));
      return "";
    }
    case "CHECK": {
      let ep: EndpointView | undefined;
      try {
        ep = await client.getEndpoint(id);
      } catch (e) {
        throw cniErrorFromApi(e, `checking ${id}`);
      }
      if (!ep) throw new CniError(CniCode.UNKNOWN_CONTAINER, `the agent has no endpoint ${id}`);
      if (ep.status !== "ready") throw new CniError(CniCode.IO_FAILURE, `endpoint ${id} is ${ep.status}`);
      if (inv.netns && ep.netns !== inv.netns) throw new CniError(CniCode.IO_FAILURE, `endpoint ${id} is in ${ep.netns}, not ${inv.netns}`);
      const prevIps = conf.prevResult?.ips?.map((i) => i.address) ?? [];
      if (prevIps.length && !prevIps.includes(ep.address)) {
        throw new CniError(CniCode.IO_FAILURE, `endpoint ${id} has ${ep.address}, the previous result says ${prevIps.join(", ")}`);
      }
      return "";
    }
    default:
      throw new CniError(CniCode.INVALID_ENV, `unknown CNI_COMMAND ${inv.command}`);
  }
}

export function errorJson(e: CniError, cniVersion = CNI_VERSION): string {
  return JSON.stringify({ cniVersion, code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) });
}

/** Entry point of bin/bpfnet-cni. */
export async function cniMain(): Promise<number> {
  let stdin = "";
  let version = CNI_VERSION;
  try {
    stdin = process.env.CNI_COMMAND === "VERSION" && process.stdin.isTTY ? "" : fs.readFileSync(0, "utf8");
    try {
      const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
      if (typeof v === "string" && v) version = v;
    } catch {
      /* reported by runCni */
    }
    const out = await runCni(process.env, stdin);
    if (out) process.stdout.write(out + "\n");
    return 0;
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(CniCode.IO_FAILURE, (e as Error).message ?? String(e));
    process.stdout.write(errorJson(err, version) + "\n");
    return 1;
  }
}
