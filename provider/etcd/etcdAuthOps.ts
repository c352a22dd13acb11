// etcd's auth API as bpfnet uses it: idempotent "make it so" steps over users and roles, run
// with the admin identity. etcd answers "already exists" / "not found" as errors; a retried
// deployment must treat those as done, so each step here does.
import type { Etcd3 } from "etcd3";
import { EtcdRange, grantDifference } from "./hostAccessSpec";

const exists = (e: unknown) => /already exists/i.test((e as Error)?.message ?? "");
const notFound = (e: unknown) => /not found/i.test((e as Error)?.message ?? "");

async function ignoring<T>(p: Promise<T>, harmless: (e: unknown) => boolean): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!harmless(e)) throw e;
  }
}

/** The role's grants as etcd holds them; undefined when the role does not exist. */
export async function roleGrants(client: Etcd3, role: string): Promise<EtcdRange[] | undefined> {
  try {
    const r = await client.auth.roleGet({ role });
    return r.perm.map((p) => ({ permType: p.permType, key: p.key.toString("latin1"), rangeEnd: p.range_end.toString("latin1") }));
  } catch (e) {
    if (notFound(e)) return undefined;
    throw e;
  }
}

/** The user's roles; undefined when the user does not exist. */
export async function userRoles(client: Etcd3, name: string): Promise<string[] | undefined> {
  try {
    return (await client.auth.userGet({ name })).roles;
  } catch (e) {
    if (notFound(e)) return undefined;
    throw e;
  }
}

/** Creates the role if needed and makes its grants exactly `want` (extra grants are revoked). */
export async function ensureRole(client: Etcd3, role: string, want: EtcdRange[]): Promise<void> {
  await ignoring(client.auth.roleAdd({ name: role }), exists);
  const { grant, revoke } = grantDifference(want, (await roleGrants(client, role)) ?? []);
  for (const r of revoke) {
    await ignoring(client.auth.roleRevokePermission({ role, key: Buffer.from(r.key, "latin1"), range_end: Buffer.from(r.rangeEnd, "latin1") }), notFound);
  }
  for (const r of grant) {
    await client.auth.roleGrantPermission({ name: role, perm: { permType: r.permType, key: Buffer.from(r.key, "latin1"), range_end: Buffer.from(r.rangeEnd, "latin1") } });
  }
}

/**
 * Creates the user if needed (without a password: it authenticates by its certificate's CN; or
 * with `password`, which is also set on an existing user) and makes `roles` exactly its roles.
 */
export async function ensureUser(client: Etcd3, name: string, roles: string[], password?: string): Promise<void> {
  await ignoring(
    client.auth.userAdd(password === undefined ? { name, options: { no_password: true } } : { name, password, options: { no_password: false } }),
    exists,
  );
  if (password !== undefined) await client.auth.userChangePassword({ name, password });
  const have = (await userRoles(client, name)) ?? [];
  for (const role of have.filter((r) => !roles.includes(r))) await ignoring(client.auth.userRevokeRole({ name, role }), notFound);
  for (const role of roles.filter((r) => !have.includes(r))) await client.auth.userGrantRole({ user: name, role });
}

/** Removes a user and then (when given) its role; both may already be gone. */
export async function removeUserAndRole(client: Etcd3, name: string, role: string | undefined): Promise<void> {
  await ignoring(client.auth.userDelete({ name }), notFound);
  if (role !== undefined) await ignoring(client.auth.roleDelete({ role }), notFound);
}

/**
 * Revokes the lease `key` is attached to, if any: its keys go with it. etcd checks neither lease
 * keepalives nor open watches against a user deleted later, so a revoked host's agent could keep
 * its registration alive; revoking the lease (admin only) ends that.
 */
export async function revokeLeaseOf(client: Etcd3, key: string): Promise<boolean> {
  const kv = (await client.kv.range({ key: Buffer.from(key) })).kvs[0];
  const lease = kv ? String(kv.lease) : "0";
  if (lease === "0") return false;
  await ignoring(client.leaseClient.leaseRevoke({ ID: lease }), notFound);
  return true;
}

/**
 * Whether etcd's auth is on (etcd 3.4 has no AuthStatus call): a password login of a user that
 * does not exist is answered "authentication is not enabled" when auth is off, and
 * "authentication failed" when it is on.
 */
export async function authEnabled(client: Etcd3): Promise<boolean> {
  const password = (require("crypto") as typeof import("crypto")).randomBytes(12).toString("hex");
  try {
    await client.auth.authenticate({ name: "bpfnet-auth-probe (no such user)", password });
    return true; // someone made the probe user: auth is on all the same
  } catch (e) {
    const message = (e as Error).message;
    if (/authentication is not enabled/i.test(message)) return false;
    if (/authentication failed|invalid user/i.test(message)) return true;
    throw e;
  }
}
