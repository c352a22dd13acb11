// The maps that grow with the network really get the size its spec asks for: the agent's own
// Datapath.load on a private bpffs creates them at that size (the kernel's max_entries, and rows
// past the compiled 4,096 accepted), every other object sharing the pins adopts it, a load
// asking another size of a pinned map is refused naming both, and the agent's restart with new
// sizes migrates the pinned maps with their rows.
import { existsSync } from "fs";
import { join } from "path";
import { ALL_DATAPATH_PROGRAMS, BpfMap, BpfObject, defaultObjectDir, loadDatapathObjects, objectPath } from "../../bpf";
import { PinnedMapSizeError } from "../../bpf/object";
import { Datapath } from "../../node-agent/daemon/datapath";
import { createLogger } from "../../node-agent/daemon/log";
import { unpinResized } from "../../node-agent/daemon/mapResize";
import { COMPILED_MAP_SIZES, mapSizesFor, maxEntriesByMapName } from "../../provider/network/mapSizes";
import { mountTempBpffs, TempBpffs } from "./support/bpffs";
import { ensureBuilt } from "./support/build";

let bpffs: TempBpffs | undefined;
const log = createLogger("error", "test", () => undefined);

beforeAll(() => {
  ensureBuilt();
  bpffs = mountTempBpffs();
});

afterAll(() => bpffs?.cleanup());

const pinned = (root: string, name: string): number => {
  const m = BpfMap.open(join(root, name));
  try {
    return m.info.maxEntries;
  } finally {
    m.close();
  }
};

/** The i-th /24 of 10.0.0.0/8 and a peer address for it. */
const cidr = (i: number) => `10.${(i >> 8) & 255}.${i & 255}.0/24`;
const peer = (i: number) => `172.16.${(i >> 8) & 255}.${i & 255}`;

test("a /10 of /24s: 16,384-entry tunnel and peer maps and a 4,177,920-row ipcache, filled past the compiled 4,096", async () => {
  const root = join(bpffs!.dir, "spec");
  const sizes = maxEntriesByMapName(mapSizesFor({ clusterCidr: "10.0.0.0/10", hostPrefixLength: 24 }));
  expect(sizes).toEqual({ bpfnet_tunnel: 16_384, bpfnet_peers: 16_384, bpfnet_routes: 16_384, bpfnet_ipcache: 16_384 * 255 });
  const dp = await Datapath.load(root, undefined, log, sizes, ALL_DATAPATH_PROGRAMS);
  try {
    for (const [name, n] of Object.entries(sizes)) expect([name, pinned(root, name)]).toEqual([name, n]);
    // Maps not sized keep their compiled size.
    expect(pinned(root, "bpfnet_endpoints")).toBe(16_384);
    for (let i = 0; i < 5_000; i++) {
      dp.maps.tunnel.set(cidr(i), { remote: peer(i) });
      dp.maps.peers.set(peer(i));
    }
    expect(dp.maps.peers.entries()).toHaveLength(5_000);
    expect(dp.maps.tunnel.get(cidr(4_999))).toMatchObject({ remote: peer(4_999) });
  } finally {
    dp.close();
  }
  // Another object loaded later against the same pins (bpf_sock.o, a test's, a tool's) adopts their sizes.
  const sock = BpfObject.load(join(defaultObjectDir(), "bpf_sock.o"), { pinRoot: root });
  sock.close();
  const lxc = BpfObject.load(objectPath("lxc"), { pinRoot: root });
  lxc.close();
  expect(pinned(root, "bpfnet_peers")).toBe(16_384);
});

test("the compiled peer map refuses the 4,097th host (what sizing fixes)", () => {
  const root = join(bpffs!.dir, "compiled");
  const objects = loadDatapathObjects(root);
  const peers = BpfMap.open(join(root, "bpfnet_peers"));
  try {
    expect(peers.info.maxEntries).toBe(COMPILED_MAP_SIZES.peers);
    const key = (i: number) => Buffer.from([172, 16, (i >> 8) & 255, i & 255]);
    for (let i = 0; i < 4_096; i++) peers.update(key(i), Buffer.alloc(8));
    expect(() => peers.update(key(4_096), Buffer.alloc(8))).toThrow(/E2BIG|No space|too big|Argument list/i);
  } finally {
    peers.close();
    objects.close();
  }
});

test("a load asking another size of a pinned map is refused naming the map, both sizes and the way out", () => {
  const root = join(bpffs!.dir, "spec");
  let err: unknown;
  try {
    BpfObject.load(objectPath("host"), { pinRoot: root, maxEntries: { bpfnet_peers: 20_000 } });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PinnedMapSizeError);
  expect((err as Error).message).toBe(
    `map bpfnet_peers pinned at ${join(root, "bpfnet_peers")} has max_entries 16384, the load asks for 20000: ` +
      `libbpf cannot reuse it; migrate it (the agent does at start: node-agent/daemon/mapResize.ts) or remove the pin`,
  );
});

test("the agent restarted with larger sizes migrates the pinned maps and keeps their rows", async () => {
  const root = join(bpffs!.dir, "spec");
  const bigger = maxEntriesByMapName({ tunnel: 20_000, peers: 20_000, routes: 20_000, ipcache: 16_384 * 255 });
  const dp = await Datapath.load(root, undefined, log, bigger, ALL_DATAPATH_PROGRAMS);
  try {
    expect(pinned(root, "bpfnet_peers")).toBe(20_000);
    expect(pinned(root, "bpfnet_tunnel")).toBe(20_000);
    expect(pinned(root, "bpfnet_ipcache")).toBe(16_384 * 255); // unchanged: not migrated
    expect(dp.maps.peers.entries()).toHaveLength(5_000);
    expect(dp.maps.tunnel.entries()).toHaveLength(5_000);
    expect(dp.maps.tunnel.get(cidr(1_234))).toMatchObject({ remote: peer(1_234) });
  } finally {
    dp.close();
  }
});

test("a size too small for the rows a pinned map holds is refused before any pin is removed", () => {
  const root = join(bpffs!.dir, "spec");
  expect(() => unpinResized(root, { bpfnet_tunnel: 30_000, bpfnet_peers: 4_096 })).toThrow(
    `map bpfnet_peers (${join(root, "bpfnet_peers")}) holds 5000 entries, more than its new size 4096: not resized`,
  );
  expect(existsSync(join(root, "bpfnet_tunnel"))).toBe(true);
  expect(pinned(root, "bpfnet_tunnel")).toBe(20_000);
  expect(pinned(root, "bpfnet_peers")).toBe(20_000);
});
