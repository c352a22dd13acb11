// The key layout: names, inverses, and isolation between networks with similar prefixes.
import {
  belongsTo,
  cidrFromKey,
  cidrKey,
  configKey,
  defaultPrefix,
  endpointKey,
  hostFromKey,
  hostKey,
  ipamCidrsDir,
  ipamHostsDir,
  networkRange,
  nodeKey,
  parseCidrRecord,
  parseHostRecord,
  prefixProblem,
} from "../../provider/etcd/keys";
import { rangeEnd } from "../../provider/etcd/etcdOps";

describe("key layout", () => {
  const p = defaultPrefix("dev");

  test("names", () => {
    expect(p).toBe("/bpfnet/dev");
    expect(configKey(p)).toBe("/bpfnet/dev/config");
    expect(hostKey(p, "node-1")).toBe("/bpfnet/dev/ipam/v1/hosts/node-1");
    expect(cidrKey(p, "10.244.3.0/24")).toBe("/bpfnet/dev/ipam/v1/cidrs/10.244.3.0_24");
    expect(nodeKey(p, "node-1")).toBe("/bpfnet/dev/state/nodes/v1/node-1");
    expect(endpointKey(p, "node-1", "c0ffee")).toBe("/bpfnet/dev/state/endpoints/v1/node-1/c0ffee");
  });

  test("inverses", () => {
    expect(cidrFromKey(p, cidrKey(p, "10.244.3.0/24"))).toBe("10.244.3.0/24");
    expect(hostFromKey(p, hostKey(p, "node-1"))).toBe("node-1");
    expect(cidrFromKey(p, "/bpfnet/dev/ipam/v1/cidrs/garbage")).toBeUndefined();
    expect(hostFromKey(p, ipamHostsDir(p))).toBeUndefined();
  });

  test("a network never matches a longer sibling prefix", () => {
    const a = "/bpfnet/a";
    const ab = "/bpfnet/ab";
    for (const k of [configKey(ab), hostKey(ab, "n"), cidrKey(ab, "10.0.0.0/24"), nodeKey(ab, "n"), endpointKey(ab, "n", "e")]) {
      expect(belongsTo(a, k)).toBe(false);
      expect(belongsTo(ab, k)).toBe(true);
      // The byte range a range read of network a covers: [a/, a0).
      expect(k >= networkRange(a) && Buffer.compare(Buffer.from(k), rangeEnd(networkRange(a))) < 0).toBe(false);
    }
    for (const k of [configKey(a), hostKey(a, "n"), cidrKey(a, "10.0.0.0/24")]) {
      expect(k >= networkRange(a) && Buffer.compare(Buffer.from(k), rangeEnd(networkRange(a))) < 0).toBe(true);
    }
    expect(ipamCidrsDir(a).startsWith(ipamCidrsDir(ab))).toBe(false);
  });

  test("range ends", () => {
    expect(rangeEnd("/bpfnet/a/").toString()).toBe("/bpfnet/a0");
    expect(rangeEnd("abc").toString()).toBe("abd");
  });

  test("prefix rules", () => {
    expect(prefixProblem("prefix", "/bpfnet/dev")).toBeUndefined();
    expect(prefixProblem("prefix", "/a")).toBeUndefined();
    for (const bad of ["", "/", "bpfnet", "/bpfnet/", "/bpfnet//dev", "/bpfnet/../x", "/bpf net", 7]) {
      expect(prefixProblem("prefix", bad)).toContain(`got ${JSON.stringify(bad)}`);
    }
  });

  test("records of an unknown schema are refused", () => {
    expect(parseHostRecord(JSON.stringify({ schema: 2, host: "h", cidr: "10.0.0.0/24", allocationId: "x" }))).toBeUndefined();
    expect(parseHostRecord("not json")).toBeUndefined();
    expect(parseCidrRecord(JSON.stringify({ schema: 1, host: "h", allocationId: "x", createdAt: "t" }))).toEqual({
      schema: 1,
      host: "h",
      allocationId: "x",
      createdAt: "t",
    });
  });
});
