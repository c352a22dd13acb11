/**
 * rtnetlink from the addon against real network namespaces (tnl1h stands in for the agent's
 * host namespace, tnl1c* for containers): an endpoint's veth pair made and configured the way
 * the agent does it, read back with `ip`; the failures a caller must tell apart (namespace gone,
 * not a namespace, name taken, a request refused mid-batch) carry errno and the step; hostile
 * names never reach the kernel; parallel calls leave every threadpool thread in its own namespace.
 *
 * Needs root and the addon built (`bash scripts/setup --quiet`).
 */
import * as fs from "fs";
import { addrAdd, decodeLink, deleteLink, linkUp, NetlinkError, readLink, REPLIED_IFINDEX, rtnetlink, vethAdd } from "../../bpf";
import { plumbVeth, VethPlan, vethConfigureRequests, vethCreateRequests } from "../../node-agent/daemon/links";
import { ip, ipQuiet } from "./support/netns";

const HOST = "tnl1h";
const CONTAINERS = Array.from({ length: 8 }, (_, i) => `tnl1c${i}`);
const nsPath = (name: string) => `/run/netns/${name}`;
let hostFd: number | undefined;

function plan(i: number): VethPlan {
  return { hostIfname: `tnl1v${i}`, ifname: `tnlx${i}`, ip: `10.135.1.${10 + i}`, gateway: "10.135.1.1", mtu: 1400 + i, hostMac: `02:35:00:00:01:${(16 + i).toString(16)}`, mac: `02:35:00:00:02:${(16 + i).toString(16)}` };
}

const json = (ns: string, ...args: string[]) => JSON.parse(ip("-n", ns, "-j", ...args)) as Record<string, unknown>[];

beforeAll(() => {
  for (const ns of [HOST, ...CONTAINERS]) {
    ipQuiet("netns", "del", ns); // a crashed run's leftover
    ip("netns", "add", ns);
  }
  hostFd = fs.openSync(nsPath(HOST), "r");
});

afterAll(() => {
  if (hostFd !== undefined) fs.closeSync(hostFd);
  for (const ns of [HOST, ...CONTAINERS]) ipQuiet("netns", "del", ns);
});

/** The agent's plumbing (one call), with the host end going to HOST instead of this process's namespace. */
const plumbInto = (container: string, p: VethPlan): Promise<number> => plumbVeth(nsPath(container), p, hostFd!);

test("a pair born in the container's namespace, its host end in the host's: MACs, MTU, address, routes, pinned neighbour", async () => {
  const p = plan(0);
  const hostIfindex = await plumbInto(CONTAINERS[0], p);
  const [host] = json(HOST, "link", "show", "dev", p.hostIfname);
  expect(host).toMatchObject({ ifindex: hostIfindex, address: p.hostMac, mtu: p.mtu });
  expect(host.flags).toContain("UP");
  const [end] = json(CONTAINERS[0], "link", "show", "dev", p.ifname);
  expect(end).toMatchObject({ address: p.mac, mtu: p.mtu, link_index: hostIfindex });
  expect(end.flags).toContain("UP");
  expect(json(CONTAINERS[0], "link", "show", "dev", "lo")[0].flags).toContain("UP");
  expect(ip("-n", CONTAINERS[0], "-4", "-o", "addr", "show", "dev", p.ifname)).toContain(`${p.ip}/32`);
  const routes = ip("-n", CONTAINERS[0], "route", "show");
  expect(routes).toContain(`default via ${p.gateway} dev ${p.ifname}`);
  expect(routes).toMatch(new RegExp(`default via ${p.gateway} dev ${p.ifname} .*mtu ${p.mtu}`));
  expect(routes).toContain(`${p.gateway} dev ${p.ifname} scope link`);
  expect(ip("-n", CONTAINERS[0], "neigh", "show", p.gateway)).toContain(`lladdr ${p.hostMac} PERMANENT`);
  // Read back through netlink too: the host end in its namespace, and nothing of it in the container's.
  expect(await readLink(nsPath(HOST), p.hostIfname)).toMatchObject({ ifindex: hostIfindex, mac: p.hostMac, mtu: p.mtu, up: true });
  expect(await readLink(nsPath(CONTAINERS[0]), p.hostIfname)).toBeUndefined();
});

