// The ipcache's desired rows: address prefix → identity, read by the datapath to name a
// packet's peer. Pure. An address with no row is world (2), so a missing row never allows more.
import { formatCidr, parseCidr, parseIpv4 } from "../../provider/ipam/cidr";
import { IDENTITY_HOST, IDENTITY_REMOTE_NODE } from "./identity";

export interface IpcacheRow {
  /** Canonical "a.b.c.d/len". */
  cidr: string;
  identity: number;
}

export interface IpcacheInput {
  /** Every endpoint of the network with an allocated identity (local and remote). */
  endpoints: { ip: string; identity: number }[];
  /** This host's own addresses (underlay, pod gateway): identity host (1). */
  localHostIps: string[];
  /** Other hosts' addresses (underlay, pod gateway): identity remote-node (6). */
  remoteHostIps: string[];
  /** CIDR-rule prefixes → their agent-local identities (computePolicy). */
  cidrIdentities: Map<string, number>;
}

/**
 * Rows keyed by canonical CIDR. Where two sources name the same /32, the more specific kind
 * wins: an endpoint over a host address over a CIDR rule (a CIDR rule never matches a member
 * of the network, as in Cilium).
 */
export function buildIpcache(input: IpcacheInput): Map<string, number> {
  const rows = new Map<string, number>();
  for (const [cidr, id] of input.cidrIdentities) {
    const c = parseCidr(cidr);
    if (c) rows.set(formatCidr(c), id);
  }
  const host = (ip: string, id: number) => {
    if (parseIpv4(ip) !== undefined) rows.set(`${ip}/32`, id);
  };
  input.remoteHostIps.forEach((ip) => host(ip, IDENTITY_REMOTE_NODE));
  input.localHostIps.forEach((ip) => host(ip, IDENTITY_HOST));
  for (const e of input.endpoints) host(e.ip, e.identity);
  return rows;
}
