// The pure parts of least privilege in etcd: a host's role (which keys it may read and write),
// user names, grant repair, certificates (CN, expiry, CA), the re-issue decision, the Network's
// choice of identity, and preview validation with hostile input.
import { etcdHostAccessProvider, reissueReason } from "../../provider/etcd/etcdHostAccess";
import { etcdPkiProvider } from "../../provider/etcd/etcdPki";
import { EtcdRange, grantDifference, hostAccessProblems, hostGrants, hostRoleName, hostUserName, toEtcdRange } from "../../provider/etcd/hostAccessSpec";
import { certFacts, certMatches, ETCD_ROOT_USER, generateCa, issueClientCert, issueHostCert, issueMemberCert, nearsExpiry } from "../../provider/etcd/pki";
import { cidrKey, configKey, endpointKey, healthDir, hostKey, identitiesDir, nodeKey, policiesDir, servicesDir } from "../../provider/etcd/keys";
import { hostCredentialsMode, rotationOf } from "../../components/network";

const P = "/bpfnet/dev";

/** What etcd would allow: some grant's [key, rangeEnd) holds the key with this permission. */
function allowed(ranges: EtcdRange[], key: string, need: "read" | "write"): boolean {
  return ranges.some((r) => {
    const ok = need === "read" ? r.permType !== "Write" : r.permType !== "Read";
    const inside = r.rangeEnd === "" ? key === r.key : key >= r.key && key < r.rangeEnd;
    return ok && inside;
  });
}

describe("a host's role", () => {
  const ranges = hostGrants(P, "h2").map(toEtcdRange);
  const writable = (k: string) => allowed(ranges, k, "write");
  const readable = (k: string) => allowed(ranges, k, "read");

  test("writes only its own registration, endpoints, health, and the shared identities", () => {
    expect(writable(nodeKey(P, "h2"))).toBe(true);
    expect(writable(endpointKey(P, "h2", "web"))).toBe(true);
    expect(writable(`${healthDir(P, "h2")}h1`)).toBe(true);
    expect(writable(`${identitiesDir(P)}256`)).toBe(true);
    for (const k of [
      nodeKey(P, "h1"),
      nodeKey(P, "h22"), // a longer host name sharing the prefix
      nodeKey(P, "h2x"),
      endpointKey(P, "h1", "web"),
      endpointKey(P, "h22", "web"),
      `${healthDir(P, "h1")}h2`,
      configKey(P),
      hostKey(P, "h2"),
      hostKey(P, "h1"),
      cidrKey(P, "10.244.1.0/24"),
      `${policiesDir(P)}allow-web`,
      `${servicesDir(P)}web`,
      configKey("/bpfnet/dev2"),
      `${identitiesDir("/bpfnet/dev2")}256`,
      "/elsewhere",
    ]) {
      expect([k, writable(k)]).toEqual([k, false]);
    }
  });

  test("reads its whole network and nothing of another network with a similar prefix", () => {
    for (const k of [configKey(P), hostKey(P, "h1"), nodeKey(P, "h1"), endpointKey(P, "h1", "x"), `${policiesDir(P)}p`]) expect(readable(k)).toBe(true);
    for (const k of [configKey("/bpfnet/dev2"), "/bpfnet/de", "/bpfnet/dev", "/bpfnet/dev0"]) expect([k, readable(k)]).toEqual([k, false]);
  });

  test("names: one role per (network, host), one user per generation; no two pairs collide", () => {
    expect(hostRoleName(P, "h2")).toBe("bpfnet-host:/bpfnet/dev:h2");
    expect(hostUserName(P, "h2", 3)).toBe("bpfnet-host:/bpfnet/dev:h2:3");
    const names = new Set([hostRoleName("/a/b", "c"), hostRoleName("/a", "b-c"), hostRoleName("/a/b-c", "d"), hostRoleName("/a", "bc")]);
    expect(names.size).toBe(4);
  });

  test("grant repair: what is missing is granted, what was added by hand is revoked", () => {
    const extra: EtcdRange = { permType: "Readwrite", key: configKey(P), rangeEnd: "" };
    const { grant, revoke } = grantDifference(ranges, [...ranges.slice(1), extra]);
    expect(grant).toEqual([ranges[0]]);
    expect(revoke).toEqual([extra]);
    expect(grantDifference(ranges, ranges)).toEqual({ grant: [], revoke: [] });
    // The same range with a wider permission counts as a different grant.
    expect(grantDifference(ranges, ranges.map((r) => ({ ...r, permType: "Readwrite" as const }))).grant.length).toBeGreaterThan(0);
  });
});

