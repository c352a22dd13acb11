// The reference a resource served by a SharedEtcdConnection stores instead of the connection
// (provider/etcd/sharedConnection.ts): it names the configured connection by hash, is
// validated at check with a message naming the field, and never resolves to anything else.
import { configureSharedConnection, connectionRef, resolveConnection, SHARED_CONNECTION_KEY, storedConnection, storedConnectionProblems } from "../../provider/etcd/sharedConnection";
import { UNKNOWN } from "../../provider/common/unknown";
import type { EtcdConnection } from "../../provider/etcd/etcdClient";

const conn: EtcdConnection = { endpoints: ["https://127.0.0.1:23840"], caPem: "ca", certPem: "cert", keyPem: "key" };
const configFor = (value: unknown) => ({ config: { get: (key: string) => (key === SHARED_CONNECTION_KEY ? value : undefined) } });

test("the reference is the SHA-256 of the plain connection: equal connections, equal references; any field changes it", () => {
  const ref = connectionRef(conn);
  expect(ref.sharedConnection).toMatch(/^[0-9a-f]{64}$/);
  expect(connectionRef({ ...conn, endpoints: [...conn.endpoints] })).toEqual(ref);
  expect(connectionRef({ ...conn, keyPem: "other" })).not.toEqual(ref);
  expect(JSON.stringify(ref)).not.toContain("key");
});

test("a reference resolves only to the connection its provider was configured with", () => {
  const other = { ...conn, endpoints: ["https://127.0.0.1:23841"] };
  expect(() => resolveConnection(connectionRef(other))).toThrow(/does not hold/);
  configureSharedConnection(configFor(JSON.stringify(conn)));
  expect(resolveConnection(connectionRef(conn))).toEqual(conn);
  expect(() => resolveConnection(connectionRef(other))).toThrow(/does not hold/);
  // A connection given inline is itself; the default provider's config (no key) and an unknown one at preview configure nothing.
  expect(resolveConnection(other)).toBe(other);
  configureSharedConnection(configFor(undefined));
  configureSharedConnection(configFor(UNKNOWN));
  expect(storedConnection(connectionRef(conn))).toEqual(connectionRef(conn));
  expect(storedConnection({ ...conn, extra: "dropped" } as EtcdConnection)).toEqual(conn);
});

test("hostile references are refused at check, naming the field and the value; an unknown one waits for the real value", () => {
  for (const hostile of ["a b", "x;reboot", "$(reboot)", "`id`", "a\nb", "../../etc", "'\"", "", 42, null]) {
    const problems = storedConnectionProblems({ sharedConnection: hostile });
    expect(problems).toEqual([{ property: "connection", reason: `connection.sharedConnection must be a SHA-256 in hex, got ${JSON.stringify(hostile)}` }]);
  }
  const unheld = "f".repeat(64);
  expect(storedConnectionProblems({ sharedConnection: unheld }, "etcd")).toEqual([{ property: "etcd", reason: expect.stringContaining(`sha256 "${unheld}"`) }]);
  expect(storedConnectionProblems({ sharedConnection: UNKNOWN })).toEqual([]);
  configureSharedConnection(configFor(JSON.stringify(conn)));
  expect(storedConnectionProblems(connectionRef(conn))).toEqual([]);
  // The connection a reference names is itself checked.
  const bad = { endpoints: ["https://127.0.0.1:23842; reboot"] };
  configureSharedConnection(configFor(JSON.stringify(bad)));
  expect(storedConnectionProblems(connectionRef(bad as EtcdConnection))).toContainEqual(expect.objectContaining({ property: "connection", reason: expect.stringContaining("endpoints[0]") }));
});
