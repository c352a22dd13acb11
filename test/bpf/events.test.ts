/**
 * The node monitor's events through BPF_PROG_TEST_RUN and the addon's ring reader: a drop from
 * the one exit path (reason, device, tuple, identities), policy verdicts from enforce's decision
 * point (allow once per flow, deny every packet, rule and peer identity), traces only for a
 * TRACE endpoint or when sampled, the switch that turns every event off, and a flood into a
 * ring nobody drains counted as lost while the datapath keeps its verdicts.
 *
 * Two endpoints sit on a veth pair made for the test (root namespace, bftea/bfteb).
 */
import {
  DropReason,
  EndpointFlags,
  Identity,
  PolicyAction,
  PolicyDirection,
  TcAction,
  testRun,
  Verdict,
} from "../../bpf";
import type { DatapathMaps, DatapathObjects, Endpoint } from "../../bpf";
import { DatapathEvent, withMonitorFlags } from "../../bpf/abi";
import { EventReader, EventsLostMap } from "../../bpf/events";
import { loadTestDatapath, TestDatapath } from "./support/datapath";
import { ipQuiet, vethPair } from "./support/netns";
import { tcp, TCP_FLAGS } from "./support/packets";

const GATEWAY_MAC = "02:00:00:00:00:fe";
const A = { ip: "10.251.1.1", id: 2000, endpointId: 20, mac: "02:00:00:00:0a:02" };
const B = { ip: "10.251.1.2", id: 2001, endpointId: 21, mac: "02:00:00:00:0b:02" };
const OUTSIDE = "192.0.2.77";
const DEV_A = "bftea";
const DEV_B = "bfteb";
const CONFIG = { mode: "l3" as const, vni: 0, vxlanIfindex: 0, hostIfindex: 4444 };

let t: TestDatapath | undefined;
let dp: DatapathObjects;
let maps: DatapathMaps;
let reader: EventReader | undefined;
let lost: EventsLostMap | undefined;
let ifA: number;
let ifB: number;
const received: DatapathEvent[] = [];

beforeAll(() => {
  [ifA, ifB] = vethPair(DEV_A, DEV_B);
  t = loadTestDatapath();
  ({ dp, maps } = t);
  reader = EventReader.open(t.bpffs.dir, (batch) => received.push(...batch));
  lost = EventsLostMap.open(t.bpffs.dir);
});

afterAll(() => {
  reader?.close();
  lost?.close();
  t?.close();
  ipQuiet("link", "del", DEV_A);
});

function endpoint(e: typeof A, ifindex: number, flags: number): Endpoint {
  return { ifindex, endpointId: e.endpointId, mac: e.mac, nodeMac: "0a:00:00:00:00:01", flags };
}

function setEndpoints(aFlags: number, bFlags: number): void {
  maps.endpoints.set(A.ip, endpoint(A, ifA, aFlags));
  maps.endpoints.set(B.ip, endpoint(B, ifB, bFlags));
}

beforeEach(() => {
  for (const row of maps.policy.entries()) maps.policy.delete(row);
  for (const e of maps.ct.entries()) maps.ct.delete(e);
  maps.config.set(CONFIG);
  setEndpoints(0, 0);
  maps.ipcache.set(`${A.ip}/32`, A.id);
  maps.ipcache.set(`${B.ip}/32`, B.id);
  reader!.drain();
  received.length = 0;
});

const frame = (src: string, dst: string) => ({ srcMac: A.mac, dstMac: GATEWAY_MAC, src, dst });
const fromA = (src: string, dst: string, sport: number, dport: number) =>
  testRun(dp.programs.lxc, tcp(frame(src, dst), sport, dport, TCP_FLAGS.SYN), { ifindex: ifA }).retval;

/** What the ring delivered for the runs so far (drained synchronously). */
function events(): DatapathEvent[] {
  reader!.drain();
  return received.splice(0);
}

test("a spoofed source: one drop event from bpf_lxc with reason, device, tuple; the claimed identity is not trusted", () => {
  expect(fromA(B.ip, OUTSIDE, 41000, 443)).toBe(TcAction.SHOT);
  const got = events();
  expect(got).toHaveLength(1);
  expect(got[0]).toMatchObject({
    type: "drop",
    hook: "lxc",
    reason: DropReason.SPOOFED_SOURCE,
    ifindex: ifA,
    direction: "ingress",
    proto: 6,
    saddr: B.ip,
    daddr: OUTSIDE,
    sport: 41000,
    dport: 443,
    srcIdentity: 0,
    dstIdentity: Identity.WORLD,
    length: expect.any(Number),
  });
  expect(got[0].length).toBeGreaterThan(40);
});

