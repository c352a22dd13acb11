// How bpfnet reaches etcd: the connection input shared by every resource, its validation, and
// the etcd3 client built from it. The client is created per provider call and closed after it:
// dynamic providers are serialized, so nothing here may hold a handle at module scope, and
// `require("etcd3")` happens inside `connect`, at call time.
import type { Etcd3, IOptions } from "etcd3";
import type { Failure } from "../network/networkSpec";
import { isUnknown } from "../common/unknown";

/** How to reach etcd. `keyPem` and `password` are stored as Pulumi secrets by the resources. */
export interface EtcdConnection {
  /** Client URLs, e.g. "https://10.0.0.5:2379"; without a scheme, https is used when TLS material is given. */
  endpoints: string[];
  /** CA bundle that signed the etcd server certificates (PEM). */
  caPem?: string;
  /** Client certificate for mTLS (PEM); requires keyPem. */
  certPem?: string;
  /** Client private key for mTLS (PEM). Secret. */
  keyPem?: string;
  /** etcd user for password auth; requires password. */
  username?: string;
  /** Password of `username`. Secret. */
  password?: string;
}

export interface ConnectOptions {
  /** Deadline of every unary call (default 5000 ms): a paused or partitioned etcd must not hang a deployment. */
  callTimeoutMs?: number;
}

export const DEFAULT_CALL_TIMEOUT_MS = 5000;

const ENDPOINT = /^(https?:\/\/)?([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})\/?$/;

/** Problems with a connection, each naming the field and value; unknown (preview) values pass. */
export function connectionProblems(conn: unknown, field = "connection"): Failure[] {
  const out: Failure[] = [];
  const fail = (reason: string) => out.push({ property: field, reason });
  if (isUnknown(conn)) return out;
  if (!conn || typeof conn !== "object" || Array.isArray(conn)) {
    fail(`${field} is required: { endpoints: ["https://host:2379"], caPem?, certPem?, keyPem?, username?, password? }`);
    return out;
  }
  const c = conn as Record<string, unknown>;
  if (!isUnknown(c.endpoints)) {
    if (!Array.isArray(c.endpoints) || c.endpoints.length === 0) {
      fail(`${field}.endpoints must be a non-empty list of client URLs like "https://10.0.0.5:2379", got ${JSON.stringify(c.endpoints)}`);
    } else {
      c.endpoints.forEach((e, i) => {
        if (isUnknown(e)) return;
        const m = typeof e === "string" ? ENDPOINT.exec(e) : null;
        if (!m || Number(m[4]) < 1 || Number(m[4]) > 65535) {
          fail(`${field}.endpoints[${i}] must look like "https://host:2379" or "host:2379", got ${JSON.stringify(e)}`);
        }
      });
      const schemes = new Set(
        c.endpoints.filter((e): e is string => typeof e === "string" && !isUnknown(e)).map((e) => schemeOf(e, hasTls(c))),
      );
      if (schemes.size > 1) fail(`${field}.endpoints mixes http and https URLs; use one scheme for all members`);
    }
  }
  for (const k of ["caPem", "certPem", "keyPem", "username", "password"]) {
    const v = c[k];
    if (v !== undefined && v !== null && !isUnknown(v) && (typeof v !== "string" || v === "")) {
      fail(`${field}.${k} must be a non-empty string when set`);
    }
  }
  const set = (k: string) => c[k] !== undefined && c[k] !== null;
  if (set("certPem") !== set("keyPem")) fail(`${field}.certPem and ${field}.keyPem must be given together (mTLS)`);
  if (set("username") !== set("password")) fail(`${field}.username and ${field}.password must be given together`);
  return out;
}

function hasTls(c: Record<string, unknown>): boolean {
  return (c.caPem !== undefined && c.caPem !== null) || (c.certPem !== undefined && c.certPem !== null);
}

function schemeOf(endpoint: string, tls: boolean): "http" | "https" {
  if (endpoint.startsWith("https://")) return "https";
  if (endpoint.startsWith("http://")) return "http";
  return tls ? "https" : "http";
}

/** Endpoints with an explicit scheme, as etcd3 wants them. */
export function normalizeEndpoints(conn: EtcdConnection): string[] {
  const tls = hasTls(conn as unknown as Record<string, unknown>);
  return conn.endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `${schemeOf(e, tls)}://${e}`).replace(/\/$/, ""));
}

/** etcd3 client options for a connection. Pure apart from building Buffers. */
export function clientOptions(conn: EtcdConnection, opts: ConnectOptions = {}): IOptions {
  const timeout = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const options: IOptions = {
    hosts: normalizeEndpoints(conn),
    dialTimeout: timeout,
    // Streams (watches) have no deadline; every unary call does.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    // Range reads of a large pool can exceed gRPC's default 4 MiB.
    grpcOptions: { "grpc.max_receive_message_length": 64 * 1024 * 1024 },
  };
  if (conn.caPem || conn.certPem) {
    options.credentials = {
      // etcd3 types rootCertificate as required; grpc accepts null for "system roots".
      rootCertificate: (conn.caPem ? Buffer.from(conn.caPem) : null) as unknown as Buffer,
      ...(conn.certPem ? { certChain: Buffer.from(conn.certPem) } : {}),
      ...(conn.keyPem ? { privateKey: Buffer.from(conn.keyPem) } : {}),
    };
  }
  if (conn.username !== undefined && conn.password !== undefined) {
    options.auth = { username: conn.username, password: conn.password };
  }
  return options;
}

/** A new etcd3 client; the caller closes it. */
export function connect(conn: EtcdConnection, opts: ConnectOptions = {}): Etcd3 {
  // Loaded here, not at module scope: the provider is serialized and this runs in the provider host.
  const { Etcd3: Client } = require("etcd3") as typeof import("etcd3");
  return new Client(clientOptions(conn, opts));
}

/** Runs `fn` with a fresh client and always closes it. */
export async function withEtcd<T>(conn: EtcdConnection, fn: (client: Etcd3) => Promise<T>, opts: ConnectOptions = {}): Promise<T> {
  const client = connect(conn, opts);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/**
 * True for failures of the transport (unavailable, deadline, open circuit): the request may or
 * may not have reached etcd and is worth retrying. Auth, permission and argument errors are not.
 */
export function isTransient(e: unknown): boolean {
  if (!e || typeof e !== "object") return false;
  const { isRecoverableError } = require("etcd3") as typeof import("etcd3");
  return isRecoverableError(e as Error) || "isBrokenCircuitError" in e;
}

/** The connection as plain JSON (no undefined values), for outputs. */
export function plainConnection(conn: EtcdConnection): EtcdConnection {
  const out: EtcdConnection = { endpoints: [...conn.endpoints] };
  for (const k of ["caPem", "certPem", "keyPem", "username", "password"] as const) {
    if (typeof conn[k] === "string") out[k] = conn[k];
  }
  return out;
}
