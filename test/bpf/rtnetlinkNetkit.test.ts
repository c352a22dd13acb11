/**
 * netkit devices through rtnetlink: the RTM_NEWLINK request read back attribute by attribute
 * against the numbers of the kernel's include/uapi/linux/if_link.h (written out here, not taken
 * from the encoder), hostile names refused before anything is sent, and the probe asked of the
 * real kernel in a throwaway namespace (tnk1p): its answer agrees with the kernel's build config
 * where /proc/config.gz tells it, and it leaves no device behind either way.
 *
 * Needs root and the addon built (`bash scripts/setup --quiet`).
 */
import * as fs from "fs";
import * as zlib from "zlib";
import { NETKIT_PROBE_NAMES, netkitAdd, probeNetkit, vethAdd } from "../../bpf";
import { ip, ipQuiet } from "./support/netns";

const NS = "tnk1p";
const NS_PATH = `/run/netns/${NS}`;

// include/uapi/linux/rtnetlink.h, if_link.h (netkit section, 6.7+)
const RTM_NEWLINK = 16;
const NLM_F_CREATE = 0x400;
const NLM_F_EXCL = 0x200;
const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, LINKINFO: 18, NET_NS_FD: 28 };
const INFO = { KIND: 1, DATA: 2 };
const NETKIT = { PEER_INFO: 1, PRIMARY: 2, POLICY: 3, PEER_POLICY: 4, MODE: 5 };

/** rtattrs of `b` in order: [type, payload]. */
function rtattrs(b: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let off = 0; off + 4 <= b.length; off += (b.readUInt16LE(off) + 3) & ~3) {
    const len = b.readUInt16LE(off);
    expect(len).toBeGreaterThanOrEqual(4);
    out.push([b.readUInt16LE(off + 2), b.subarray(off + 4, off + len)]);
  }
  return out;
}
const one = (list: [number, Buffer][], type: number): Buffer => {
  const found = list.filter(([t]) => t === type);
  expect(found).toHaveLength(1);
  return found[0][1];
};
const str = (b: Buffer) => b.toString("utf8").replace(/\0$/, "");

const end = { name: "nkhost0", mac: "02:11:22:33:44:55", mtu: 1450 };
const peer = { name: "eth0", mac: "02:66:77:88:99:aa", mtu: 1450 };

