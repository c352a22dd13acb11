// Security identities: the numbers the datapath compares instead of addresses. Pure.
// Numbering follows Cilium (docs/policy.md): 0 = "any" in policy keys, 1..255 reserved,
// endpoint identities allocated cluster-wide from 256 (below 2^24), CIDR identities local to
// one agent from 2^24 (never put on the wire).
import type { Selector } from "../../provider/policy/policySpec";
import { Identity } from "../../bpf/abi";

// The reserved numbers are the datapath's (bpf/lib/abi.h).
export const IDENTITY_ANY = Identity.ANY;
export const IDENTITY_HOST = Identity.HOST;
export const IDENTITY_WORLD = Identity.WORLD;
export const IDENTITY_HEALTH = Identity.HEALTH;
export const IDENTITY_REMOTE_NODE = Identity.REMOTE_NODE;
/** First and last identity the cluster-wide allocator hands out. */
export const MIN_ENDPOINT_IDENTITY = 256;
export const MAX_ENDPOINT_IDENTITY = 2 ** 24 - 1;
/** CIDR identities: agent-local, numbered from here in the order of the sorted CIDRs. */
export const CIDR_IDENTITY_BASE = 2 ** 24;

export type Labels = Record<string, string>;

/** True when the endpoint's labels carry every pair of the selector ({} matches everything). */
export function selects(selector: Selector, labels: Labels): boolean {
  return Object.entries(selector).every(([k, v]) => Object.prototype.hasOwnProperty.call(labels, k) && labels[k] === v);
}

/**
 * The canonical text of a label set: sorted, each key and value URI-encoded, joined by ",".
 * It is one etcd key segment (no "/"), equal for equal sets whatever the insertion order.
 */
export function labelsKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(labels[k])}`)
    .join(",");
}

/** Inverse of labelsKey; undefined for text that labelsKey cannot have produced. */
export function labelsFromKey(text: string): Labels | undefined {
  if (text === "") return {};
  const out: Labels = {};
  for (const pair of text.split(",")) {
    const m = /^([^=,/]+)=([^=,/]*)$/.exec(pair);
    if (!m) return undefined;
    try {
      out[decodeURIComponent(m[1])] = decodeURIComponent(m[2]);
    } catch {
      return undefined;
    }
  }
  return labelsKey(out) === text ? out : undefined;
}
