// Pure validation: every bad input gets a message naming the field and the value.
import { checkAllocationSpec } from "../../provider/ipam/allocationSpec";
import { clientOptions, connectionProblems, normalizeEndpoints } from "../../provider/etcd/etcdClient";
import { checkNetworkSpec, NetworkSpecInputs } from "../../provider/network/networkSpec";
import { UNKNOWN } from "../../provider/common/unknown";

const base: NetworkSpecInputs = { networkName: "dev", mode: "vxlan", clusterCidr: "10.244.0.0/16" };

describe("network spec defaults", () => {
  test("vxlan", () => {
    const { spec, failures } = checkNetworkSpec(base);
    expect(failures).toEqual([]);
    expect(spec).toEqual({
      prefix: "/bpfnet/dev",
      mode: "vxlan",
      clusterCidr: "10.244.0.0/16",
      hostPrefixLength: 24,
      vni: 42,
      vxlanPort: 8472,
      mtu: 1450,
      underlayMtu: 1500,
      underlayCidrs: [],
      hostAddresses: [],
    });
  });

  test("l3 keeps the underlay MTU; jumbo underlay raises the vxlan default", () => {
    expect(checkNetworkSpec({ ...base, mode: "l3" }).spec!.mtu).toBe(1500);
    expect(checkNetworkSpec({ ...base, underlayMtu: 9000 }).spec!.mtu).toBe(8950);
  });

  test("explicit prefix wins over the network name", () => {
    expect(checkNetworkSpec({ ...base, prefix: "/org/net/staging" }).spec!.prefix).toBe("/org/net/staging");
  });

  test("a full, valid spec", () => {
    const { spec, failures } = checkNetworkSpec({
      ...base,
      hostPrefixLength: 26,
      vni: 16777215,
      vxlanPort: 4789,
      mtu: 1400,
      serviceCidr: "10.96.0.0/12",
      underlayCidrs: ["192.168.50.0/24"],
      hostAddresses: ["192.168.50.11", "192.168.50.12"],
    });
    expect(failures).toEqual([]);
    expect(spec).toMatchObject({ hostPrefixLength: 26, vni: 16777215, vxlanPort: 4789, mtu: 1400, serviceCidr: "10.96.0.0/12" });
  });
});