test("the same names again: EEXIST at the create step, and nothing changed", async () => {
  const p = plan(0);
  const err = await rtnetlink(nsPath(CONTAINERS[0]), vethCreateRequests(p, hostFd!)).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(NetlinkError);
  expect(err).toMatchObject({ code: "EEXIST", errno: 17, step: `create veth pair ${p.hostIfname}/${p.ifname}` });
  expect((err as Error).message).toContain(`in ${nsPath(CONTAINERS[0])}`);
  expect(json(HOST, "link", "show").filter((l) => String(l.ifname).startsWith("tnl1v"))).toHaveLength(1);
});

test("a namespace that is gone or is no namespace fails before any request, naming the path", async () => {
  const gone = await rtnetlink(nsPath("tnl1gone"), [linkUp(1, "lo")]).catch((e: unknown) => e);
  expect(gone).toMatchObject({ code: "ENOENT", step: `open a netlink socket in ${nsPath("tnl1gone")}` });
  const notNs = await rtnetlink("/etc/hostname", [linkUp(1, "lo")]).catch((e: unknown) => e);
  expect(notNs).toBeInstanceOf(NetlinkError);
  expect(notNs).toMatchObject({ code: "EINVAL" });
  expect((notNs as NetlinkError).step).toMatch(/^open a netlink socket/);
});

test("the same configuration by a known ifindex, in a second call, gives the same result", async () => {
  const ns = CONTAINERS[7];
  const p = { ...plan(7), hostIfname: "tnl1w7", ifname: "tnlw7" };
  const [, [reply]] = await rtnetlink(nsPath(ns), vethCreateRequests(p, hostFd!));
  const end = decodeLink(reply);
  await rtnetlink(nsPath(ns), vethConfigureRequests(p, end.ifindex));
  expect(ip("-n", ns, "-4", "-o", "addr", "show", "dev", p.ifname)).toContain(`${p.ip}/32`);
  expect(ip("-n", ns, "neigh", "show", p.gateway)).toContain(`lladdr ${p.hostMac} PERMANENT`);
  expect(json(HOST, "link", "show", "dev", p.hostIfname)[0].ifindex).toBe(end.link);
  expect(await deleteLink(nsPath(HOST), p.hostIfname)).toBe(true);
});

test("a request acting on the replied device with no device read before it fails with ENODEV, nothing sent", async () => {
  const ns = CONTAINERS[1];
  const err = await rtnetlink(nsPath(ns), [addrAdd(REPLIED_IFINDEX, "10.135.3.1", 32)]).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(NetlinkError);
  expect(err).toMatchObject({ code: "ENODEV", step: "add address 10.135.3.1/32", kernelMessage: "no earlier reply named a device" });
  expect(ip("-n", ns, "-4", "-o", "addr", "show")).not.toContain("10.135.3.1");
});

test("a refused request stops the batch with its errno and step; later requests are not sent", async () => {
  const ns = CONTAINERS[1];
  expect(json(ns, "link", "show", "dev", "lo")[0].flags).not.toContain("UP");
  const err = await rtnetlink(nsPath(ns), [addrAdd(4242, "10.135.2.1", 32), linkUp(1, "lo")]).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(NetlinkError);
  expect(err).toMatchObject({ code: "ENODEV", step: "add address 10.135.2.1/32" });
  expect(json(ns, "link", "show", "dev", "lo")[0].flags).not.toContain("UP"); // the second request never went out
});