test("policy: an allowed flow gives one allow verdict (its first packet), a denied one a deny verdict and a drop per packet", () => {
  setEndpoints(0, EndpointFlags.ENFORCE_INGRESS);
  maps.policy.set({ endpointId: B.endpointId, direction: PolicyDirection.INGRESS, identity: A.id, dport: 80, proto: 6, action: PolicyAction.ALLOW, proxyPort: 0, ruleId: 77 });

  expect(fromA(A.ip, B.ip, 40000, 80)).toBe(TcAction.REDIRECT);
  expect(fromA(A.ip, B.ip, 40000, 80)).toBe(TcAction.REDIRECT); // same flow: no second verdict
  let got = events();
  expect(got).toEqual([
    expect.objectContaining({ type: "verdict", verdict: "allow", endpointId: B.endpointId, ruleId: 77, direction: "ingress", srcIdentity: A.id, dstIdentity: B.id, saddr: A.ip, daddr: B.ip, dport: 80 }),
  ]);

  expect(fromA(A.ip, B.ip, 40001, 81)).toBe(TcAction.SHOT);
  expect(fromA(A.ip, B.ip, 40001, 81)).toBe(TcAction.SHOT);
  got = events();
  const denies = got.filter((e) => e.type === "verdict");
  const drops = got.filter((e) => e.type === "drop");
  expect(denies).toHaveLength(2);
  expect(denies[0]).toMatchObject({ verdict: "deny", endpointId: B.endpointId, ruleId: 0, srcIdentity: A.id, dport: 81 });
  expect(drops).toHaveLength(2);
  expect(drops[0]).toMatchObject({ reason: DropReason.POLICY_DENIED, endpointId: A.endpointId, srcIdentity: A.id, dstIdentity: B.id, sport: 40001, dport: 81 });
});

test("traces: none by default, one per packet of a TRACE endpoint (naming where it went), none for others", () => {
  expect(fromA(A.ip, B.ip, 40010, 80)).toBe(TcAction.REDIRECT);
  expect(events()).toEqual([]);

  // The flag alone does nothing until the config says some endpoint traces (the cheap exit path).
  setEndpoints(0, EndpointFlags.TRACE);
  expect(fromA(A.ip, B.ip, 40011, 80)).toBe(TcAction.REDIRECT);
  expect(events()).toEqual([]);

  maps.config.set({ ...CONFIG, flags: withMonitorFlags(0, { traceEndpoints: true }) });
  expect(fromA(A.ip, B.ip, 40012, 80)).toBe(TcAction.REDIRECT);
  expect(fromA(A.ip, OUTSIDE, 40013, 80)).toBe(TcAction.OK); // A is not traced, nor is the outside
  const got = events();
  expect(got).toEqual([
    expect.objectContaining({ type: "trace", hook: "lxc", reason: Verdict.FORWARDED, ifindex: ifA, toIfindex: ifB, saddr: A.ip, daddr: B.ip, sport: 40012, endpointId: A.endpointId }),
  ]);
  // TRACE alone does not turn policy on: no CT entry for the open endpoints.
  expect(maps.ct.entries()).toEqual([]);
});

test("sampling: 1 in 1 traces every forwarded packet with no endpoint flag", () => {
  maps.config.set({ ...CONFIG, flags: withMonitorFlags(0, { traceSampleEvery: 1 }) });
  for (let port = 40020; port < 40025; port++) expect(fromA(A.ip, B.ip, port, 80)).toBe(TcAction.REDIRECT);
  expect(events().map((e) => [e.type, e.sport])).toEqual([40020, 40021, 40022, 40023, 40024].map((p) => ["trace", p]));
});

test("the config switch turns every event off (the drop is still counted)", () => {
  maps.config.set({ ...CONFIG, flags: withMonitorFlags(0, { eventsOff: true, traceSampleEvery: 1 }) });
  const before = maps.metrics.get({ id: ifA, direction: "ingress", reason: DropReason.SPOOFED_SOURCE }).packets;
  expect(fromA(B.ip, OUTSIDE, 41001, 443)).toBe(TcAction.SHOT);
  expect(fromA(A.ip, B.ip, 40030, 80)).toBe(TcAction.REDIRECT);
  expect(events()).toEqual([]);
  expect(maps.metrics.get({ id: ifA, direction: "ingress", reason: DropReason.SPOOFED_SOURCE }).packets).toBe(before + 1n);
});

test("a flood into a ring nobody drains: every event is delivered or counted lost, and the datapath never stalls", () => {
  const lostBefore = lost!.total();
  const runs = 10000; // > 256 KiB / 64 B per record
  const res = testRun(dp.programs.lxc, tcp(frame(B.ip, OUTSIDE), 42000, 443, TCP_FLAGS.SYN), { ifindex: ifA, repeat: runs });
  expect(res.retval).toBe(TcAction.SHOT);
  const delivered = events().filter((e) => e.type === "drop" && e.sport === 42000).length;
  const lostNow = Number(lost!.total() - lostBefore);
  expect(lostNow).toBeGreaterThan(0);
  expect(delivered).toBeGreaterThan(0);
  expect(delivered + lostNow).toBe(runs);
  expect(reader!.malformed).toBe(0);
});