describe("network spec rejections", () => {
  const cases: [string, NetworkSpecInputs, string, string][] = [
    ["missing name", { mode: "vxlan", clusterCidr: "10.0.0.0/16" }, "networkName", "networkName or prefix is required"],
    [
      "bad name",
      { ...base, networkName: "dev/x" },
      "networkName",
      `networkName must be 1-253 characters of letters, digits, ".", "_" or "-", starting and ending with a letter or digit, got "dev/x"`,
    ],
    [
      "bad prefix",
      { ...base, prefix: "/bpfnet/dev/" },
      "prefix",
      `prefix must be an absolute etcd key prefix like "/bpfnet/dev" (segments of letters, digits, ".", "_", "-"; no trailing "/"), got "/bpfnet/dev/"`,
    ],
    ["relative prefix", { ...base, prefix: "bpfnet/dev" }, "prefix", expect.stringContaining(`got "bpfnet/dev"`) as unknown as string],
    ["mode", { ...base, mode: "gre" }, "mode", `mode must be "vxlan" or "l3", got "gre"`],
    ["missing mode", { networkName: "dev", clusterCidr: "10.0.0.0/16" }, "mode", `mode is required: "vxlan" or "l3"`],
    ["missing cluster CIDR", { networkName: "dev", mode: "l3" }, "clusterCidr", `clusterCidr is required, e.g. "10.244.0.0/16"`],
    ["malformed cluster CIDR", { ...base, clusterCidr: "10.244.0.0/33" }, "clusterCidr", `clusterCidr must be an IPv4 CIDR like "10.0.0.0/16", got "10.244.0.0/33"`],
    ["cluster CIDR without length", { ...base, clusterCidr: "10.244.0.0" }, "clusterCidr", `clusterCidr must be an IPv4 CIDR like "10.0.0.0/16", got "10.244.0.0"`],
    [
      "misaligned cluster CIDR",
      { ...base, clusterCidr: "10.244.1.0/16" },
      "clusterCidr",
      `clusterCidr "10.244.1.0/16" is not aligned: host bits are set past /16 (did you mean "10.244.0.0/16"?)`,
    ],
    [
      "host prefix not longer",
      { ...base, hostPrefixLength: 16 },
      "hostPrefixLength",
      `hostPrefixLength 16 must be longer than the clusterCidr "10.244.0.0/16" prefix /16`,
    ],
    [
      "host prefix too long",
      { ...base, hostPrefixLength: 31 },
      "hostPrefixLength",
      `hostPrefixLength 31 is longer than /30: a host subnet needs a network, a gateway, a pod and a broadcast address`,
    ],
    ["host prefix not an integer", { ...base, hostPrefixLength: 24.5 }, "hostPrefixLength", `hostPrefixLength must be an integer prefix length, got 24.5`],
    [
      "pool too small",
      { ...base, clusterCidr: "10.244.0.0/23", hostPrefixLength: 24 },
      "hostPrefixLength",
      `hostPrefixLength 24 leaves 2 host subnets in clusterCidr "10.244.0.0/23"; at least 4 are required`,
    ],
    ["vni zero", { ...base, vni: 0 }, "vni", `vni must be an integer in 1-16777215, got 0`],
    ["vni too big", { ...base, vni: 16777216 }, "vni", `vni must be an integer in 1-16777215, got 16777216`],
    ["port", { ...base, vxlanPort: 70000 }, "vxlanPort", `vxlanPort must be an integer in 1-65535, got 70000`],
    ["port as text", { ...base, vxlanPort: "8472" as unknown as number }, "vxlanPort", `vxlanPort must be an integer in 1-65535, got "8472"`],
    [
      "vxlan MTU over the overhead",
      { ...base, mtu: 1500 },
      "mtu",
      `mtu 1500 does not fit mode "vxlan": underlayMtu 1500 minus 50 bytes of VXLAN overhead leaves at most 1450`,
    ],
    ["l3 MTU over the underlay", { ...base, mode: "l3", mtu: 1501 }, "mtu", `mtu 1501 does not fit mode "l3": underlayMtu 1500 leaves at most 1500`],
    ["tiny MTU", { ...base, mtu: 100 }, "mtu", `mtu must be an integer >= 576, got 100`],
    ["underlay MTU", { ...base, underlayMtu: 65536 }, "underlayMtu", `underlayMtu must be an integer in 576-9216, got 65536`],
    ["service overlap", { ...base, serviceCidr: "10.244.128.0/20" }, "clusterCidr", `clusterCidr "10.244.0.0/16" overlaps serviceCidr "10.244.128.0/20"`],
    ["service malformed", { ...base, serviceCidr: "10.96.0.0/40" }, "serviceCidr", `serviceCidr must be an IPv4 CIDR like "10.0.0.0/16", got "10.96.0.0/40"`],
    [
      "underlay overlap",
      { ...base, clusterCidr: "192.168.0.0/16", underlayCidrs: ["10.0.0.0/8", "192.168.1.0/24"] },
      "clusterCidr",
      `clusterCidr "192.168.0.0/16" overlaps underlayCidrs[1] "192.168.1.0/24"`,
    ],
    [
      "underlay misaligned",
      { ...base, underlayCidrs: ["192.168.1.10/24"] },
      "underlayCidrs",
      `underlayCidrs[0] "192.168.1.10/24" is not aligned: host bits are set past /24 (did you mean "192.168.1.0/24"?)`,
    ],
    ["host address inside", { ...base, hostAddresses: ["10.244.3.7"] }, "clusterCidr", `clusterCidr "10.244.0.0/16" contains hostAddresses[0] "10.244.3.7"`],
    ["host address malformed", { ...base, hostAddresses: ["10.1.1"] }, "hostAddresses", `hostAddresses[0] must be an IPv4 address like "192.168.1.10", got "10.1.1"`],
    ["underlay not a list", { ...base, underlayCidrs: "10.0.0.0/8" as unknown as string[] }, "underlayCidrs", `underlayCidrs must be a list, got "10.0.0.0/8"`],
  ];

  test.each(cases)("%s", (_name, input, property, reason) => {
    const { spec, failures } = checkNetworkSpec(input);
    expect(spec).toBeUndefined();
    expect(failures).toEqual([{ property, reason }]);
  });

  test("several problems are all reported", () => {
    const { failures } = checkNetworkSpec({ ...base, vni: -1, vxlanPort: 0, mode: "x" });
    expect(failures.map((f) => f.property).sort()).toEqual(["mode", "vni", "vxlanPort"]);
  });
});

describe("unknown values during preview", () => {
  test("are let through and leave the spec incomplete", () => {
    const { spec, failures, inputs } = checkNetworkSpec({
      ...base,
      clusterCidr: UNKNOWN,
      underlayCidrs: [UNKNOWN, "192.168.1.0/24"],
      hostAddresses: UNKNOWN as unknown as string[],
    });
    expect(failures).toEqual([]);
    expect(spec).toBeUndefined();
    expect(inputs.clusterCidr).toBe(UNKNOWN);
    expect(inputs.mtu).toBe(1450);
  });

  test("an unknown mode keeps the MTU default open but still judges known fields", () => {
    const { failures, inputs } = checkNetworkSpec({ ...base, mode: UNKNOWN, vni: 0 });
    expect(inputs.mtu).toBeUndefined();
    expect(failures).toEqual([{ property: "vni", reason: "vni must be an integer in 1-16777215, got 0" }]);
  });

  test("an unknown prefix or name passes", () => {
    expect(checkNetworkSpec({ ...base, networkName: UNKNOWN }).failures).toEqual([]);
    expect(checkNetworkSpec({ ...base, prefix: UNKNOWN }).failures).toEqual([]);
  });
});

