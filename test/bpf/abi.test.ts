/**
 * The TypeScript ABI (bpf/abi.ts) against the C one: struct layouts against
 * the BTF of each built object, constants against bpf/lib/abi.h compiled by
 * the C compiler. Any drift between the two fails here.
 */
import { execFileSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import {
  ABI_CONSTANTS,
  DATAPATH_PROGRAMS,
  DatapathProgram,
  LAYOUTS,
  objectPath,
  reasonName,
  StructLayout,
  DropReason,
  PolicyAction,
  PolicyDirection,
  Verdict,
} from "../../bpf";
import {
  decodeConfig,
  decodeCtKey,
  decodeCtValue,
  decodeIpcacheKey,
  decodePolicyKey,
  decodePolicyValue,
  encodeCtKey,
  encodeIpcacheEntry,
  encodeIpcacheKey,
  encodePolicyKey,
  encodePolicyValue,
  decodeEndpoint,
  decodeMetricsKey,
  decodeTunnelKey,
  encodeConfig,
  encodeEndpoint,
  encodeEndpointKey,
  encodeMetricsKey,
  encodeTunnelKey,
  decodeVerdictKey,
  encodeVerdictKey,
  sumPerCpuCounters,
} from "../../bpf/abi";
import { ensureBuilt, REPO_ROOT } from "./support/build";

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

function btfTypes(object: string): Map<number, BtfType> {
  const out = execFileSync("bpftool", ["-j", "btf", "dump", "file", object, "format", "raw"], { encoding: "utf8" });
  const types = (JSON.parse(out) as { types: BtfType[] }).types;
  return new Map(types.map((t) => [t.id, t]));
}

function btfSize(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id);
  if (!t) throw new Error(`BTF type ${id} missing`);
  switch (t.kind) {
    case "TYPEDEF":
    case "CONST":
    case "VOLATILE":
      return btfSize(types, t.type_id!);
    case "ARRAY":
      return btfSize(types, t.type_id!) * t.nr_elems!;
    default:
      if (t.size === undefined) throw new Error(`BTF type ${id} (${t.kind}) has no size`);
      return t.size;
  }
}

/** The struct as the object's BTF describes it, in the same shape as a StructLayout. */
function btfLayout(types: Map<number, BtfType>, name: string): StructLayout {
  const struct = [...types.values()].find((t) => t.kind === "STRUCT" && t.name === name);
  if (!struct) throw new Error(`struct ${name} not in BTF`);
  const fields: StructLayout["fields"] = {};
  for (const m of struct.members!) fields[m.name] = { offset: m.bits_offset / 8, size: btfSize(types, m.type_id) };
  return { name, size: struct.size!, fields };
}

beforeAll(ensureBuilt);

describe.each(Object.keys(DATAPATH_PROGRAMS) as DatapathProgram[])("BTF of %s object", (kind) => {
  let cached: Map<number, BtfType> | undefined;
  const types = () => (cached ??= btfTypes(objectPath(kind)));

  test.each(Object.entries(LAYOUTS))("layout %s matches", (_key, layout) => {
    expect(layout).toEqual(btfLayout(types(), layout.name));
  });
});

test("layouts cover every byte of each struct, without overlap", () => {
  for (const layout of Object.values(LAYOUTS)) {
    const covered = new Array<number>(layout.size).fill(0);
    for (const f of Object.values(layout.fields)) for (let i = f.offset; i < f.offset + f.size; i++) covered[i]++;
    expect({ name: layout.name, covered }).toEqual({ name: layout.name, covered: new Array(layout.size).fill(1) });
  }
});

