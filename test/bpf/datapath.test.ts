/**
 * The datapath in a real kernel: a host namespace with two containers, no IP
 * forwarding and no routes to them. Only bpf_lxc (and bpf_host for traffic
 * from the host itself) can move packets between them. tc attach happens in
 * the host namespace through TcHook's netns option.
 */
import { execFileSync } from "child_process";
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

const HOST = "bfth";
const C1 = "bftc1";
const C2 = "bftc2";
const HOST_DEV = "bftbpfhost"; // stands in for bpfnet_host
const HOST_ADDR = "10.251.0.254";

let bpffs: TempBpffs | undefined;
let dp: DatapathObjects | undefined;
let maps: DatapathMaps;
let c1: Container;
let c2: Container;
let hostIfindex: number;
const hooks: TcHook[] = [];

function ping(from: string, to: string, count = 3): number {
  return execInNetns(from, ["ping", "-n", "-q", "-c", String(count), "-i", "0.2", "-W", "1", to]);
}

function forwarded(ifindex: number, direction: "ingress" | "egress" = "ingress"): bigint {
  return maps.metrics.get({ id: ifindex, direction, reason: Verdict.FORWARDED }).packets;
}

beforeAll(() => {
  ensureBuilt();
  addNetns(HOST);
  expect(execFileSync("ip", ["netns", "exec", HOST, "sysctl", "-n", "net.ipv4.ip_forward"], { encoding: "utf8" }).trim()).toBe("0");
  c1 = addContainer(HOST, C1, "bftv1", "bfte1", "10.251.0.11");
  c2 = addContainer(HOST, C2, "bftv2", "bfte2", "10.251.0.12");

  // The host's own path to the pods: a NOARP device the cluster CIDR is routed to.
  // (A veth whose peer stays unused: this kernel has no dummy driver.)
  ip("-n", HOST, "link", "add", HOST_DEV, "type", "veth", "peer", "name", "bftbpfpeer");
  ip("-n", HOST, "link", "set", "bftbpfpeer", "up");
  ip("-n", HOST, "link", "set", HOST_DEV, "arp", "off", "up");
  ip("-n", HOST, "addr", "add", `${HOST_ADDR}/32`, "dev", HOST_DEV);
  ip("-n", HOST, "route", "add", "10.251.0.0/24", "dev", HOST_DEV);
  // Replies to the host arrive on the pods' veths while the route points at HOST_DEV.
  execFileSync("ip", ["netns", "exec", HOST, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"]);
  for (const dev of ["bftv1", "bftv2"]) execFileSync("ip", ["netns", "exec", HOST, "sysctl", "-q", "-w", `net.ipv4.conf.${dev}.rp_filter=0`]);
  hostIfindex = linkInfo(HOST, HOST_DEV).ifindex;

  bpffs = mountTempBpffs();
  dp = loadDatapathObjects(bpffs.dir);
  maps = openDatapathMaps(bpffs.dir);
  maps.config.set({ mode: "l3", vni: 0, vxlanIfindex: 0, hostIfindex });
  for (const c of [c1, c2]) {
    maps.endpoints.set(c.ip, { ifindex: c.hostSide.ifindex, endpointId: c.hostSide.ifindex, mac: c.inside.mac, nodeMac: c.hostSide.mac });
  }
});

afterAll(async () => {
  // Each step on its own: one failure must not leave the rest behind.
  const steps = [
    ...hooks.map((h) => () => void h.destroy()),
    () => maps?.close(),
    () => dp?.close(),
    () => deleteNetns(C1, C2, HOST),
    () => bpffs?.cleanup(),
  ];
  await cleanupAll(steps);
});

test("without the datapath the containers cannot reach each other", () => {
  expect(ping(C1, c2.ip, 1)).not.toBe(0);
});

describe("bpf_lxc on both host-side veths", () => {
  let lxc1: TcHook;
  let lxc2: TcHook;

  beforeAll(() => {
    lxc1 = TcHook.open(c1.hostSide.ifindex, "ingress", { netns: HOST });
    hooks.push(lxc1);
    lxc2 = TcHook.open(c2.hostSide.ifindex, "ingress", { netns: HOST });
    hooks.push(lxc2);
    expect([lxc1.created, lxc2.created]).toEqual([true, true]);
    lxc1.attach(dp!.programs.lxc);
    lxc2.attach(dp!.programs.lxc);
  });

  test("the attached filter runs our program", () => {
    const progId = dp!.programs.lxc.info().id;
    expect(lxc1.query()).toEqual({ handle: 1, priority: 1, progId });
    // Attaching again replaces in place (the upgrade path) instead of failing.
    expect(lxc1.attach(dp!.programs.lxc).progId).toBe(progId);
    expect(lxc1.query()?.progId).toBe(progId);
    // Another slot on the same hook is empty.
    expect(lxc1.query({ priority: 2 })).toBeUndefined();
  });

  test("ping c1 → c2 succeeds and the forward counters of both veths grow", () => {
    const before = [forwarded(c1.hostSide.ifindex), forwarded(c2.hostSide.ifindex)];
    expect(ping(C1, c2.ip)).toBe(0);
    expect(forwarded(c1.hostSide.ifindex)).toBeGreaterThanOrEqual(before[0] + 3n); // requests
    expect(forwarded(c2.hostSide.ifindex)).toBeGreaterThanOrEqual(before[1] + 3n); // replies
  });

  test("a removed endpoint is no longer reachable, and comes back when re-added", () => {
    const entry = maps.endpoints.get(c2.ip)!;
    maps.endpoints.delete(c2.ip);
    try {
      expect(ping(C1, c2.ip, 1)).not.toBe(0);
    } finally {
      maps.endpoints.set(c2.ip, entry);
    }
    expect(ping(C1, c2.ip, 1)).toBe(0);
  });

  describe("bpf_host on the host device (tc egress)", () => {
    let host: TcHook;
    beforeAll(() => {
      host = TcHook.open(hostIfindex, "egress", { netns: HOST });
      hooks.push(host);
      host.attach(dp!.programs.host);
    });

    test("the host reaches a pod through it, and replies come back via the host stack", () => {
      const before = forwarded(hostIfindex, "egress");
      expect(ping(HOST, c1.ip)).toBe(0);
      expect(forwarded(hostIfindex, "egress")).toBeGreaterThanOrEqual(before + 3n);
      expect(maps.metrics.get({ id: c1.hostSide.ifindex, direction: "ingress", reason: Verdict.PASSED }).packets).toBeGreaterThanOrEqual(3n);
    });

    test("a cluster address with no endpoint is dropped as no-route", () => {
      const key = { id: hostIfindex, direction: "egress" as const, reason: DropReason.NO_ROUTE };
      const before = maps.metrics.get(key).packets;
      const forwardedBefore = forwarded(hostIfindex, "egress");
      // (ping retries a send the device dropped, so the count is at least one.)
      expect(ping(HOST, "10.251.0.99", 1)).not.toBe(0);
      expect(maps.metrics.get(key).packets).toBeGreaterThan(before);
      expect(forwarded(hostIfindex, "egress")).toBe(forwardedBefore);
    });
  });

  test("after detaching, the containers are cut off again", () => {
    lxc1.detach();
    lxc2.detach();
    expect(lxc1.query()).toBeUndefined();
    expect(ping(C1, c2.ip, 2)).not.toBe(0);
  });
});