describe("host allocation inputs", () => {
  const ok = { prefix: "/bpfnet/dev", host: "node-1" };
  test("valid", () => {
    expect(checkAllocationSpec(ok).failures).toEqual([]);
    expect(checkAllocationSpec({ networkName: "dev", host: "n1" }).inputs.prefix).toBe("/bpfnet/dev");
    expect(checkAllocationSpec({ ...ok, clusterCidr: "10.0.0.0/16", hostPrefixLength: 24, requestedCidr: "10.0.9.0/24" }).failures).toEqual([]);
  });

  test.each([
    ["no host", { prefix: "/bpfnet/dev" }, "host", "host is required (the node's name, used as its key in etcd)"],
    ["host with slash", { ...ok, host: "a/b" }, "host", expect.stringContaining(`host must be 1-253 characters`) as unknown as string],
    [
      "requested outside",
      { ...ok, clusterCidr: "10.0.0.0/16", hostPrefixLength: 24, requestedCidr: "10.1.0.0/24" },
      "requestedCidr",
      `requestedCidr "10.1.0.0/24" is outside the pool 10.0.0.0/16`,
    ],
    [
      "requested of the wrong size",
      { ...ok, clusterCidr: "10.0.0.0/16", hostPrefixLength: 24, requestedCidr: "10.0.0.0/25" },
      "requestedCidr",
      `requestedCidr "10.0.0.0/25" must be a /24 (the hostPrefixLength), got /25`,
    ],
    [
      "requested misaligned",
      { ...ok, requestedCidr: "10.0.0.5/24" },
      "requestedCidr",
      `requestedCidr "10.0.0.5/24" is not aligned: host bits are set past /24 (did you mean "10.0.0.0/24"?)`,
    ],
    ["pool misaligned", { ...ok, clusterCidr: "10.0.0.1/16" }, "clusterCidr", expect.stringContaining(`clusterCidr "10.0.0.1/16" is not aligned`) as unknown as string],
  ])("%s", (_n, input, property, reason) => {
    expect(checkAllocationSpec(input as never).failures).toEqual([{ property, reason }]);
  });

  test("unknowns pass", () => {
    expect(checkAllocationSpec({ prefix: UNKNOWN, host: UNKNOWN, clusterCidr: UNKNOWN, hostPrefixLength: 24, requestedCidr: UNKNOWN }).failures).toEqual([]);
  });
});

describe("etcd connection", () => {
  test("valid shapes", () => {
    expect(connectionProblems({ endpoints: ["https://10.0.0.5:2379", "10.0.0.6:2379"], caPem: "x" })).toEqual([]);
    expect(connectionProblems({ endpoints: ["http://[::1]:2379"] })).toEqual([]);
    expect(connectionProblems(UNKNOWN)).toEqual([]);
    expect(connectionProblems({ endpoints: UNKNOWN })).toEqual([]);
  });

  test.each([
    [undefined, `connection is required: { endpoints: ["https://host:2379"], caPem?, certPem?, keyPem?, username?, password? }`],
    [{ endpoints: [] }, `connection.endpoints must be a non-empty list of client URLs like "https://10.0.0.5:2379", got []`],
    [{ endpoints: ["etcd"] }, `connection.endpoints[0] must look like "https://host:2379" or "host:2379", got "etcd"`],
    [{ endpoints: ["10.0.0.1:99999"] }, `connection.endpoints[0] must look like "https://host:2379" or "host:2379", got "10.0.0.1:99999"`],
    [{ endpoints: ["https://a:2379", "http://b:2379"] }, "connection.endpoints mixes http and https URLs; use one scheme for all members"],
    [{ endpoints: ["a:2379"], certPem: "c" }, "connection.certPem and connection.keyPem must be given together (mTLS)"],
    [{ endpoints: ["a:2379"], username: "u" }, "connection.username and connection.password must be given together"],
    [{ endpoints: ["a:2379"], caPem: "" }, "connection.caPem must be a non-empty string when set"],
  ])("%j", (conn, reason) => {
    expect(connectionProblems(conn)).toEqual([{ property: "connection", reason }]);
  });

  test("endpoints get a scheme from the TLS material; options carry TLS and auth", () => {
    expect(normalizeEndpoints({ endpoints: ["a:2379"] })).toEqual(["http://a:2379"]);
    expect(normalizeEndpoints({ endpoints: ["a:2379", "https://b:2379/"], caPem: "ca" })).toEqual(["https://a:2379", "https://b:2379"]);
    const o = clientOptions({ endpoints: ["a:2379"], caPem: "CA", certPem: "CERT", keyPem: "KEY", username: "u", password: "p" });
    expect(o.credentials!.rootCertificate.toString()).toBe("CA");
    expect(o.credentials!.certChain!.toString()).toBe("CERT");
    expect(o.credentials!.privateKey!.toString()).toBe("KEY");
    expect(o.auth).toEqual({ username: "u", password: "p" });
    expect(clientOptions({ endpoints: ["a:2379"] }).credentials).toBeUndefined();
  });
});
