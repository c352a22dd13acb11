// One etcd connection per network in the state instead of one per host. A dynamic resource's
// provider sees only its own inputs (create, update) or outputs (read, delete), so a resource
// that must reach etcd at delete stores its connection twice (~5.4 KB of ciphertext each: CA,
// client certificate and key). A SharedEtcdConnection is an explicit provider (Pulumi's
// dynamic-provider plugin) whose config holds the connection once; the resources it serves
// store a reference, the connection's SHA-256, and their provider process gets the connection
// from its config (`configure`, run before any method, also on destroy and refresh).
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { EtcdConnection, connectionProblems, plainConnection } from "./etcdClient";
import type { EtcdConnectionArgs } from "../network/containerNetwork";
import type { Failure } from "../network/networkSpec";
import { isUnknown } from "../common/unknown";

/** Does a Network give its allocations a SharedEtcdConnection? BPFNET_SHARED_CONNECTION=0: inline, as before (bench/networkScale.ts's baseline). */
export function sharedConnectionEnabled(): boolean {
  return process.env.BPFNET_SHARED_CONNECTION !== "0";
}

/** The provider config key that holds the connection (JSON). */
export const SHARED_CONNECTION_KEY = "bpfnet:etcdConnection";

/** What a resource served by a SharedEtcdConnection stores instead of the connection. */
export interface ConnectionRef {
  /** The SHA-256 (hex) of the connection's plain form (connectionRef). */
  sharedConnection: string;
}

/** The connections this provider process was configured with, by hash (an object: serializable with a provider's code). */
const configured: Record<string, EtcdConnection> = {};

/** The reference of a connection: the SHA-256 of its plain form. */
export function connectionRef(conn: EtcdConnection): ConnectionRef {
  return { sharedConnection: crypto.createHash("sha256").update(JSON.stringify(plainConnection(conn))).digest("hex") };
}

export function isConnectionRef(v: unknown): v is ConnectionRef {
  return !!v && typeof v === "object" && "sharedConnection" in v;
}

/** A dynamic provider's `configure`: records the connection of a SharedEtcdConnection's config (nothing for the default provider). */
export function configureSharedConnection(req: { config: { get(key: string): unknown } }): void {
  const raw = req.config.get(SHARED_CONNECTION_KEY);
  if (typeof raw !== "string" || isUnknown(raw)) return;
  const conn = plainConnection(JSON.parse(raw) as EtcdConnection);
  configured[connectionRef(conn).sharedConnection] = conn;
}

/** A stored connection as it is kept: the plain connection, or the reference as given. */
export function storedConnection(c: EtcdConnection | ConnectionRef): EtcdConnection | ConnectionRef {
  return isConnectionRef(c) ? { sharedConnection: c.sharedConnection } : plainConnection(c);
}

/** The connection to use: the stored one, or the configured connection a reference names. */
export function resolveConnection(c: EtcdConnection | ConnectionRef): EtcdConnection {
  if (!isConnectionRef(c)) return c;
  const conn = configured[c.sharedConnection];
  if (!conn) throw new Error(refMissing(c.sharedConnection));
  return conn;
}

function refMissing(hash: unknown): string {
  return `connection refers to a shared etcd connection (sha256 ${JSON.stringify(hash)}) that this resource's provider does not hold: give the connection itself, or the SharedEtcdConnection that holds it as the resource's provider`;
}

/** connectionProblems for a connection or a reference (which must name a configured connection, unless unknown at preview). */
export function storedConnectionProblems(c: unknown, field = "connection"): Failure[] {
  if (!isConnectionRef(c)) return connectionProblems(c, field);
  const hash = c.sharedConnection;
  if (isUnknown(hash)) return [];
  if (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash)) return [{ property: field, reason: `${field}.sharedConnection must be a SHA-256 in hex, got ${JSON.stringify(hash)}` }];
  return configured[hash] ? connectionProblems(configured[hash], field) : [{ property: field, reason: refMissing(hash) }];
}

/**
 * An explicit provider for bpfnet's per-host dynamic resources (HostAllocation) that holds the
 * etcd connection once, as a secret in its config; resources given it as `provider` store
 * `ref` (the connection's SHA-256, secret too) instead of the connection. Changing the
 * connection changes the reference: the resources update, none is replaced.
 */
export class SharedEtcdConnection extends pulumi.ProviderResource {
  /** What the resources this provider serves store instead of the connection. */
  public readonly ref: pulumi.Output<ConnectionRef>;

  constructor(name: string, connection: pulumi.Input<EtcdConnectionArgs>, opts?: pulumi.ResourceOptions) {
    const conn = pulumi.secret(connection) as pulumi.Output<EtcdConnection>;
    super("pulumi-nodejs", name, { [SHARED_CONNECTION_KEY]: conn.apply((c) => JSON.stringify(plainConnection(c))) }, opts);
    this.ref = conn.apply(connectionRef);
  }
}
