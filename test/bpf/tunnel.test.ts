/**
 * VXLAN mode in a real kernel: two host namespaces joined by an underlay
 * veth, each with its own pinned maps, a VXLAN device in external mode
 * (bpf_overlay on its ingress) and one container (bpf_lxc on its veth).
 * A ping between the containers only works if bpf_lxc sets the right tunnel
 * key (remote underlay address) and bpf_overlay delivers on the other side.
 */
import { mkdirSync } from "fs";
import { join } from "path";
import {
  DatapathMaps,
  DatapathObjects,
  DropReason,
  loadDatapathObjects,
  openDatapathMaps,
  TcHook,
  Verdict,
} from "../../bpf";
import { mountTempBpffs, TempBpffs } from "./support/bpffs";
import { ensureBuilt } from "./support/build";
import { execInNetns, ip, linkInfo } from "./support/netns";
import { addContainer, addNetns, Container, deleteNetns } from "./support/topology";
import { cleanupAll } from "../support/cleanup";

interface Host {
  netns: string;
  underlay: string;
  podCidr: string;
  vxlanIfindex: number;
  container: Container;
  dp: DatapathObjects;
  maps: DatapathMaps;
}

const VNI = 7;
const NAMESPACES = ["bftca", "bftcb", "bftha", "bfthb"];
let bpffs: TempBpffs | undefined;
const hosts: Host[] = [];
const cleanups: (() => void)[] = [];

function setUpHost(name: "a" | "b", underlay: string, podCidr: string, podIp: string): Host {
  const netns = `bfth${name}`;
  const vxlan = `bftvx${name}`;
  ip("-n", netns, "link", "add", vxlan, "type", "vxlan", "external", "dstport", "8472");
  ip("-n", netns, "link", "set", vxlan, "up");
  const container = addContainer(netns, `bftc${name}`, `bftv${name}`, `bfte${name}`, podIp);

  const pinRoot = join(bpffs!.dir, name);
  mkdirSync(pinRoot);
  const dp = loadDatapathObjects(pinRoot);
  cleanups.push(() => dp.close());
  const maps = openDatapathMaps(pinRoot);
  cleanups.push(() => maps.close());
  const vxlanIfindex = linkInfo(netns, vxlan).ifindex;
  maps.config.set({ mode: "vxlan", vni: VNI, vxlanIfindex, hostIfindex: 0 });
  maps.endpoints.set(podIp, {
    ifindex: container.hostSide.ifindex,
    endpointId: 1,
    mac: container.inside.mac,
    nodeMac: container.hostSide.mac,
  });

  const attachments: [number, TcHook["direction"], keyof DatapathObjects["programs"]][] = [
    [container.hostSide.ifindex, "ingress", "lxc"],
    [vxlanIfindex, "ingress", "overlay"],
  ];
  for (const [ifindex, direction, program] of attachments) {
    const hook = TcHook.open(ifindex, direction, { netns });
    cleanups.push(() => void hook.destroy());
    hook.attach(dp.programs[program]);
  }
  return { netns, underlay, podCidr, vxlanIfindex, container, dp, maps };
}

beforeAll(() => {
  ensureBuilt();
  bpffs = mountTempBpffs();
  addNetns("bftha");
  addNetns("bfthb");
  ip("link", "add", "bftua", "netns", "bftha", "type", "veth", "peer", "name", "bftub", "netns", "bfthb");
  ip("-n", "bftha", "addr", "add", "10.251.255.1/30", "dev", "bftua");
  ip("-n", "bfthb", "addr", "add", "10.251.255.2/30", "dev", "bftub");
  ip("-n", "bftha", "link", "set", "bftua", "up");
  ip("-n", "bfthb", "link", "set", "bftub", "up");

  hosts.push(setUpHost("a", "10.251.255.1", "10.251.1.0/24", "10.251.1.10"));
  hosts.push(setUpHost("b", "10.251.255.2", "10.251.2.0/24", "10.251.2.10"));
  const [a, b] = hosts;
  a.maps.tunnel.set(b.podCidr, { remote: b.underlay });
  b.maps.tunnel.set(a.podCidr, { remote: a.underlay });
  a.maps.peers.set(b.underlay);
  b.maps.peers.set(a.underlay);
});

