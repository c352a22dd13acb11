// Pure IPv4/CIDR arithmetic.
import {
  blockSize,
  canonicalCidr,
  containsAddress,
  containsCidr,
  formatCidr,
  formatIpv4,
  gatewayIp,
  lastAddress,
  nthSubnet,
  overlaps,
  parseCidr,
  parseCidrLoose,
  parseIpv4,
  subnetCount,
  subnetIndex,
} from "../../provider/ipam/cidr";
import { fnv1a, pickFree } from "../../provider/ipam/ipamStore";

const c = (s: string) => parseCidr(s)!;

describe("IPv4 parsing", () => {
  test.each([
    ["0.0.0.0", 0],
    ["10.0.0.1", 0x0a000001],
    ["255.255.255.255", 0xffffffff],
    ["192.168.1.10", 0xc0a8010a],
  ])("%s", (text, n) => {
    expect(parseIpv4(text)).toBe(n);
    expect(formatIpv4(n)).toBe(text);
  });

  test.each(["", "10.0.0", "10.0.0.0.0", "256.0.0.1", "10.0.0.-1", "010.0.0.1", "10.0.0.1 ", "a.b.c.d", "1e1.0.0.1"])("rejects %j", (text) => {
    expect(parseIpv4(text)).toBeUndefined();
  });
});

describe("CIDR parsing", () => {
  test("aligned blocks parse; host bits are reported", () => {
    expect(parseCidr("10.0.0.0/8")).toEqual({ base: 0x0a000000, prefix: 8 });
    expect(parseCidr("0.0.0.0/0")).toEqual({ base: 0, prefix: 0 });
    expect(parseCidr("10.1.2.3/32")).toEqual({ base: 0x0a010203, prefix: 32 });
    expect(parseCidr("10.0.0.1/16")).toBeUndefined();
    expect(parseCidrLoose("10.0.0.1/16")).toMatchObject({ base: 0x0a000000, prefix: 16, hostBitsSet: true });
  });

  test.each(["10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/-1", "10.0.0.0/16/1", "/16", "10.0.0.0/1.5"])("rejects %j", (text) => {
    expect(parseCidrLoose(text)).toBeUndefined();
  });

  test("canonical text", () => {
    expect(canonicalCidr("10.244.0.0/16")).toBe("10.244.0.0/16");
    expect(canonicalCidr("10.244.0.1/16")).toBeUndefined();
    expect(formatCidr(c("172.16.0.0/12"))).toBe("172.16.0.0/12");
  });
});

describe("block arithmetic", () => {
  test("sizes without 32-bit shift overflow", () => {
    expect(blockSize(0)).toBe(2 ** 32);
    expect(blockSize(24)).toBe(256);
    expect(lastAddress(c("0.0.0.0/0"))).toBe(0xffffffff);
    expect(formatIpv4(lastAddress(c("10.0.0.0/8")))).toBe("10.255.255.255");
  });

  test("containment and overlap", () => {
    expect(containsCidr(c("10.0.0.0/8"), c("10.3.0.0/16"))).toBe(true);
    expect(containsCidr(c("10.3.0.0/16"), c("10.0.0.0/8"))).toBe(false);
    expect(containsAddress(c("192.168.1.0/24"), parseIpv4("192.168.1.255")!)).toBe(true);
    expect(containsAddress(c("192.168.1.0/24"), parseIpv4("192.168.2.0")!)).toBe(false);
    expect(overlaps(c("10.0.0.0/16"), c("10.0.255.0/24"))).toBe(true);
    expect(overlaps(c("10.0.0.0/16"), c("10.1.0.0/16"))).toBe(false);
    expect(overlaps(c("0.0.0.0/0"), c("255.255.255.255/32"))).toBe(true);
  });

  test("host subnets of a pool", () => {
    const pool = c("10.244.0.0/16");
    expect(subnetCount(pool, 24)).toBe(256);
    expect(formatCidr(nthSubnet(pool, 24, 0))).toBe("10.244.0.0/24");
    expect(formatCidr(nthSubnet(pool, 24, 255))).toBe("10.244.255.0/24");
    expect(subnetIndex(pool, 24, c("10.244.7.0/24"))).toBe(7);
    expect(subnetIndex(pool, 24, c("10.244.7.0/25"))).toBeUndefined();
    expect(subnetIndex(pool, 24, c("10.245.0.0/24"))).toBeUndefined();
    expect(subnetCount(c("128.0.0.0/1"), 30)).toBe(2 ** 29);
    expect(formatCidr(nthSubnet(c("128.0.0.0/1"), 30, 2 ** 29 - 1))).toBe("255.255.255.252/30");
  });

  test("gateway is the first usable address", () => {
    expect(gatewayIp(c("10.244.3.0/24"))).toBe("10.244.3.1");
    expect(gatewayIp(c("10.0.0.252/30"))).toBe("10.0.0.253");
  });
});

describe("candidate choice", () => {
  test("first try hashes the host; later tries avoid used indices; full pool gives none", () => {
    const used = new Set<number>();
    expect(pickFree(used, 256, "node-1", 1)).toBe(fnv1a("node-1") % 256);
    for (let i = 0; i < 255; i++) used.add(i);
    expect(pickFree(used, 256, "x", 2)).toBe(255);
    used.add(255);
    expect(pickFree(used, 256, "x", 2)).toBeUndefined();
  });

  test("a sparse huge pool is probed, not enumerated", () => {
    const t0 = Date.now();
    const i = pickFree(new Set([1, 2, 3]), 2 ** 29, "h", 2);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(Date.now() - t0).toBeLessThan(50);
  });
});

test("parseIpv4 (one pass over the characters) agrees with the split-and-regex rule on 200,000 generated strings", () => {
  const octet = /^(0|[1-9][0-9]{0,2})$/;
  const reference = (text: string) => {
    const parts = text.split(".");
    if (parts.length !== 4 || parts.some((p) => !octet.test(p) || Number(p) > 255)) return undefined;
    return parts.reduce((n, p) => n * 256 + Number(p), 0);
  };
  let seed = 12345;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const alphabet = "0123456789.........a -\n$`;";
  let valid = 0;
  for (let i = 0; i < 200_000; i++) {
    const text =
      i % 2
        ? Array.from({ length: Math.floor(random() * 17) }, () => alphabet[Math.floor(random() * alphabet.length)]).join("")
        : Array.from({ length: 4 }, () => String(Math.floor(random() * 300))).join(".");
    const want = reference(text);
    if (want !== undefined) valid++;
    if (parseIpv4(text) !== want) throw new Error(`parseIpv4(${JSON.stringify(text)}) = ${parseIpv4(text)}, the rule says ${want}`);
  }
  expect(valid).toBeGreaterThan(10_000); // both kinds of input were exercised
});
