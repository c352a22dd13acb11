/**
 * Endpoint add through netlink from the addon (lab tpf1, one vxlan host, a real agent): the pair is born in the
 * container's namespace with the host end in the agent's; the datapath is ready when the API
 * call returns (the first packet is answered); a crash's leftover device under the same name
 * is cleaned up; hostile namespace paths and a taken interface name are refused without a trace.
 *
 * Needs root, and dist/ built (`npx tsc -p tsconfig.build.json`).
 */
import * as fs from "fs";
import * as path from "path";
import { DatapathMaps, openDatapathMaps } from "../../bpf";
import { hostVethName, vethMacs } from "../../node-agent/daemon/endpoints";
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "./support/etcd";
import { addContainerNetns, checkBuilt, inNetns, LabAgent, ping, removeContainers, seedNetwork } from "./support/agents";

const LAB = "tpf1";
const OCTET = 120;
const PREFIX = "/bpfnet/tpf1";
const CONTAINERS = ["tpfca", "tpfcb", "tpfcc"];

let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let agent: LabAgent | undefined;
let maps: DatapathMaps | undefined;
const hostNs = () => lab!.inventory.hosts[0].netns!;

beforeAll(async () => {
  checkBuilt();
  lab = await startTestLab(LAB, OCTET, "vxlan", 1);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  await seedNetwork(etcd.connection, { prefix: PREFIX, mode: "vxlan", clusterCidr: "10.81.0.0/16", vni: 9 }, lab.inventory.hosts.map((h) => h.name));
  agent = new LabAgent(lab.inventory.hosts[0], { prefix: PREFIX, etcd: etcd.connection, leaseTtlSeconds: 10 });
  await agent.start();
  maps = openDatapathMaps(lab.inventory.hosts[0].bpffsDir);
  for (const c of CONTAINERS) addContainerNetns(c);
}, 90_000);

afterAll(async () => {
  await cleanupAll([() => agent?.stop(), () => maps?.close(), () => removeContainers(CONTAINERS), () => etcd?.stop(), () => lab?.down()]);
}, 60_000);

