// The sizes of the BPF maps that grow with the network, derived from its spec (pure). The
// compiled sizes (bpf/lib/abi.h) fit 4,096 hosts and 65,536 ipcache rows; a network that can
// hold more hosts or endpoints gets maps sized for it when the agent creates them
// (bpf_map__set_max_entries before load). Sizes never go below the compiled ones, so a network
// that fits them keeps its pinned maps across an upgrade.
import { ABI_CONSTANTS as ABI } from "../../bpf/abi";
import { parseCidr, subnetCount } from "../ipam/cidr";

/** The maps sized from the spec, by the agent config's name → the BPF map's name. */
export const SIZED_MAPS = {
  tunnel: "bpfnet_tunnel",
  peers: "bpfnet_peers",
  routes: "bpfnet_routes",
  ipcache: "bpfnet_ipcache",
} as const;

export type SizedMap = keyof typeof SIZED_MAPS;

/** max_entries per sized map; a map not named keeps its compiled size. */
export type MapSizes = Partial<Record<SizedMap, number>>;

/** The compiled sizes (abi.h). */
export const COMPILED_MAP_SIZES: Record<SizedMap, number> = {
  tunnel: ABI.BPFNET_TUNNEL_MAX,
  peers: ABI.BPFNET_PEERS_MAX,
  routes: ABI.BPFNET_ROUTES_MAX,
  ipcache: ABI.BPFNET_IPCACHE_MAX,
};

/**
 * The largest sizes accepted. bpfnet_peers is a preallocated hash (~64 bytes per entry whether
 * used or not: 16 MiB per host at 262,144); the LPM tries allocate per row used, but a full
 * ipcache of 2^24 rows would take ~1-2 GiB of kernel memory on every host.
 */
export const MAP_SIZE_CEILINGS: Record<SizedMap, number> = {
  tunnel: 262_144,
  peers: 262_144,
  routes: 262_144,
  ipcache: 16_777_216,
};

/** ipcache rows besides a host's endpoints: its underlay and bpfnet_host addresses. */
const HOST_ROWS = 2;

/** What the sizes are derived from: the spec, and the user's explicit bounds if any. */
export interface MapSizeInputs {
  clusterCidr: string;
  hostPrefixLength: number;
  /** At most this many hosts (default: every host subnet of clusterCidr). */
  maxHosts?: number;
  /** At most this many endpoints on one host (default: a host subnet's pod addresses). */
  maxEndpointsPerHost?: number;
}

/** A host subnet's addresses for pods: all but the network, gateway and broadcast addresses. */
export function podAddresses(hostPrefixLength: number): number {
  return 2 ** (32 - hostPrefixLength) - 3;
}

/** Endpoints one host can have: the user's bound, else a host subnet's pod addresses; never above the endpoint map. */
function endpointsPerHost(i: MapSizeInputs): number {
  return Math.min(i.maxEndpointsPerHost ?? podAddresses(i.hostPrefixLength), ABI.BPFNET_ENDPOINTS_MAX);
}

/** Entries each map needs for the network: hosts − 1 tunnel/peer/route rows, every endpoint and host address in the ipcache. */
export function requiredMapSizes(i: MapSizeInputs): Record<SizedMap, number> {
  const pool = parseCidr(i.clusterCidr);
  if (!pool) throw new RangeError(`clusterCidr ${JSON.stringify(i.clusterCidr)} is not a CIDR`);
  const hosts = i.maxHosts ?? subnetCount(pool, i.hostPrefixLength);
  return { tunnel: hosts, peers: hosts, routes: hosts, ipcache: hosts * (endpointsPerHost(i) + HOST_ROWS) };
}

/** The sizes to create the maps with: only those above the compiled size ({} for a network that fits them). */
export function mapSizesFor(i: MapSizeInputs): MapSizes {
  const need = requiredMapSizes(i);
  const out: MapSizes = {};
  for (const m of Object.keys(SIZED_MAPS) as SizedMap[]) if (need[m] > COMPILED_MAP_SIZES[m]) out[m] = need[m];
  return out;
}

/** The sizes the spec needs beyond what the kernel and memory allow, in the user's terms; [] when they fit. */
export function mapSizeInputProblems(i: MapSizeInputs, fields = { maxHosts: "agents.maxHosts", maxEndpointsPerHost: "agents.maxEndpointsPerHost" }): string[] {
  const problems: string[] = [];
  for (const [field, v, max] of [
    [fields.maxHosts, i.maxHosts, MAP_SIZE_CEILINGS.peers],
    [fields.maxEndpointsPerHost, i.maxEndpointsPerHost, ABI.BPFNET_ENDPOINTS_MAX],
  ] as const) {
    if (v !== undefined && !(typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= max)) {
      problems.push(`${field} must be an integer from 1 to ${max}, got ${JSON.stringify(v)}`);
    }
  }
  // A CIDR or prefix the spec's own check refuses is reported there, not twice.
  const pool = parseCidr(i.clusterCidr);
  if (problems.length > 0 || !pool || !Number.isInteger(i.hostPrefixLength) || i.hostPrefixLength <= pool.prefix || i.hostPrefixLength > 30) return problems;
  const need = requiredMapSizes(i);
  const hostsFrom = i.maxHosts !== undefined ? `${fields.maxHosts} ${i.maxHosts}` : `clusterCidr ${i.clusterCidr} cut into /${i.hostPrefixLength} host subnets`;
  if (need.peers > MAP_SIZE_CEILINGS.peers) {
    problems.push(
      `${hostsFrom} means ${need.peers} hosts: each host's peer map (preallocated) would exceed ${MAP_SIZE_CEILINGS.peers} entries; set ${fields.maxHosts} to the hosts the network will really have`,
    );
  } else if (need.ipcache > MAP_SIZE_CEILINGS.ipcache) {
    problems.push(
      `${hostsFrom} with ${endpointsPerHost(i)} endpoints each means ${need.ipcache} ipcache rows on every host, ` +
        `more than ${MAP_SIZE_CEILINGS.ipcache}; set ${fields.maxHosts} or ${fields.maxEndpointsPerHost}`,
    );
  }
  return problems;
}

/** Problems with a MapSizes value as the agent config and NodeAgent carry it; [] when valid. */
export function mapSizesProblems(field: string, v: unknown): string[] {
  if (v === undefined) return [];
  if (!v || typeof v !== "object" || Array.isArray(v)) return [`${field} must be an object of map sizes (${Object.keys(SIZED_MAPS).join(", ")}), got ${JSON.stringify(v)}`];
  const problems: string[] = [];
  for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
    if (!Object.prototype.hasOwnProperty.call(SIZED_MAPS, k)) {
      problems.push(`${field} has an unknown map ${JSON.stringify(k)} (known: ${Object.keys(SIZED_MAPS).join(", ")})`);
      continue;
    }
    const m = k as SizedMap;
    if (typeof n !== "number" || !Number.isInteger(n) || n < COMPILED_MAP_SIZES[m] || n > MAP_SIZE_CEILINGS[m]) {
      problems.push(`${field}.${m} must be an integer from ${COMPILED_MAP_SIZES[m]} (the compiled size) to ${MAP_SIZE_CEILINGS[m]}, got ${JSON.stringify(n)}`);
    }
  }
  return problems;
}

/** BPF map name → max_entries, as the loader takes them. */
export function maxEntriesByMapName(sizes: MapSizes): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [m, n] of Object.entries(sizes) as [SizedMap, number][]) out[SIZED_MAPS[m]] = n;
  return out;
}
