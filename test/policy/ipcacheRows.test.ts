// The ipcache kept incrementally (node-agent/policy/ipcache.ts): every source claims its row and
// the strongest claim wins; the rows a change touched are reported so a pass can look at those
// alone. Checked against a reference that recomputes every row from the sources after each of
// thousands of random changes, and by replaying the touched rows into a mirror as the agents do.
import { IpcacheRows } from "../../node-agent/policy/ipcache";
import { diffKeys } from "../../node-agent/policy/plan";
import { CIDR_IDENTITY_BASE } from "../../node-agent/policy/identity";

const HOST = 1;
const REMOTE_NODE = 6;

describe("which claim wins", () => {
  test("an endpoint over a host address over a CIDR rule; this host's endpoints over records; the newer record", () => {
    const rows = new IpcacheRows();
    rows.setCidrIdentities(new Map([["10.9.0.0/16", CIDR_IDENTITY_BASE], ["10.9.0.5/32", CIDR_IDENTITY_BASE + 1]]));
    expect(rows.row("10.9.0.5/32")).toBe(CIDR_IDENTITY_BASE + 1);
    rows.setHostAddresses([], ["10.9.0.5"]);
    expect(rows.row("10.9.0.5/32")).toBe(REMOTE_NODE);
    rows.setHostAddresses(["10.9.0.5"], ["10.9.0.5"]);
    expect(rows.row("10.9.0.5/32")).toBe(HOST);
    rows.setRecord("/p/endpoints/v1/h2/a", { ip: "10.9.0.5", identity: 300 }, 10);
    expect(rows.row("10.9.0.5/32")).toBe(300);
    // The address handed to a new endpoint before the old record went: the newer record wins,
    // and when it goes, the older one holds the row again.
    rows.setRecord("/p/endpoints/v1/h3/b", { ip: "10.9.0.5", identity: 301 }, 12);
    expect(rows.row("10.9.0.5/32")).toBe(301);
    rows.setRecord("/p/endpoints/v1/h2/a", { ip: "10.9.0.5", identity: 300 }, 11);
    expect(rows.row("10.9.0.5/32")).toBe(301);
    rows.setLocalEndpoints([{ ip: "10.9.0.5", identity: 302 }]);
    expect(rows.row("10.9.0.5/32")).toBe(302);
    rows.setLocalEndpoints([]);
    rows.setRecord("/p/endpoints/v1/h3/b", undefined, 13);
    expect(rows.row("10.9.0.5/32")).toBe(300);
    rows.setRecord("/p/endpoints/v1/h2/a", undefined, 14);
    rows.setHostAddresses([], []);
    expect(rows.row("10.9.0.5/32")).toBe(CIDR_IDENTITY_BASE + 1);
    rows.setCidrIdentities(new Map());
    expect(rows.row("10.9.0.5/32")).toBeUndefined();
    expect(rows.size).toBe(0);
  });

  test("a record moving to another address leaves its old row", () => {
    const rows = new IpcacheRows();
    rows.setRecord("/p/endpoints/v1/h2/a", { ip: "10.9.0.5", identity: 300 }, 3);
    rows.takeChanged();
    rows.setRecord("/p/endpoints/v1/h2/a", { ip: "10.9.0.6", identity: 300 }, 4);
    expect([...rows.takeChanged()].sort()).toEqual(["10.9.0.5/32", "10.9.0.6/32"]);
    expect(Object.fromEntries(rows.rows())).toEqual({ "10.9.0.6/32": 300 });
  });

  test("hostile addresses and prefixes make no row; a record key cannot pose as a group's source", () => {
    const rows = new IpcacheRows();
    for (const ip of ["10.0.0.1; rm -rf /", "$(reboot)", "`id`", "10.0.0.1\n10.0.0.2", "../10.0.0.1", "'10.0.0.1'", "10.0.0.256", ""]) {
      rows.setRecord(`/p/endpoints/v1/h/${ip}`, { ip, identity: 300 }, 1);
      rows.setLocalEndpoints([{ ip, identity: 301 }]);
      rows.setHostAddresses([ip], [ip]);
      rows.setCidrIdentities(new Map([[ip, CIDR_IDENTITY_BASE], [`${ip}/24`, CIDR_IDENTITY_BASE]]));
    }
    rows.setCidrIdentities(new Map([["10.0.0.1/24", CIDR_IDENTITY_BASE]])); // host bits set: not a prefix
    expect(rows.size).toBe(0);
    rows.setHostAddresses(["10.0.0.1"], []);
    rows.setRecord("\0localHost 10.0.0.1/32", undefined, 2); // releasing a source it never claimed
    rows.setRecord("\0localHost 10.0.0.1/32", { ip: "10.0.0.1", identity: 300 }, 3); // overriding it
    expect(rows.row("10.0.0.1/32")).toBe(HOST);
  });

  test("the very host arrays of the last call touch nothing; new ones are compared", () => {
    const rows = new IpcacheRows();
    const local = ["10.9.0.1"];
    const remote = ["10.9.0.2", "10.9.0.3"];
    rows.setHostAddresses(local, remote);
    expect([...rows.takeChanged()].sort()).toEqual(["10.9.0.1/32", "10.9.0.2/32", "10.9.0.3/32"]);
    rows.setHostAddresses(local, remote);
    expect(rows.takeChanged().size).toBe(0);
    rows.setHostAddresses(local, ["10.9.0.2"]);
    expect([...rows.takeChanged()]).toEqual(["10.9.0.3/32"]);
    expect(Object.fromEntries(rows.rows())).toEqual({ "10.9.0.1/32": HOST, "10.9.0.2/32": REMOTE_NODE });
  });

  test("every kind of source at once: the last of two local endpoints on one address, a local host address over a remote one, a remote host over a CIDR rule", () => {
    const rows = new IpcacheRows();
    rows.setCidrIdentities(new Map([["10.178.2.1/32", CIDR_IDENTITY_BASE], ["0.0.0.0/0", CIDR_IDENTITY_BASE + 1]]));
    rows.setHostAddresses(["10.178.1.1"], ["10.178.1.1", "10.178.2.1"]);
    rows.setLocalEndpoints([{ ip: "10.178.1.5", identity: 300 }, { ip: "10.178.1.5", identity: 301 }]);
    expect(Object.fromEntries(rows.rows())).toEqual({ "10.178.1.5/32": 301, "10.178.1.1/32": HOST, "10.178.2.1/32": REMOTE_NODE, "0.0.0.0/0": CIDR_IDENTITY_BASE + 1 });
  });
});

