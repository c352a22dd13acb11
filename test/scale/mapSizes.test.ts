// The maps that grow with the network are sized from its spec (provider/network/mapSizes.ts):
// the arithmetic, the floor at the compiled sizes, the refusals at preview (Network's arguments,
// NodeAgent's check, the agent's config), each naming the field and the value.
import { networkArgsProblems } from "../../components/networkValidation";
import type { NetworkArgs } from "../../components/network";
import { parseAgentConfig } from "../../node-agent/config";
import { nodeAgentProvider } from "../../provider/agent/nodeAgent";
import { agentConfig } from "../../provider/agent/nodeAgentSpec";
import { BUNDLE_SHA256, MINIMAL_NODE_AGENT_SPEC } from "../support/nodeAgentSpec";
import {
  COMPILED_MAP_SIZES,
  MAP_SIZE_CEILINGS,
  mapSizeInputProblems,
  mapSizesFor,
  mapSizesProblems,
  maxEntriesByMapName,
  podAddresses,
  requiredMapSizes,
} from "../../provider/network/mapSizes";
import { MINIMAL_AGENT_CONFIG } from "../agent/support/agentConfig";

const HOSTILE: unknown[] = [0, -1, 1.5, NaN, null, "1", "1; rm -rf /", "$(reboot)", "`id`", "1\n2", "..", "'1'", '"2"', "a b", [1], { n: 1 }];

describe("sizes from the spec", () => {
  test("a /16 cut into /24s fits the compiled maps: nothing to size", () => {
    // 256 hosts; 256 × (253 pods + 2 host rows) = 65,280 ipcache rows ≤ 65,536.
    expect(requiredMapSizes({ clusterCidr: "10.244.0.0/16", hostPrefixLength: 24 })).toEqual({ tunnel: 256, peers: 256, routes: 256, ipcache: 65_280 });
    expect(mapSizesFor({ clusterCidr: "10.244.0.0/16", hostPrefixLength: 24 })).toEqual({});
  });

  test("a /10 cut into /24s: 16,384 hosts, an ipcache for every pod address", () => {
    expect(mapSizesFor({ clusterCidr: "10.0.0.0/10", hostPrefixLength: 24 })).toEqual({
      tunnel: 16_384,
      peers: 16_384,
      routes: 16_384,
      ipcache: 16_384 * (podAddresses(24) + 2),
    });
  });

  test("explicit bounds replace what the spec allows, never below the compiled sizes", () => {
    expect(mapSizesFor({ clusterCidr: "10.0.0.0/8", hostPrefixLength: 24, maxHosts: 5_000, maxEndpointsPerHost: 10 })).toEqual({
      tunnel: 5_000,
      peers: 5_000,
      routes: 5_000,
    });
    expect(mapSizesFor({ clusterCidr: "10.0.0.0/8", hostPrefixLength: 24, maxHosts: 50_000, maxEndpointsPerHost: 30 })).toEqual({
      tunnel: 50_000,
      peers: 50_000,
      routes: 50_000,
      ipcache: 50_000 * 32,
    });
    expect(mapSizesFor({ clusterCidr: "10.0.0.0/8", hostPrefixLength: 24, maxHosts: 10, maxEndpointsPerHost: 10 })).toEqual({});
  });

  test("endpoints per host are bounded by the endpoint map", () => {
    expect(requiredMapSizes({ clusterCidr: "10.0.0.0/8", hostPrefixLength: 16, maxHosts: 4 }).ipcache).toBe(4 * (16_384 + 2));
  });

  test("map names for the loader", () => {
    expect(maxEntriesByMapName({ tunnel: 5_000, ipcache: 70_000 })).toEqual({ bpfnet_tunnel: 5_000, bpfnet_ipcache: 70_000 });
  });
});