test("an added endpoint answers its first packet as the API call returns; the pair is where it belongs", async () => {
  const a = (await agent!.client.addEndpoint({ id: "pa", netns: "/run/netns/tpfca" })).endpoint;
  const b = (await agent!.client.addEndpoint({ id: "pb", netns: "/run/netns/tpfcb" })).endpoint;
  // One ping, sent right after the call returned: nothing is left to set up afterwards.
  expect(ping("tpfcb", a.ip, 1, 0.2, 2)).toMatchObject({ ok: true, received: 1 });
  expect(ping("tpfcb", b.gateway, 1, 0.2, 2)).toMatchObject({ ok: true, received: 1 });

  // Host end in the agent's namespace, up, with the MAC derived from the id and bpf_lxc on it.
  const macs = vethMacs("pb");
  expect(b).toMatchObject({ hostIfname: hostVethName("pb"), hostMac: macs.hostMac, mac: macs.mac, status: "ready" });
  const hostLink = JSON.parse(inNetns(hostNs(), ["ip", "-j", "link", "show", "dev", b.hostIfname]).stdout)[0];
  expect(hostLink).toMatchObject({ ifindex: b.hostIfindex, address: macs.hostMac, mtu: b.mtu });
  expect(hostLink.flags).toContain("UP");
  expect(inNetns(hostNs(), ["tc", "filter", "show", "dev", b.hostIfname, "ingress"]).stdout).toMatch(/bpf_lxc|from_container/);
  expect(inNetns(hostNs(), ["cat", `/proc/sys/net/ipv4/conf/${b.hostIfname}/rp_filter`]).stdout.trim()).toBe("0");
  // The container end: its address, the on-link gateway pinned to the host end's MAC.
  expect(inNetns("tpfcb", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout).toContain(`${b.ip}/32`);
  expect(inNetns("tpfcb", ["ip", "neigh", "show", b.gateway]).stdout).toContain(`lladdr ${macs.hostMac} PERMANENT`);
  expect(maps!.endpoints.get(b.ip)).toMatchObject({ ifindex: b.hostIfindex, mac: macs.mac, nodeMac: macs.hostMac });
});

test("a device left under the endpoint's host name (a crash) is removed and the add succeeds", async () => {
  const name = hostVethName("pc");
  inNetns(hostNs(), ["ip", "link", "add", name, "type", "veth", "peer", "name", "tpfleft0"]);
  const c = (await agent!.client.addEndpoint({ id: "pc", netns: "/run/netns/tpfcc" })).endpoint;
  expect(ping("tpfcc", c.gateway, 1, 0.2, 2)).toMatchObject({ ok: true, received: 1 });
  expect(inNetns(hostNs(), ["ip", "link", "show", "tpfleft0"]).status).not.toBe(0);
  expect((await agent!.client.deleteEndpoint("pc")).deleted).toBe(true);
  // Deleted through netlink: the host end and, with it, the container's end are gone.
  expect(inNetns(hostNs(), ["ip", "link", "show", c.hostIfname]).status).not.toBe(0);
  expect(inNetns("tpfcc", ["ip", "link", "show", "eth0"]).status).not.toBe(0);
  expect((await agent!.client.deleteEndpoint("pc")).deleted).toBe(false);
});

test("a restarted agent adopts its endpoints as they are: same devices, bpf_lxc on them, traffic at once", async () => {
  const before = await agent!.client.listEndpoints();
  await agent!.stop();
  await agent!.start();
  const after = await agent!.client.listEndpoints();
  expect(after.map((e) => [e.id, e.status, e.hostIfindex, e.hostMac])).toEqual(before.map((e) => [e.id, "ready", e.hostIfindex, e.hostMac]));
  for (const e of after) expect(inNetns(hostNs(), ["tc", "filter", "show", "dev", e.hostIfname, "ingress"]).stdout).toMatch(/bpf_lxc|from_container/);
  const pa = after.find((e) => e.id === "pa")!;
  expect(ping("tpfcb", pa.ip, 1, 0.2, 2)).toMatchObject({ ok: true, received: 1 });
});

test("hostile namespace paths and a taken interface name are refused, leaving nothing behind", async () => {
  const linksBefore = inNetns(hostNs(), ["ip", "-o", "link"]).stdout.split("\n").length;
  const stateFile = path.join(lab!.inventory.hosts[0].stateDir, "endpoints.json");
  const idsBefore = Object.keys(JSON.parse(fs.readFileSync(stateFile, "utf8")).endpoints).sort();
  for (const netns of ["/run/netns/tpfca; reboot", "/run/netns/$(id)", "/run/netns/`id`", "/run/netns/a\nb", "/run/netns/../netns/'x'", '/run/netns/"q" x']) {
    await expect(agent!.client.addEndpoint({ id: "ph", netns })).rejects.toMatchObject({ status: 404 });
  }
  // A path that exists but is no network namespace: setns refuses it before any request is sent.
  await expect(agent!.client.addEndpoint({ id: "ph", netns: "/etc/hostname" })).rejects.toMatchObject({ status: 404, code: "no-netns" });
  // tpfca already has eth0 (endpoint pa): creating the pair fails (EEXIST), reported as the name taken.
  await expect(agent!.client.addEndpoint({ id: "pd", netns: "/run/netns/tpfca" })).rejects.toMatchObject({ status: 409 });
  // Hostile interface names never reach the kernel: the request is refused first.
  for (const ifname of ["eth 1", "e;x", "$(id)", "`id`", "a\nb", "..", "'q'"]) {
    await expect(agent!.client.addEndpoint({ id: "pe", netns: "/run/netns/tpfcc", ifname })).rejects.toMatchObject({ status: 400 });
  }
  expect(inNetns(hostNs(), ["ip", "-o", "link"]).stdout.split("\n").length).toBe(linksBefore);
  expect(Object.keys(JSON.parse(fs.readFileSync(stateFile, "utf8")).endpoints).sort()).toEqual(idsBefore);
  expect(ping("tpfcb", (await agent!.client.getEndpoint("pa"))!.ip, 1, 0.2, 2).ok).toBe(true);
});