describe("incremental passes equal full ones", () => {
  /** A seeded generator, so a failure replays. */
  function rng(seed: number): () => number {
    let x = seed >>> 0 || 1;
    return () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
  }

  test("5,000 random changes: rows() matches a recompute from the sources, and replaying the touched rows keeps a mirror equal", () => {
    const r = rng(0xb9f);
    const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
    const ips = Array.from({ length: 12 }, (_, i) => `10.7.0.${i + 1}`);
    const cidrs = ["10.7.0.0/24", "10.7.0.1/32", "10.7.0.2/32", "0.0.0.0/0"];
    // The sources as plain data: the reference recomputes every row from them.
    const records = new Map<string, { ip: string; identity: number; rev: number }>();
    let local: { ip: string; identity: number }[] = [];
    let hosts = { local: [] as string[], remote: [] as string[] };
    let cidrIds = new Map<string, number>();
    const reference = () => {
      const best = new Map<string, [number, number, string, number]>(); // rank, order, source, identity
      const offer = (cidr: string, rank: number, order: number, source: string, identity: number) => {
        const b = best.get(cidr);
        if (!b || rank > b[0] || (rank === b[0] && (order > b[1] || (order === b[1] && source > b[2])))) best.set(cidr, [rank, order, source, identity]);
      };
      for (const [c, id] of cidrIds) offer(c, 0, 0, `c${c}`, id);
      for (const ip of hosts.remote) offer(`${ip}/32`, 1, 0, "r", REMOTE_NODE);
      for (const ip of hosts.local) offer(`${ip}/32`, 2, 0, "h", HOST);
      for (const [k, e] of records) offer(`${e.ip}/32`, 3, e.rev, k, e.identity);
      const lastLocal = new Map(local.map((e) => [e.ip, e.identity]));
      for (const [ip, id] of lastLocal) offer(`${ip}/32`, 4, 0, "l", id);
      return new Map([...best].map(([c, b]) => [c, b[3]]));
    };
    const rows = new IpcacheRows();
    const mirror = new Map<string, number>();
    let rev = 1;
    for (let step = 0; step < 5000; step++) {
      const what = r();
      if (what < 0.6) {
        const key = `/p/endpoints/v1/h${Math.floor(r() * 4)}/e${Math.floor(r() * 6)}`;
        if (r() < 0.3) {
          records.delete(key);
          rows.setRecord(key, undefined, ++rev);
        } else {
          const e = { ip: pick(ips), identity: 256 + Math.floor(r() * 4), rev: ++rev };
          records.set(key, e);
          rows.setRecord(key, e, e.rev);
        }
      } else if (what < 0.75) {
        local = ips.filter(() => r() < 0.15).map((ip) => ({ ip, identity: 300 + Math.floor(r() * 3) }));
        rows.setLocalEndpoints(local);
      } else if (what < 0.9) {
        hosts = { local: ips.filter(() => r() < 0.1), remote: ips.filter(() => r() < 0.2) };
        rows.setHostAddresses(hosts.local, hosts.remote);
      } else {
        cidrIds = new Map(cidrs.filter(() => r() < 0.5).map((c) => [c, CIDR_IDENTITY_BASE + Math.floor(r() * 3)]));
        rows.setCidrIdentities(cidrIds);
      }
      const want = reference();
      expect(rows.rows()).toEqual(want);
      if (r() < 0.5) {
        const d = diffKeys(rows.takeChanged(), mirror, (k) => rows.row(k), (a, b) => a === b);
        for (const [k, v] of d.upserts) mirror.set(k, v);
        for (const k of d.deletes) mirror.delete(k);
        expect(mirror).toEqual(want);
      }
    }
  });
});
