// The ipcache's desired rows: address prefix → identity, read by the datapath to name a
// packet's peer. Pure. An address with no row is world (2), so a missing row never allows more.
//
// Kept incrementally (docs/scale.md, limit 9): every source (an endpoint record, a local
// endpoint, a host address, a CIDR rule) claims its row, and the rows a change touched are
// remembered, so a pass after one endpoint event looks at that endpoint's row only instead of
// rebuilding every host's endpoints (58 ms at 5,000 hosts × 10 endpoints).
import { formatCidr, gatewayIp, parseCidr, parseIpv4 } from "../../provider/ipam/cidr";
import { IDENTITY_HOST, IDENTITY_REMOTE_NODE } from "./identity";

/**
 * Where two sources name the same row, the stronger kind wins: an endpoint over a host address
 * over a CIDR rule (a CIDR rule never matches a member of the network, as in Cilium); this
 * host's own endpoints over records in etcd (they know their identity first); among records,
 * the one written last (an address handed to a new endpoint before the old record went).
 */
const RANK = { cidr: 0, remoteHost: 1, localHost: 2, record: 3, localEndpoint: 4 } as const;

/** The groups of sources a pass replaces as a whole (the rest are endpoint records, one by one). */
type Group = "cidr" | "remoteHost" | "localHost" | "localEndpoint";

interface Claim {
  source: string;
  identity: number;
  rank: number;
  /** Among records: the etcd revision that wrote it. */
  order: number;
}

function stronger(a: Claim, b: Claim): boolean {
  return a.rank !== b.rank ? a.rank > b.rank : a.order !== b.order ? a.order > b.order : a.source > b.source;
}

export class IpcacheRows {
  /** Row → its claims (one claim alone, the common case, is kept without an array). */
  private readonly claims = new Map<string, Claim | Claim[]>();
  /** Source → the row it claims. */
  private readonly rowOf = new Map<string, string>();
  private readonly groups = new Map<Group, Set<string>>();
  private changed = new Set<string>();
  private hostArrays: [readonly string[], readonly string[]] | undefined;

  /** The identity a row resolves to (undefined: no row). */
  row(cidr: string): number | undefined {
    const c = this.claims.get(cidr);
    return c === undefined ? undefined : Array.isArray(c) ? c.reduce((best, x) => (stronger(x, best) ? x : best)).identity : c.identity;
  }

  /** Every row (a full pass). */
  rows(): Map<string, number> {
    const out = new Map<string, number>();
    for (const cidr of this.claims.keys()) out.set(cidr, this.row(cidr)!);
    return out;
  }

  get size(): number {
    return this.claims.size;
  }

  /** The rows changes touched since the last call (their value may or may not differ); clears them. */
  takeChanged(): Set<string> {
    const out = this.changed;
    this.changed = new Set();
    return out;
  }

  /** An endpoint record from etcd (undefined: deleted, or without a valid address and identity). */
  setRecord(key: string, ep: { ip: string; identity: number } | undefined, revision: number): void {
    if (key.startsWith("\0")) return; // a group's source name, never a record's key (under the network's prefix)
    const source = key;
    if (ep && parseIpv4(ep.ip) !== undefined) this.claim(source, `${ep.ip}/32`, ep.identity, RANK.record, revision);
    else this.release(source);
  }

  /** This host's endpoints that hold an identity. */
  setLocalEndpoints(endpoints: { ip: string; identity: number }[]): void {
    this.setGroup("localEndpoint", endpoints.map((e) => [e.ip, e.identity]));
  }

  /** Given the very arrays of the last call again, nothing changed (callers hand out new arrays for new addresses). */
  setHostAddresses(local: readonly string[], remote: readonly string[]): void {
    if (local === this.hostArrays?.[0] && remote === this.hostArrays[1]) return;
    this.hostArrays = [local, remote];
    this.setGroup("localHost", local.map((ip) => [ip, IDENTITY_HOST]));
    this.setGroup("remoteHost", remote.map((ip) => [ip, IDENTITY_REMOTE_NODE]));
  }

  setCidrIdentities(cidrs: ReadonlyMap<string, number>): void {
    this.setGroup("cidr", [...cidrs]);
  }

  /** Replaces a group's claims: entries are addresses (a /32 row) or, for CIDR rules, prefixes. */
  private setGroup(group: Group, entries: [string, number][]): void {
    const before = this.groups.get(group) ?? new Set<string>();
    const after = new Set<string>();
    for (const [what, identity] of entries) {
      const cidr = group === "cidr" ? canonicalCidr(what) : parseIpv4(what) !== undefined ? `${what}/32` : undefined;
      if (cidr === undefined) continue;
      const source = `\0${group} ${cidr}`;
      after.add(source);
      this.claim(source, cidr, identity, RANK[group], 0);
    }
    for (const source of before) if (!after.has(source)) this.release(source);
    this.groups.set(group, after);
  }

  private claim(source: string, cidr: string, identity: number, rank: number, order: number): void {
    const had = this.rowOf.get(source);
    if (had !== undefined && had !== cidr) this.release(source);
    const claim: Claim = { source, identity, rank, order };
    const c = this.claims.get(cidr);
    if (c === undefined) this.claims.set(cidr, claim);
    else if (!Array.isArray(c)) {
      if (c.source !== source) this.claims.set(cidr, [c, claim]);
      else if (c.identity === identity && c.order === order) return;
      else this.claims.set(cidr, claim);
    } else {
      const i = c.findIndex((x) => x.source === source);
      if (i < 0) c.push(claim);
      else c[i] = claim;
    }
    this.rowOf.set(source, cidr);
    this.changed.add(cidr);
  }

  private release(source: string): void {
    const cidr = this.rowOf.get(source);
    if (cidr === undefined) return;
    this.rowOf.delete(source);
    const c = this.claims.get(cidr);
    if (!Array.isArray(c)) this.claims.delete(cidr);
    else {
      const rest = c.filter((x) => x.source !== source);
      this.claims.set(cidr, rest.length === 1 ? rest[0] : rest);
    }
    this.changed.add(cidr);
  }
}

function canonicalCidr(text: string): string | undefined {
  const c = parseCidr(text);
  return c ? formatCidr(c) : undefined;
}

/** A host's addresses in the ipcache: its underlay and its pod gateway. */
export function hostAddresses(underlayIp: string, podCidr: string): string[] {
  const c = parseCidr(podCidr);
  return c ? [underlayIp, gatewayIp(c)] : [underlayIp];
}