describe("netkitAdd", () => {
  test("one exclusive RTM_NEWLINK: the primary's name/MTU/MAC/netns fd, kind netkit, the peer's ifinfomsg and attributes, L2 mode, both policies PASS", () => {
    const { message, step } = netkitAdd({ ...end, netnsFd: 9 }, peer);
    expect(step).toBe("create netkit pair nkhost0/eth0");
    expect(message.readUInt32LE(0)).toBe(message.length);
    expect(message.readUInt16LE(4)).toBe(RTM_NEWLINK);
    expect(message.readUInt16LE(6)).toBe(NLM_F_CREATE | NLM_F_EXCL);
    expect(message.readUInt32LE(16 + 8) & 1).toBe(1); // ifi_flags: IFF_UP for the primary
    const top = rtattrs(message.subarray(32));
    expect(str(one(top, IFLA.IFNAME))).toBe("nkhost0");
    expect(one(top, IFLA.MTU).readUInt32LE(0)).toBe(1450);
    expect([...one(top, IFLA.ADDRESS)]).toEqual([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    expect(one(top, IFLA.NET_NS_FD).readUInt32LE(0)).toBe(9);
    const info = rtattrs(one(top, IFLA.LINKINFO));
    expect(str(one(info, INFO.KIND))).toBe("netkit");
    const data = rtattrs(one(info, INFO.DATA));
    expect(data.map(([t]) => t).sort()).toEqual([NETKIT.PEER_INFO, NETKIT.POLICY, NETKIT.PEER_POLICY, NETKIT.MODE].sort());
    expect(one(data, NETKIT.MODE).readUInt32LE(0)).toBe(0); // NETKIT_L2
    expect(one(data, NETKIT.POLICY).readUInt32LE(0)).toBe(0); // NETKIT_PASS
    expect(one(data, NETKIT.PEER_POLICY).readUInt32LE(0)).toBe(0);
    const peerInfo = one(data, NETKIT.PEER_INFO);
    expect(peerInfo.readInt32LE(4)).toBe(0); // ifinfomsg: no index, down
    expect(peerInfo.readUInt32LE(8)).toBe(0);
    const peerAttrs = rtattrs(peerInfo.subarray(16));
    expect(str(one(peerAttrs, IFLA.IFNAME))).toBe("eth0");
    expect([...one(peerAttrs, IFLA.ADDRESS)]).toEqual([0x02, 0x66, 0x77, 0x88, 0x99, 0xaa]);
    expect(peerAttrs.some(([t]) => t === IFLA.NET_NS_FD)).toBe(false); // the peer stays where the request is sent
  });

  test("without a netns fd both ends stay in the namespace the request is sent in", () => {
    const top = rtattrs(netkitAdd(end, peer).message.subarray(32));
    expect(top.some(([t]) => t === IFLA.NET_NS_FD)).toBe(false);
  });

  test("the veth request is unchanged by the shared pair encoder (kind veth, VETH_INFO_PEER 1 holding the peer)", () => {
    const { message, step } = vethAdd({ ...end, netnsFd: 3 }, peer);
    expect(step).toBe("create veth pair nkhost0/eth0");
    const info = rtattrs(one(rtattrs(message.subarray(32)), IFLA.LINKINFO));
    expect(str(one(info, INFO.KIND))).toBe("veth");
    const data = rtattrs(one(info, INFO.DATA));
    expect(data.map(([t]) => t)).toEqual([1]);
    expect(str(one(rtattrs(data[0][1].subarray(16)), IFLA.IFNAME))).toBe("eth0");
  });

  test("hostile names, MACs, MTUs and fds are refused before a request exists", () => {
    for (const bad of ["eth 0", "a;b", "$(id)", "`id`", "a\nb", "..", "'q'", '"q"', "x/..", "sixteen-chars-xx", ""]) {
      expect(() => netkitAdd({ ...end, name: bad }, peer)).toThrow(/netkit name must be 1-15/);
      expect(() => netkitAdd(end, { ...peer, name: bad })).toThrow(/netkit peer must be 1-15/);
    }
    for (const bad of ["02:00:00:00:00", "02:00:00:00:00:0g", "$(id)", "02:00:00:00:00:01;"]) expect(() => netkitAdd({ ...end, mac: bad }, peer)).toThrow(RangeError);
    for (const bad of [0, 67, 65536, 1.5, NaN]) expect(() => netkitAdd(end, { ...peer, mtu: bad })).toThrow(/bad MTU/);
    for (const bad of [-1, 1.5, NaN]) expect(() => netkitAdd({ ...end, netnsFd: bad }, peer)).toThrow(/bad netns fd/);
  });
});

/** CONFIG_NETKIT of the running kernel, when it publishes its config. */
function kernelConfigNetkit(): boolean | undefined {
  if (!fs.existsSync("/proc/config.gz")) return undefined;
  const config = zlib.gunzipSync(fs.readFileSync("/proc/config.gz")).toString("utf8");
  return /^CONFIG_NETKIT=[ym]$/m.test(config);
}

describe("probeNetkit against the kernel", () => {
  beforeAll(() => {
    ipQuiet("netns", "del", NS); // a crashed run's leftover
    ip("netns", "add", NS);
  });
  afterAll(() => ipQuiet("netns", "del", NS));

  const devices = () => (JSON.parse(ip("-n", NS, "-j", "link", "show")) as { ifname: string }[]).map((l) => l.ifname);

  test("agrees with the kernel's build config and leaves no device behind; a probe's leftover is cleared first", async () => {
    const built = kernelConfigNetkit();
    const first = await probeNetkit(NS_PATH);
    if (built !== undefined) expect(first.supported).toBe(built);
    if (!first.supported) {
      // The kernel's own answer, with the step that asked it.
      expect(first.reason).toContain(`create netkit pair ${NETKIT_PROBE_NAMES.join("/")} in ${NS_PATH}`);
      expect(first.reason).toContain("EOPNOTSUPP");
    }
    expect(devices()).toEqual(["lo"]);
    // A leftover of a probe killed between create and delete (a veth under the primary's name here,
    // as the kernel may not make netkit): the next probe removes it and answers the same.
    ip("-n", NS, "link", "add", NETKIT_PROBE_NAMES[0], "type", "veth", "peer", "name", NETKIT_PROBE_NAMES[1]);
    expect(await probeNetkit(NS_PATH)).toEqual(first);
    expect(devices()).toEqual(["lo"]);
  });

  test("a namespace that is not there is an error, not an answer", async () => {
    await expect(probeNetkit("/run/netns/tnk1gone")).rejects.toMatchObject({ code: "ENOENT" });
    await expect(probeNetkit("/run/netns/../netns/tnk1p")).rejects.toThrow(RangeError);
  });
});
