// The agent's durable state on the host's disk. Files are replaced atomically (write a temp
// file, fsync, rename, fsync the directory), so a crash leaves either the old or the new
// version, never a torn one. The endpoint file is the source of truth for which addresses are
// taken: an address is written here before any device gets it.
import * as fs from "fs";
import * as path from "path";

export const STATE_SCHEMA = 1;
export const ENDPOINTS_FILE = "endpoints.json";
export const NETWORK_FILE = "network.json";

export type EndpointStatus = "creating" | "ready";

export interface EndpointRecord {
  id: string;
  /** Small number for the datapath's endpoint_id (the map stores a u32). */
  number: number;
  ip: string;
  /** The container's network namespace (path). */
  netns: string;
  /** Interface name inside the container. */
  ifname: string;
  /** Host-side veth name. */
  hostIfname: string;
  labels: Record<string, string>;
  /** "creating" until every device, program and map entry is in place. */
  status: EndpointStatus;
  hostIfindex?: number;
  hostMac?: string;
  /** The container interface's MAC. */
  mac?: string;
  createdAt: string;
}

export interface EndpointState {
  schema: number;
  /** The pod CIDR the addresses were taken from. */
  podCidr?: string;
  /** Round-robin cursor of the address allocator. */
  lastAllocated?: string;
  nextNumber: number;
  endpoints: Record<string, EndpointRecord>;
}

/** What the agent last read from etcd: lets a restart rebuild the datapath while etcd is away. */
export interface NetworkCache {
  schema: number;
  mode: "vxlan" | "l3";
  clusterCidr: string;
  vni: number;
  vxlanPort: number;
  mtu: number;
  podCidr: string;
}

export function emptyEndpointState(): EndpointState {
  return { schema: STATE_SCHEMA, nextNumber: 1, endpoints: {} };
}

/**
 * Writes `data` to `file` atomically (a reader sees the old or the new content, also after the
 * writer crashes) and, when `durable`, synced to disk (also after power loss).
 */
export function writeFileAtomic(file: string, data: string, mode = 0o600, durable = true): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, "w", mode);
  try {
    fs.writeSync(fd, data);
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  if (!durable) return;
  const dfd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

function readJson(file: string): unknown | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    // Never guess: an unreadable file may hold addresses that are in use.
    throw new Error(`${file} is not valid JSON (${(e as Error).message}); fix or move it aside before starting the agent`);
  }
}

export class StateStore {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  get endpointsFile(): string {
    return path.join(this.dir, ENDPOINTS_FILE);
  }

  get networkFile(): string {
    return path.join(this.dir, NETWORK_FILE);
  }

  loadEndpoints(): EndpointState {
    const raw = readJson(this.endpointsFile) as EndpointState | undefined;
    if (raw === undefined) return emptyEndpointState();
    if (!raw || raw.schema !== STATE_SCHEMA || typeof raw.endpoints !== "object") {
      throw new Error(`${this.endpointsFile} has schema ${JSON.stringify((raw as { schema?: unknown })?.schema)}; this agent understands ${STATE_SCHEMA}`);
    }
    return { ...emptyEndpointState(), ...raw };
  }

  /**
   * `durable` false: atomic against an agent crash, not synced against power loss. An endpoint add
   * uses it: its records guard devices and namespaces, which a power loss takes away anyway.
   */
  saveEndpoints(state: EndpointState, durable = true): void {
    writeFileAtomic(this.endpointsFile, JSON.stringify(state, null, 2) + "\n", 0o600, durable);
  }

  loadNetwork(): NetworkCache | undefined {
    const raw = readJson(this.networkFile) as NetworkCache | undefined;
    return raw && raw.schema === STATE_SCHEMA ? raw : undefined;
  }

  saveNetwork(net: NetworkCache): void {
    writeFileAtomic(this.networkFile, JSON.stringify(net, null, 2) + "\n");
  }
}