describe("too large for the kernel or memory: refused naming the fields", () => {
  test("a /8 cut into /28s means a million hosts: each host's preallocated peer map would not fit", () => {
    const [p] = mapSizeInputProblems({ clusterCidr: "10.0.0.0/8", hostPrefixLength: 28 });
    expect(p).toContain("clusterCidr 10.0.0.0/8 cut into /28 host subnets means 1048576 hosts");
    expect(p).toContain("set agents.maxHosts");
    expect(mapSizeInputProblems({ clusterCidr: "10.0.0.0/8", hostPrefixLength: 28, maxHosts: 100_000 })).toEqual([]);
  });

  test("an ipcache past the ceiling names both bounds", () => {
    const [p] = mapSizeInputProblems({ clusterCidr: "10.0.0.0/8", hostPrefixLength: 24, maxHosts: 200_000, maxEndpointsPerHost: 100 });
    expect(p).toContain("agents.maxHosts 200000 with 100 endpoints each means 20400000 ipcache rows");
    expect(p).toContain(`more than ${MAP_SIZE_CEILINGS.ipcache}`);
  });

  test("a /8 of /24s (65,536 hosts × 253 pods) still fits", () => {
    expect(mapSizeInputProblems({ clusterCidr: "10.0.0.0/8", hostPrefixLength: 24 })).toEqual([]);
  });

  test.each(HOSTILE)("agents.maxHosts / maxEndpointsPerHost %j are refused by Network at construction", (bad) => {
    const args = {
      hosts: [],
      mode: "vxlan",
      clusterCidr: "10.244.0.0/16",
      etcd: { existing: { endpoints: ["https://127.0.0.1:2379"] } },
      agents: { maxHosts: bad, maxEndpointsPerHost: bad },
    } as unknown as NetworkArgs;
    const problems = networkArgsProblems("prod", args);
    expect(problems).toContain(`agents.maxHosts must be an integer from 1 to ${MAP_SIZE_CEILINGS.peers}, got ${JSON.stringify(bad)}`);
    expect(problems).toContain(`agents.maxEndpointsPerHost must be an integer from 1 to 16384, got ${JSON.stringify(bad)}`);
  });

  test("Network passes sane bounds and the spec's own sizes", () => {
    const args = {
      hosts: [],
      mode: "vxlan",
      clusterCidr: "10.0.0.0/8",
      hostPrefixLength: 24,
      etcd: { existing: { endpoints: ["https://127.0.0.1:2379"] } },
      agents: { maxHosts: 5_000, maxEndpointsPerHost: 110 },
    } as unknown as NetworkArgs;
    expect(networkArgsProblems("prod", args).filter((p) => /max(Hosts|EndpointsPerHost)|ipcache|peer map/.test(p))).toEqual([]);
    expect(networkArgsProblems("prod", { ...args, hostPrefixLength: 29, agents: {} }).filter((p) => p.includes("agents.maxHosts"))).toHaveLength(1);
  });
});

describe("the sizes as the agent config and NodeAgent carry them", () => {
  const AGENT = MINIMAL_AGENT_CONFIG;

  test("parsed and kept; absent by default", () => {
    expect(parseAgentConfig(AGENT).mapSizes).toBeUndefined();
    expect(parseAgentConfig({ ...AGENT, mapSizes: { tunnel: 5_000, ipcache: 70_000 } }).mapSizes).toEqual({ tunnel: 5_000, ipcache: 70_000 });
  });

  test.each(HOSTILE)("a size %j is refused naming the map", (bad) => {
    expect(() => parseAgentConfig({ ...AGENT, mapSizes: { peers: bad } })).toThrow(`mapSizes.peers must be an integer from ${COMPILED_MAP_SIZES.peers} (the compiled size) to ${MAP_SIZE_CEILINGS.peers}, got ${JSON.stringify(bad)}`);
  });

  test.each(["bpfnet_ct", "$(reboot)", "a;b", "__proto__x", "..", "x\ny", "`id`"])("an unknown map %j is refused", (name) => {
    expect(mapSizesProblems("mapSizes", { [name]: 5_000 })).toEqual([`mapSizes has an unknown map ${JSON.stringify(name)} (known: tunnel, peers, routes, ipcache)`]);
  });

  test.each(["big", 5, [5_000], null])("a mapSizes that is not an object of sizes (%j) is refused", (bad) => {
    expect(mapSizesProblems("mapSizes", bad)[0]).toContain(`mapSizes must be an object of map sizes`);
  });

  test("below the compiled size (which would not fit a pinned map of an upgraded host) or above the ceiling is refused", () => {
    expect(mapSizesProblems("mapSizes", { tunnel: 100 })).toEqual([`mapSizes.tunnel must be an integer from 4096 (the compiled size) to ${MAP_SIZE_CEILINGS.tunnel}, got 100`]);
    expect(mapSizesProblems("mapSizes", { ipcache: MAP_SIZE_CEILINGS.ipcache + 1 })).toHaveLength(1);
  });

  const SPEC = MINIMAL_NODE_AGENT_SPEC;
  const SHA = BUNDLE_SHA256;

  test("the config file carries them only when a map needs more than its compiled size", () => {
    expect(JSON.parse(agentConfig({ ...SPEC, mapSizes: {} }, { endpoints: ["http://10.0.0.254:2379"] }, SHA))).not.toHaveProperty("mapSizes");
    const written = JSON.parse(agentConfig({ ...SPEC, mapSizes: { peers: 5_000 } }, { endpoints: ["http://10.0.0.254:2379"] }, SHA));
    expect(written.mapSizes).toEqual({ peers: 5_000 });
    expect(parseAgentConfig(written).mapSizes).toEqual({ peers: 5_000 });
  });

  test("NodeAgent's check refuses a hostile spec.mapSizes at preview", async () => {
    const checked = await nodeAgentProvider.check!({}, { connection: {}, spec: { ...SPEC, mapSizes: { ipcache: "$(reboot)", "a;b": 1 } }, bundleSha256: SHA });
    expect(checked.failures).toContainEqual({ property: "spec", reason: expect.stringContaining('spec.mapSizes.ipcache must be an integer from 65536 (the compiled size) to 16777216, got "$(reboot)"') });
    expect(checked.failures).toContainEqual({ property: "spec", reason: expect.stringContaining('spec.mapSizes has an unknown map "a;b"') });
  });
});