test("hostile names and paths are refused before any syscall", async () => {
  const before = ip("-n", HOST, "-o", "link");
  for (const bad of ["eth 0", "a;b", "$(id)", "`id`", "a\nb", "..", "'q'", '"q"', "x/..", "sixteen-chars-xx"]) {
    expect(() => vethAdd({ name: bad, mac: "02:00:00:00:00:01", mtu: 1500, netnsFd: hostFd! }, { name: "ok", mac: "02:00:00:00:00:02", mtu: 1500 })).toThrow(RangeError);
    await expect(readLink(nsPath(HOST), bad)).rejects.toThrow(RangeError);
    await expect(deleteLink(null, bad)).rejects.toThrow(RangeError);
  }
  for (const bad of ["/run/netns/../netns/tnl1h", "run/netns/tnl1h", "/run/netns/tnl1h\0x"]) {
    await expect(rtnetlink(bad, [linkUp(1, "lo")])).rejects.toThrow(RangeError);
  }
  expect(ip("-n", HOST, "-o", "link")).toBe(before);
});

test("parallel plumbing in eight namespaces on the threadpool: each pair right, every thread back in its own namespace", async () => {
  const plans = CONTAINERS.slice(1).map((_, i) => plan(i + 1));
  const ifindexes = await Promise.all(plans.map((p, i) => plumbInto(CONTAINERS[i + 1], p)));
  for (const [i, p] of plans.entries()) {
    expect(json(HOST, "link", "show", "dev", p.hostIfname)[0]).toMatchObject({ ifindex: ifindexes[i], address: p.hostMac });
    expect(ip("-n", CONTAINERS[i + 1], "-4", "-o", "addr", "show", "dev", p.ifname)).toContain(`${p.ip}/32`);
  }
  // A thread left in a container's namespace would find that container's device here.
  const seen = await Promise.all(Array.from({ length: 32 }, (_, i) => readLink(null, plans[i % plans.length].ifname)));
  expect(seen.every((l) => l === undefined)).toBe(true);
  expect(await readLink(null, "lo")).toMatchObject({ ifindex: 1 });
});

test("readLink reports a device's kind, and a VXLAN device's collect-metadata mode, port and local address", async () => {
  ip("-n", HOST, "link", "add", "tnl1vx", "type", "vxlan", "external", "dstport", "8472", "local", "10.135.9.1");
  ip("-n", HOST, "link", "add", "tnl1vy", "type", "vxlan", "id", "7", "dstport", "4789");
  try {
    expect(await readLink(nsPath(HOST), "tnl1vx")).toMatchObject({ kind: "vxlan", vxlan: { external: true, port: 8472, local: "10.135.9.1" }, up: false });
    const plain = await readLink(nsPath(HOST), "tnl1vy");
    expect(plain).toMatchObject({ kind: "vxlan", vxlan: { external: false, port: 4789 } });
    expect(plain!.vxlan!.local).toBeUndefined();
    expect(await readLink(nsPath(HOST), plan(0).hostIfname)).toMatchObject({ kind: "veth" });
    expect((await readLink(nsPath(HOST), "lo"))!.kind).toBeUndefined();
  } finally {
    ipQuiet("-n", HOST, "link", "del", "tnl1vx");
    ipQuiet("-n", HOST, "link", "del", "tnl1vy");
  }
});

test("deleting the host end takes the container end with it; deleting again reports nothing to delete", async () => {
  const p = plan(0);
  expect(await deleteLink(nsPath(HOST), p.hostIfname)).toBe(true);
  expect(await readLink(nsPath(HOST), p.hostIfname)).toBeUndefined();
  expect(await readLink(nsPath(CONTAINERS[0]), p.ifname)).toBeUndefined();
  expect(await deleteLink(nsPath(HOST), p.hostIfname)).toBe(false);
});

test("plumbVeth (the agent's entry point) puts the host end in this process's namespace", async () => {
  // Only the namespace differs from plumbInto; its device is removed at once.
  const ns = "tnl1c0";
  const p = { ...plan(9), hostIfname: "tnl1agent9" };
  const hostIfindex = await plumbVeth(nsPath(ns), p);
  try {
    expect(await readLink(null, p.hostIfname)).toMatchObject({ ifindex: hostIfindex, mac: p.hostMac, up: true });
  } finally {
    expect(await deleteLink(null, p.hostIfname)).toBe(true);
  }
  expect(await readLink(nsPath(ns), p.ifname)).toBeUndefined();
});