describe("constants", () => {
  const dir = mkdtempSync(join(tmpdir(), "bftabi-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("every TS constant has the value the C header gives it", () => {
    // A missing name fails to compile; a different value fails the comparison.
    const names = Object.keys(ABI_CONSTANTS);
    const source = [
      "#include <stdio.h>",
      '#include "lib/abi.h"',
      "int main(void) {",
      '  printf("{");',
      ...names.map((n, i) => `  printf("\\"${n}\\": %lld${i + 1 < names.length ? "," : ""}", (long long)(${n}));`),
      '  printf("}\\n");',
      "  return 0;",
      "}",
    ].join("\n");
    writeFileSync(join(dir, "constants.c"), source);
    execFileSync("cc", ["-I", join(REPO_ROOT, "bpf"), "-o", join(dir, "constants"), join(dir, "constants.c")]);
    const fromC = JSON.parse(execFileSync(join(dir, "constants"), { encoding: "utf8" }));
    expect(fromC).toEqual(ABI_CONSTANTS);
  });

  test("every userspace-visible #define of abi.h is mirrored in TS", () => {
    const header = readFileSync(join(REPO_ROOT, "bpf", "lib", "abi.h"), "utf8");
    const defined = [...header.matchAll(/^#define\s+((?:BPFNET|METRIC|REASON|DROP)_\w+)\s/gm)].map((m) => m[1]);
    expect(defined.filter((n) => n !== "BPFNET_ABI_H").sort()).toEqual(Object.keys(ABI_CONSTANTS).sort());
  });
});

describe("encoders", () => {
  test("endpoint value puts each field at its C offset", () => {
    const buf = encodeEndpoint({ ifindex: 0x01020304, endpointId: 9, mac: "02:aa:bb:cc:dd:ee", nodeMac: "0a:00:00:00:00:01" });
    expect(buf.length).toBe(32);
    expect(buf.readUInt32LE(0)).toBe(0x01020304);
    expect(buf.readUInt32LE(4)).toBe(9);
    expect(buf.subarray(8, 14).toString("hex")).toBe("02aabbccddee");
    expect(buf.subarray(14, 20).toString("hex")).toBe("0a0000000001");
    expect(buf.subarray(20).every((b) => b === 0)).toBe(true);
    expect(decodeEndpoint(buf)).toEqual({ ifindex: 0x01020304, endpointId: 9, mac: "02:aa:bb:cc:dd:ee", nodeMac: "0a:00:00:00:00:01", flags: 0 });
  });

  test("IPv4 keys are in network order", () => {
    expect(encodeEndpointKey("10.1.2.3").toString("hex")).toBe("0a010203");
    const tkey = encodeTunnelKey("10.251.128.0/17");
    expect(tkey.readUInt32LE(0)).toBe(17);
    expect(tkey.subarray(4).toString("hex")).toBe("0afb8000");
    expect(decodeTunnelKey(tkey)).toBe("10.251.128.0/17");
  });

  test("bad input is rejected before it reaches a map", () => {
    expect(() => encodeEndpointKey("10.1.2")).toThrow(TypeError);
    expect(() => encodeEndpointKey("10.1.2.256")).toThrow(TypeError);
    expect(() => encodeTunnelKey("10.1.2.3/24")).toThrow(/host bits/);
    expect(() => encodeTunnelKey("10.1.2.0/33")).toThrow(TypeError);
    expect(() => encodeEndpoint({ ifindex: 1, endpointId: -1, mac: "02:00:00:00:00:01", nodeMac: "02:00:00:00:00:02" })).toThrow(RangeError);
    expect(() => encodeEndpoint({ ifindex: 1, endpointId: 1, mac: "02:00:00:00:00", nodeMac: "02:00:00:00:00:02" })).toThrow(TypeError);
    expect(() => encodeConfig({ mode: "vxlan", vni: 1 << 24, vxlanIfindex: 3, hostIfindex: 4 })).toThrow(RangeError);
    expect(() => encodeConfig({ mode: "vxlan", vni: 5, vxlanIfindex: 0, hostIfindex: 4 })).toThrow(/vxlanIfindex/);
  });

  test("config round-trips and stores mode codes", () => {
    const buf = encodeConfig({ mode: "l3", vni: 77, vxlanIfindex: 0, hostIfindex: 12 });
    expect(buf.readUInt32LE(0)).toBe(ABI_CONSTANTS.BPFNET_MODE_L3);
    expect(decodeConfig(buf)).toEqual({ mode: "l3", vni: 77, vxlanIfindex: 0, hostIfindex: 12, gateway: "0.0.0.0", flags: 0, ctLifetimeTcp: 0, ctLifetimeShort: 0 });
    expect(decodeConfig(Buffer.alloc(32)).mode).toBe("none");
  });

  test("the gateway address is stored in network order in what was padding", () => {
    const buf = encodeConfig({ mode: "vxlan", vni: 7, vxlanIfindex: 3, hostIfindex: 4, gateway: "10.80.146.1" });
    expect(buf.subarray(20, 24).toString("hex")).toBe("0a509201");
    expect(buf.subarray(24).every((b) => b === 0)).toBe(true); // CT lifetimes unset: the datapath's defaults
    expect(decodeConfig(buf).gateway).toBe("10.80.146.1");
    // A slot written by an agent from before the field: its padding was zero, so the gateway reads as unset.
    expect(decodeConfig(Buffer.alloc(32)).gateway).toBe("0.0.0.0");
    expect(() => encodeConfig({ mode: "vxlan", vni: 7, vxlanIfindex: 3, hostIfindex: 4, gateway: "10.80.146" })).toThrow(TypeError);
  });

  test("CT lifetimes take the last two words (once padding), 0 meaning the default", () => {
    const buf = encodeConfig({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 4, ctLifetimeTcp: 3600, ctLifetimeShort: 30 });
    expect([buf.readUInt32LE(24), buf.readUInt32LE(28)]).toEqual([3600, 30]);
    expect(decodeConfig(buf)).toMatchObject({ ctLifetimeTcp: 3600, ctLifetimeShort: 30 });
    expect(() => encodeConfig({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex: 4, ctLifetimeTcp: -1 })).toThrow(RangeError);
  });

  test("policy keys: ids in host order, the port in network order, wildcards as zeros", () => {
    const key = encodePolicyKey({ endpointId: 5, identity: 300, dport: 8080, proto: 6, direction: PolicyDirection.INGRESS });
    expect(key.toString("hex")).toBe("05000000" + "2c010000" + "1f90" + "06" + "01");
    expect(decodePolicyKey(key)).toEqual({ endpointId: 5, identity: 300, dport: 8080, proto: 6, direction: 1 });
    const value = encodePolicyValue({ action: PolicyAction.REDIRECT, proxyPort: 15001, ruleId: 9 });
    expect(value.toString("hex")).toBe("03" + "00" + "3a99" + "09000000");
    expect(decodePolicyValue(value)).toEqual({ action: 3, proxyPort: 15001, ruleId: 9 });
    // Hostile or careless values never reach the map.
    expect(() => encodePolicyKey({ endpointId: 5, identity: 0, dport: 70000, proto: 6, direction: 1 })).toThrow(RangeError);
    expect(() => encodePolicyKey({ endpointId: 5, identity: 0, dport: 80, proto: 256, direction: 1 })).toThrow(RangeError);
    expect(() => encodePolicyKey({ endpointId: 5, identity: 0, dport: 80, proto: 6, direction: 3 })).toThrow(RangeError);
    expect(() => encodePolicyKey({ endpointId: -1, identity: 0, dport: 80, proto: 6, direction: 1 })).toThrow(RangeError);
    expect(() => encodePolicyValue({ action: 4, proxyPort: 0, ruleId: 0 })).toThrow(RangeError);
    expect(() => encodePolicyValue({ action: PolicyAction.REDIRECT, proxyPort: 0, ruleId: 0 })).toThrow(/proxyPort/);
  });

  test("ipcache keys are LPM keys; identity 0 (any) is refused as an address's identity", () => {
    expect(encodeIpcacheKey("10.1.0.0/16").toString("hex")).toBe("10000000" + "0a010000");
    expect(decodeIpcacheKey(encodeIpcacheKey("10.1.2.3/32"))).toBe("10.1.2.3/32");
    expect(encodeIpcacheEntry(256).toString("hex")).toBe("00010000" + "00000000");
    expect(() => encodeIpcacheEntry(0)).toThrow(RangeError);
    expect(() => encodeIpcacheKey("10.1.2.3/16")).toThrow(/host bits/);
  });

  test("CT keys hold the tuple in network order and the hook", () => {
    const key = encodeCtKey({ saddr: "10.0.0.1", daddr: "10.0.0.2", sport: 40000, dport: 80, proto: 6, hook: "ingress" });
    expect(key.toString("hex")).toBe("0a000001" + "0a000002" + "9c40" + "0050" + "06" + "01" + "0000");
    expect(decodeCtKey(key)).toEqual({ saddr: "10.0.0.1", daddr: "10.0.0.2", sport: 40000, dport: 80, proto: 6, hook: "ingress" });
    const value = Buffer.alloc(24);
    value.writeBigUInt64LE(123456789n, 0);
    value.writeUInt32LE(300, 8);
    value[20] = 0x12; // SYN|ACK
    value[21] = ABI_CONSTANTS.BPFNET_CT_SEEN_REPLY;
    expect(decodeCtValue(value)).toEqual({ expiresNs: 123456789n, srcIdentity: 300, revNatIndex: 0, proxyPort: 0, backendId: 0, tcpFlags: 0x12, seenReply: true, closing: false });
    expect(() => encodeCtKey({ saddr: "10.0.0.1", daddr: "10.0.0.2", sport: 1, dport: 2, proto: 6, hook: "sideways" as never })).toThrow(TypeError);
  });

  test("verdict keys round-trip; an unknown verdict is refused both ways", () => {
    const key = encodeVerdictKey({ endpointId: 5, ruleId: 12, direction: 2, verdict: "audit" });
    expect(key.toString("hex")).toBe("05000000" + "0c000000" + "02" + "04" + "0000");
    expect(decodeVerdictKey(key)).toEqual({ endpointId: 5, ruleId: 12, direction: 2, verdict: "audit" });
    expect(() => encodeVerdictKey({ endpointId: 5, ruleId: 12, direction: 2, verdict: "maybe" as never })).toThrow(TypeError);
    key[9] = 9;
    expect(() => decodeVerdictKey(key)).toThrow(RangeError);
  });

  test("metrics keys store drop reasons by absolute value and decode them back", () => {
    const key = encodeMetricsKey({ id: 5, direction: "egress", reason: DropReason.NO_ROUTE });
    expect([...key]).toEqual([5, 0, 0, 0, ABI_CONSTANTS.METRIC_EGRESS, 132, 0, 0]);
    expect(decodeMetricsKey(key)).toEqual({ id: 5, direction: "egress", reason: DropReason.NO_ROUTE });
    expect(decodeMetricsKey(encodeMetricsKey({ id: 5, direction: "ingress", reason: 1 })).reason).toBe(1);
    expect(reasonName(DropReason.UNKNOWN_ENDPOINT)).toBe("unknown-endpoint");
    expect(reasonName(0)).toBe("forwarded");
    expect(decodeMetricsKey(encodeMetricsKey({ id: 5, direction: "ingress", reason: Verdict.POLICY_AUDIT })).reason).toBe(Verdict.POLICY_AUDIT);
    expect(reasonName(Verdict.POLICY_AUDIT)).toBe("policy-audit");
    expect(reasonName(DropReason.POLICY_DENIED)).toBe("policy-denied");
  });

  test("per-CPU counters are summed over every CPU slot", () => {
    const buf = Buffer.alloc(3 * 16);
    [
      [1n, 100n],
      [2n, 200n],
      [4n, 400n],
    ].forEach(([p, b], cpu) => {
      buf.writeBigUInt64LE(p, cpu * 16);
      buf.writeBigUInt64LE(b, cpu * 16 + 8);
    });
    expect(sumPerCpuCounters(buf)).toEqual({ packets: 7n, bytes: 700n });
  });
});
