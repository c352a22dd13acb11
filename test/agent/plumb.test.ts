// The endpoint plumbing's pure parts: the one ip -batch an add runs, the MACs, the reply parsing.
import { peerIfindex, plumbBatch, vethMacs } from "../../node-agent/daemon/endpoints";
import { batchLine } from "../../node-agent/daemon/links";

const plan = { agentNetns: "/proc/42/ns/net", hostIfname: "bn0123456789a", ifname: "eth0", ip: "10.1.2.5", gateway: "10.1.2.1", mtu: 1450, hostMac: "02:00:00:00:00:01", mac: "02:00:00:00:00:02" };

describe("endpoint plumbing plan", () => {
  test("one batch: the pair born in the container's namespace with the host end up in the agent's, then the container's address, routes and pinned gateway MAC", () => {
    const lines = plumbBatch(plan);
    expect(lines[0]).toBe("link add bn0123456789a address 02:00:00:00:00:01 mtu 1450 netns /proc/42/ns/net up type veth peer name eth0 address 02:00:00:00:00:02 mtu 1450");
    expect(lines).toContain("addr add 10.1.2.5/32 dev eth0");
    expect(lines).toContain("route replace default via 10.1.2.1 dev eth0 mtu 1450");
    expect(lines).toContain("neigh replace 10.1.2.1 lladdr 02:00:00:00:00:01 dev eth0 nud permanent");
    expect(lines[lines.length - 1]).toBe("link show dev eth0");
  });

  test("batch tokens that could split or comment a line are refused", () => {
    for (const bad of ["eth 0", "a;b", "$(reboot)", "`id`", "a\nlink del eth0", "x#y", "'q'", '"q"', ""]) {
      expect(() => batchLine(["link", "show", "dev", bad])).toThrow(/ip -batch token/);
      expect(() => plumbBatch({ ...plan, ifname: bad })).toThrow(/ip -batch token/);
    }
    expect(batchLine(["route", "replace", "default", "via", "10.0.0.1"])).toBe("route replace default via 10.0.0.1");
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

  test("the host end's ifindex is the container end's link_index", () => {
    const out = '[{"ifindex":2,"link_index":1611,"ifname":"eth0","flags":["UP"]}]\n';
    expect(peerIfindex(out, "eth0")).toBe(1611);
    expect(() => peerIfindex("", "eth0")).toThrow(/no peer ifindex/);
    expect(() => peerIfindex('[{"ifindex":2,"ifname":"eth1","link_index":5}]', "eth0")).toThrow(/no peer ifindex/);
  });
});
