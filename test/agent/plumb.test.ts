// The endpoint plumbing's pure parts: the netlink requests an add sends, the MACs, the names refused.
import { addrAdd, checkIfname, checkNetnsPath, decodeLink, IfindexRef, linkUp, neighPermanent, REPLIED_IFINDEX, routeReplace } from "../../bpf";
import { vethMacs } from "../../node-agent/daemon/endpoints";
import { VethPlan, vethConfigureRequests, vethCreateRequests } from "../../node-agent/daemon/links";

const plan: VethPlan = { hostIfname: "bn0123456789a", ifname: "eth0", ip: "10.1.2.5", gateway: "10.1.2.1", mtu: 1450, hostMac: "02:00:00:00:00:01", mac: "02:00:00:00:00:02" };
const HOSTILE = ["eth 0", "a;b", "$(reboot)", "`id`", "a\nlink", "x#y", "'q'", '"q"', "", "..", ".", "a/b", "a:b", "sixteen-chars-xx"];

describe("endpoint plumbing requests", () => {
  test("the pair: created with the host end (its MAC, MTU, up) moved into the agent's namespace, then the container end read back", () => {
    const [create, read] = vethCreateRequests(plan, 7);
    expect(create.step).toBe("create veth pair bn0123456789a/eth0");
    expect(create.message.readUInt32LE(0)).toBe(create.message.length); // one whole message
    // An RTM_NEWLINK like the kernel's own replies: the main device is the host end, set up.
    expect(decodeLink(create.message)).toMatchObject({ name: "bn0123456789a", mac: "02:00:00:00:00:01", mtu: 1450, up: true });
    // The peer (nested in IFLA_LINKINFO) carries the container end's name and MAC.
    expect(create.message.includes(Buffer.from("eth0\0"))).toBe(true);
    expect(create.message.includes(Buffer.from([2, 0, 0, 0, 0, 2]))).toBe(true);
    expect(read.step).toBe("read device eth0");
  });

  test("the container end: lo up, its /32, up, the gateway on-link, the default route with the MTU, the gateway's MAC pinned", () => {
    expect(vethConfigureRequests(plan, 3).map((r) => r.step)).toEqual([
      "set lo up",
      "add address 10.1.2.5/32",
      "set eth0 up",
      "route 10.1.2.1/32",
      "route default via 10.1.2.1",
      "neighbour 10.1.2.1",
    ]);
    const onLink = routeReplace({ dst: "10.1.2.1/32", oif: 3 }).message;
    expect(onLink.readUInt8(16 + 1)).toBe(32); // rtm_dst_len
    expect(onLink.readUInt8(16 + 6)).toBe(253); // RT_SCOPE_LINK
    const dflt = routeReplace({ dst: "default", via: "10.1.2.1", oif: 3 }).message;
    expect(dflt.readUInt8(16 + 1)).toBe(0);
    expect(dflt.readUInt8(16 + 6)).toBe(0); // RT_SCOPE_UNIVERSE
  });

  test("a request on the replied device marks where its ifindex goes: exactly where a known ifindex would be written", () => {
    const builders = [
      (i: IfindexRef) => linkUp(i, "eth0"),
      (i: IfindexRef) => addrAdd(i, "10.1.2.5", 32),
      (i: IfindexRef) => routeReplace({ dst: "10.1.2.1/32", oif: i }),
      (i: IfindexRef) => routeReplace({ dst: "default", via: "10.1.2.1", oif: i, mtu: 1450 }),
      (i: IfindexRef) => neighPermanent(i, "10.1.2.1", "02:00:00:00:00:01"),
    ];
    for (const build of builders) {
      const replied = build(REPLIED_IFINDEX);
      const known = build(0x1234567);
      expect(replied.ifindexAt).toHaveLength(1);
      expect(known.ifindexAt).toBeUndefined();
      const at = replied.ifindexAt![0];
      expect(replied.message.readInt32LE(at)).toBe(0);
      expect(known.message.readInt32LE(at)).toBe(0x1234567);
      // Apart from those four bytes the two messages are the same.
      expect(Buffer.compare(Buffer.concat([known.message.subarray(0, at), known.message.subarray(at + 4)]), Buffer.concat([replied.message.subarray(0, at), replied.message.subarray(at + 4)]))).toBe(0);
    }
    // The agent's one call: the read-back precedes every request on the replied device.
    const all = [...vethCreateRequests(plan, 7), ...vethConfigureRequests(plan, REPLIED_IFINDEX)];
    expect(all.findIndex((r) => r.ifindexAt)).toBeGreaterThan(all.findIndex((r) => r.step === "read device eth0"));
    expect(all.filter((r) => r.ifindexAt).map((r) => r.step)).toEqual(["add address 10.1.2.5/32", "set eth0 up", "route 10.1.2.1/32", "route default via 10.1.2.1", "neighbour 10.1.2.1"]);
  });

  test("hostile interface names, addresses and namespace paths are refused before any request exists", () => {
    for (const bad of HOSTILE) {
      expect(() => checkIfname(bad)).toThrow(RangeError);
      expect(() => vethCreateRequests({ ...plan, ifname: bad }, 7)).toThrow(/veth peer must be 1-15/);
      expect(() => vethCreateRequests({ ...plan, hostIfname: bad }, 7)).toThrow(/veth name must be 1-15/);
    }
    for (const bad of ["10.1.2.5; reboot", "$(id)", "10.1.2", "::1", ""]) expect(() => vethConfigureRequests({ ...plan, ip: bad }, 3)).toThrow(/not an IPv4 address/);
    expect(() => vethConfigureRequests({ ...plan, hostMac: "02:00:00:00:00:01;x" }, 3)).toThrow(/not a MAC address/);
    expect(() => vethConfigureRequests(plan, 0)).toThrow(/bad ifindex/);
    for (const bad of ["run/netns/x", "/run/netns/../x", "/run/netns/a\0b", "/run//netns/x", "/run/./netns/x"]) expect(() => checkNetnsPath(bad)).toThrow(RangeError);
    expect(checkNetnsPath("/run/netns/x; $(id)")).toBe("/run/netns/x; $(id)"); // a path only ever opened, never parsed by a shell
  });

  test("MACs are stable per id, distinct per side and id, locally administered unicast", () => {
    const a = vethMacs("c1");
    expect(vethMacs("c1")).toEqual(a);
    expect(a.mac).not.toBe(a.hostMac);
    expect(vethMacs("c2").mac).not.toBe(a.mac);
    for (const m of [a.mac, a.hostMac]) {
      expect(m).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      expect(parseInt(m.slice(0, 2), 16) & 0x03).toBe(0x02);
    }
  });
});