describe("certificates", () => {
  const ca = generateCa("unit");
  const other = generateCa("other");

  test("a host certificate carries its user as CN, is signed by the CA, and lives validDays", () => {
    const user = hostUserName(P, "h1", 1);
    const c = issueHostCert(ca, user, 30);
    const f = certFacts(c.certPem, ca);
    expect(f.commonName).toBe(user);
    expect(f.signedByCa).toBe(true);
    expect(certFacts(c.certPem, other).signedByCa).toBe(false);
    const days = (f.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThan(30.1);
  });

  test("the admin and member certificates are root's; an old non-root member certificate does not match", () => {
    expect(certFacts(issueClientCert(ca, "unit").certPem).commonName).toBe(ETCD_ROOT_USER);
    const m = { name: "m1", ips: ["10.0.0.1"] };
    expect(certMatches(ca, issueMemberCert(ca, "unit", m), m)).toBe(true);
    expect(certMatches(ca, issueHostCert(ca, "unit etcd m1", 30), m)).toBe(false);
    expect(certMatches(other, issueMemberCert(ca, "unit", m), m)).toBe(false);
  });

  test("EtcdPki upgrade from before auth: an admin certificate of another CN is re-issued as root's, the CA and current member certificates are kept", async () => {
    const m = { name: "m1", ips: ["10.0.0.1"] };
    const member = issueMemberCert(ca, "unit", m);
    const oldAdmin = issueHostCert(ca, "unit bpfnet client", 3650); // the CN admin certificates had before
    const olds = {
      clusterName: "unit",
      members: [m],
      caPem: ca.certPem,
      caKeyPem: ca.keyPem,
      memberCerts: { m1: member.certPem },
      memberKeys: { m1: member.keyPem },
      clientCertPem: oldAdmin.certPem,
      clientKeyPem: oldAdmin.keyPem,
    };
    const news = { clusterName: "unit", members: [m] };
    expect((await etcdPkiProvider.diff!("unit-pki", olds, news)).changes).toBe(true);
    const outs = (await etcdPkiProvider.update!("unit-pki", olds, news)).outs as typeof olds;
    expect(outs.caPem).toBe(ca.certPem);
    expect(outs.memberCerts.m1).toBe(member.certPem);
    expect(certFacts(outs.clientCertPem, ca)).toMatchObject({ commonName: ETCD_ROOT_USER, signedByCa: true });
    // Once current, nothing changes.
    expect((await etcdPkiProvider.diff!("unit-pki", outs, news)).changes).toBe(false);
  });

  test("nearsExpiry: inside the window (or past) is due, outside is not", () => {
    const now = new Date("2026-11-30T00:00:00Z");
    expect(nearsExpiry(new Date("2026-12-20T00:00:00Z"), 30, now)).toBe(true);
    expect(nearsExpiry(new Date("2027-01-30T00:00:00Z"), 30, now)).toBe(false);
    expect(nearsExpiry(new Date("2026-11-29T00:00:00Z"), 0, now)).toBe(true);
  });

  test("reissueReason: rotation, a new CA, a wrong CN and expiry each re-issue; nothing else does", () => {
    const user = hostUserName(P, "h1", 4);
    const cert = issueHostCert(ca, user, 100);
    const olds = {
      connection: { endpoints: ["https://127.0.0.1:2379"] },
      networkPrefix: P,
      hostName: "h1",
      ca,
      rotation: "a",
      generation: 4,
      userName: user,
      roleName: hostRoleName(P, "h1"),
      agentConnection: { endpoints: ["https://127.0.0.1:2379"], certPem: cert.certPem, keyPem: cert.keyPem },
      notAfter: "",
      drift: "",
    };
    const now = new Date();
    const news = { connection: olds.connection, networkPrefix: P, hostName: "h1", ca, rotation: "a" };
    expect(reissueReason(olds, news, now)).toBeUndefined();
    expect(reissueReason(olds, { ...news, rotation: "b" }, now)).toBe("rotation requested");
    expect(reissueReason(olds, { ...news, ca: other }, now)).toBe("the CA changed");
    expect(reissueReason({ ...olds, generation: 3 }, news, now)).toBe("the user name changed");
    expect(reissueReason(olds, { ...news, renewBeforeDays: 100 }, now)).toMatch(/expires/);
    expect(reissueReason(olds, { ...news, ca: undefined }, now)).toBe("identity kind changed");
  });
});

describe("Network: which identity the agents get", () => {
  test("per-host unless asked, or for an existing etcd without an admin login", () => {
    expect(hostCredentialsMode({ members: [] })).toBe("per-host");
    expect(hostCredentialsMode({ existing: { endpoints: ["https://e:2379"] } })).toBe("shared");
    expect(hostCredentialsMode({ existing: { endpoints: ["https://e:2379"], username: "root", password: "pw" } })).toBe("per-host");
    expect(hostCredentialsMode({ members: [], hostCredentials: "shared" })).toBe("shared");
    for (const v of ["per host", "shared; rm -rf /", "$(id)", ""]) {
      expect(() => hostCredentialsMode({ members: [], hostCredentials: v as "shared" })).toThrow(`etcd.hostCredentials must be "per-host" or "shared", got ${JSON.stringify(v)}`);
    }
  });

  test("rotationOf: either trigger changing changes the value; none set leaves it unset", () => {
    expect(rotationOf(undefined, undefined)).toBeUndefined();
    const values = new Set([rotationOf("a", undefined), rotationOf(undefined, "a"), rotationOf("a", "b"), rotationOf("ab", undefined)]);
    expect(values.size).toBe(4);
  });
});

describe("EtcdHostAccess preview validation (hostile input)", () => {
  const base = { connection: { endpoints: ["https://127.0.0.1:2379"] }, networkPrefix: P, hostName: "h1" };
  const check = (inputs: Record<string, unknown>) => etcdHostAccessProvider.check!({}, inputs);
  const HOSTILE = ["h 1", "h1;touch /tmp/x", "$(touch /tmp/x)", "`id`", "h1\nrole: root", "..", "../h2", "h1'\"", "h1:root", ""];

  test.each(HOSTILE)("hostName %j is refused naming the field", async (v) => {
    const r = await check({ ...base, hostName: v });
    expect(r.failures).toEqual([expect.objectContaining({ property: "hostName", reason: expect.stringContaining(JSON.stringify(v)) })]);
    expect(hostAccessProblems(P, v)).toHaveLength(1);
  });

  test.each(["/bpfnet/dev ", "/bpfnet/dev;x", "/bpfnet/$(x)", "/bpfnet/`x`", "/bpfnet/dev\n", "/bpfnet/..", "bpfnet/dev", "/bpfnet/dev/", "/bpfnet:root"])(
    "networkPrefix %j is refused naming the field",
    async (v) => {
      const r = await check({ ...base, networkPrefix: v });
      expect(r.failures).toEqual([expect.objectContaining({ property: "networkPrefix", reason: expect.stringContaining(JSON.stringify(v)) })]);
    },
  );

  test("rotation is carried as given (it is only compared, never reaches a shell or a key); over 256 characters is refused", async () => {
    for (const v of ["2026-11-30 $(rm -rf /) `id`; '\"\n..", "x".repeat(256)]) {
      const r = await check({ ...base, rotation: v });
      expect(r.failures).toEqual([]);
      expect(r.inputs!.rotation).toBe(v);
    }
    expect((await check({ ...base, rotation: "x".repeat(257) })).failures).toEqual([expect.objectContaining({ property: "rotation" })]);
  });

  test("transport (a certificate for the agents' TLS) must be PEM blocks; hostile text is refused naming the field", async () => {
    const ca = generateCa("transport");
    const good = issueHostCert(ca, "transport", 1);
    expect((await check({ ...base, transport: good })).failures).toEqual([]);
    for (const v of ["not a pem", "$(id)", "`id`", `${good.certPem}\n; rm -rf /`, good.certPem.replace("MII", "M I I"), ""]) {
      const r = await check({ ...base, transport: { certPem: v, keyPem: good.keyPem } });
      expect(r.failures).toEqual([expect.objectContaining({ property: "transport", reason: expect.stringContaining("transport.certPem must be one PEM block") })]);
    }
  });

  test("validityDays and renewBeforeDays: whole days in range, renewal inside the lifetime", async () => {
    for (const [field, v] of [["validityDays", 0], ["validityDays", 1.5], ["validityDays", "365; rm"], ["renewBeforeDays", -1], ["validityDays", 99999]] as const) {
      const r = await check({ ...base, [field]: v });
      expect(r.failures).toEqual([expect.objectContaining({ property: field, reason: expect.stringContaining(JSON.stringify(v)) })]);
    }
    expect((await check({ ...base, validityDays: 30, renewBeforeDays: 30 })).failures).toEqual([expect.objectContaining({ property: "renewBeforeDays" })]);
    expect((await check({ ...base, validityDays: 30, renewBeforeDays: 29 })).failures).toEqual([]);
  });
});