afterAll(async () => {
  const steps = [...cleanups.reverse(), () => deleteNetns(...NAMESPACES), () => bpffs?.cleanup()];
  await cleanupAll(steps);
});

function counter(host: Host, ifindex: number, reason: number): bigint {
  return host.maps.metrics.get({ id: ifindex, direction: "ingress", reason }).packets;
}

test("containers on different hosts reach each other through the tunnel", () => {
  const [a, b] = hosts;
  const status = execInNetns(a.container.netns, ["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", b.container.ip]);
  expect(status).toBe(0);
  // A: requests into the tunnel; B: requests out of the tunnel to the pod, replies back in.
  expect(counter(a, a.container.hostSide.ifindex, Verdict.FORWARDED)).toBeGreaterThanOrEqual(3n);
  expect(counter(b, b.vxlanIfindex, Verdict.FORWARDED)).toBeGreaterThanOrEqual(3n);
  expect(counter(b, b.container.hostSide.ifindex, Verdict.FORWARDED)).toBeGreaterThanOrEqual(3n);
  expect(counter(a, a.vxlanIfindex, Verdict.FORWARDED)).toBeGreaterThanOrEqual(3n);
});

test("a packet for a pod the remote host does not have is dropped there as unknown-endpoint", () => {
  const [a, b] = hosts;
  const before = counter(b, b.vxlanIfindex, DropReason.UNKNOWN_ENDPOINT);
  expect(execInNetns(a.container.netns, ["ping", "-n", "-q", "-c", "1", "-W", "1", "10.251.2.99"])).not.toBe(0);
  expect(counter(b, b.vxlanIfindex, DropReason.UNKNOWN_ENDPOINT)).toBe(before + 1n);
});

test("real tunnel metadata: a sender missing from the peer map is dropped as unknown-peer, a wrong VNI as bad-vni", () => {
  const [a, b] = hosts;
  const ping = () => execInNetns(a.container.netns, ["ping", "-n", "-q", "-c", "1", "-W", "1", b.container.ip]);
  const delivered = counter(b, b.container.hostSide.ifindex, Verdict.FORWARDED);
  expect(b.maps.peers.delete(a.underlay)).toBe(true);
  try {
    const before = counter(b, b.vxlanIfindex, DropReason.UNKNOWN_PEER);
    expect(ping()).not.toBe(0);
    expect(counter(b, b.vxlanIfindex, DropReason.UNKNOWN_PEER)).toBe(before + 1n);
  } finally {
    b.maps.peers.set(a.underlay);
  }
  const cfg = a.maps.config.get();
  a.maps.config.set({ ...cfg, vni: VNI + 1 });
  try {
    const before = counter(b, b.vxlanIfindex, DropReason.BAD_VNI);
    expect(ping()).not.toBe(0);
    expect(counter(b, b.vxlanIfindex, DropReason.BAD_VNI)).toBe(before + 1n);
  } finally {
    a.maps.config.set(cfg);
  }
  expect(counter(b, b.container.hostSide.ifindex, Verdict.FORWARDED)).toBe(delivered); // nothing reached B's pod
  expect(ping()).toBe(0);
});

test("without a tunnel entry the packet goes to the host stack instead", () => {
  const [a, b] = hosts;
  const entry = a.maps.tunnel.get(b.podCidr)!;
  a.maps.tunnel.delete(b.podCidr);
  try {
    const before = counter(a, a.container.hostSide.ifindex, Verdict.PASSED);
    expect(execInNetns(a.container.netns, ["ping", "-n", "-q", "-c", "1", "-W", "1", b.container.ip])).not.toBe(0);
    expect(counter(a, a.container.hostSide.ifindex, Verdict.PASSED)).toBeGreaterThan(before);
  } finally {
    a.maps.tunnel.set(b.podCidr, entry);
  }
});
