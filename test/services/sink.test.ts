// The service reconciler's I/O half against the real datapath (private bpffs, BPF_PROG_TEST_RUN
// through bpf_lxc): what desired.ts plans and the sink writes is what the datapath translates
// to; backend ids survive a restart (read back, nothing rewritten); a backend that leaves
// drains TERMINATING (its pinned flow continues, new flows never pick it) until its flow's CT
// entry goes; Maglev tables steer flows as the pure table says; a deleted service's reverse-NAT
// entry stays while CT holds its flows.
import { lbFlowHash, LbBackendFlags, LbProto, MAGLEV_M, openLbMaps, TcAction, testRun } from "../../bpf";
import type { DatapathMaps, DatapathObjects, Endpoint, LbMaps } from "../../bpf";
import { backendName, DesiredFrontend, desiredFrontends, Draining, planMaps, ServiceEndpoint } from "../../node-agent/services/desired";
import { flowsInUse, ServiceMapSink } from "../../node-agent/services/sink";
import type { StoredService } from "../../provider/services/serviceSpec";
import { loadTestDatapath, TestDatapath } from "../bpf/support/datapath";
import { ip, ipQuiet } from "../bpf/support/netns";
import { l4Ports, parseIpv4Frame, tcp, TCP_FLAGS, withL4Checksum } from "../bpf/support/packets";

const GATEWAY_MAC = "02:00:00:00:00:fe";
const A = { ip: "10.252.1.1", endpointId: 30, mac: "02:00:00:00:2a:01" };
const B = { ip: "10.252.1.2", endpointId: 31, mac: "02:00:00:00:2b:01" };
const C = { ip: "10.252.1.3", endpointId: 32, mac: "02:00:00:00:2c:01" };
const DEV_A = "bftsva";
const DEV_B = "bftsvb";
const VIP = "10.96.7.10";

let t: TestDatapath | undefined;
let dp: DatapathObjects;
let maps: DatapathMaps;
let lb: LbMaps;
let ifA: number;
let ifB: number;

const svc = (extra: Partial<StoredService> = {}): StoredService => ({
  schema: 1,
  serviceId: "id",
  serviceName: "api",
  frontend: { ip: VIP, ports: [{ port: 80, targetPort: 8080, protocol: "TCP", revNatIndex: 7 }] },
  selector: { app: "api" },
  sessionAffinity: "none",
  sessionAffinityTimeoutSeconds: 10800,
  algorithm: "random",
  ipAllocated: true,
  ...extra,
});
const BOTH: ServiceEndpoint[] = [
  { host: "h1", ip: B.ip, labels: { app: "api" } },
  { host: "h1", ip: C.ip, labels: { app: "api" } },
];

beforeAll(() => {
  ipQuiet("link", "del", DEV_A);
  ip("link", "add", DEV_A, "type", "veth", "peer", "name", DEV_B);
  [ifA, ifB] = [DEV_A, DEV_B].map((dev) => (JSON.parse(ip("-j", "link", "show", "dev", dev)) as { ifindex: number }[])[0].ifindex);
  t = loadTestDatapath();
  ({ dp, maps } = t);
  lb = openLbMaps(t.bpffs.dir);
  const ep = (e: typeof A, ifindex: number): Endpoint => ({ ifindex, endpointId: e.endpointId, mac: e.mac, nodeMac: "0a:00:00:00:00:01", flags: 0 });
  maps.config.set({ mode: "vxlan", vni: 7, vxlanIfindex: 4343, hostIfindex: 4444, gateway: "10.252.1.254" });
  maps.endpoints.set(A.ip, ep(A, ifA));
  maps.endpoints.set(B.ip, ep(B, ifB));
  maps.endpoints.set(C.ip, ep(C, ifB));
});

afterAll(() => {
  lb?.close();
  t?.close();
  ipQuiet("link", "del", DEV_A);
});

const syn = (sport: number, flags: number = TCP_FLAGS.SYN) =>
  testRun(dp.programs.lxc, withL4Checksum(tcp({ srcMac: A.mac, dstMac: GATEWAY_MAC, src: A.ip, dst: VIP }, sport, 80, flags, Buffer.from("x"))), { ifindex: ifA });
/** Where a packet from A to VIP:80 went: "addr:port". */
const sentTo = (sport: number, flags: number = TCP_FLAGS.SYN) => {
  const out = syn(sport, flags);
  expect(out.retval).not.toBe(TcAction.SHOT);
  const p = parseIpv4Frame(out.data);
  return `${p.dst}:${l4Ports(out.data).dport}`;
};

/** One reconciler pass as the agent runs it: plan from the maps read back, write through the sink. */
function pass(sink: ServiceMapSink, frontends: DesiredFrontend[], draining: Draining, now = Date.now()) {
  const cur = sink.read();
  const r = planMaps(frontends, cur.backends, draining, () => flowsInUse(maps.ct, lb), cur.revNat, now, 60_000);
  sink.apply(r.target);
  return r;
}

test("the planned maps are what the datapath translates to; a restart keeps every id and rewrites nothing", () => {
  const sink = new ServiceMapSink(lb);
  const frontends = desiredFrontends([svc()], BOTH);
  pass(sink, frontends, { backends: new Map(), revNat: new Map() });
  const rows = lb.services.entries();
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({ vip: VIP, port: 80, proto: LbProto.TCP, revNatIndex: 7, flags: 0 });
  const names = new Map(lb.backends.entries().map(([id, b]) => [id, backendName(b)]));
  expect(rows[0].backendIds.map((id) => names.get(id)).sort()).toEqual([`${B.ip}:8080/6`, `${C.ip}:8080/6`]);
  expect(lb.revNat.get(7)).toEqual({ vip: VIP, port: 80 });
  const seen = new Set(Array.from({ length: 40 }, (_, i) => sentTo(41000 + i)));
  expect(seen).toEqual(new Set([`${B.ip}:8080`, `${C.ip}:8080`]));

  // A restarted agent: a fresh sink over the pinned maps, no memory of its own.
  const again = new ServiceMapSink(openLbMaps(t!.bpffs.dir));
  pass(again, desiredFrontends([svc()], [...BOTH].reverse()), { backends: new Map(), revNat: new Map() });
  expect(again.stats).toEqual({ writes: 0, deletes: 0, fullReads: 1 });
  expect(new Map(lb.backends.entries().map(([id, b]) => [id, backendName(b)]))).toEqual(names);
});

test("a backend that leaves drains: its pinned flow continues, new flows never pick it, it goes once its CT entry does", () => {
  const sink = new ServiceMapSink(lb);
  let draining: Draining = { backends: new Map(), revNat: new Map() };
  draining = pass(sink, desiredFrontends([svc()], BOTH), draining).draining;
  // A flow pinned to C.
  let sport = 42000;
  while (sentTo(sport) !== `${C.ip}:8080`) sport++;
  const cId = lb.backends.entries().find(([, b]) => b.addr === C.ip)![0];
  expect(flowsInUse(maps.ct, lb).backends.has(cId)).toBe(true);

  // C's endpoint goes: TERMINATING, out of the slots.
  draining = pass(sink, desiredFrontends([svc()], BOTH.slice(0, 1)), draining).draining;
  expect(lb.backends.get(cId)!.flags).toBe(LbBackendFlags.TERMINATING);
  expect(lb.services.entries()[0].backendIds).not.toContain(cId);
  expect(sentTo(sport, TCP_FLAGS.ACK)).toBe(`${C.ip}:8080`); // the established flow keeps it
  for (let i = 0; i < 30; i++) expect(sentTo(43000 + i)).toBe(`${B.ip}:8080`); // new ones never

  // The flow's CT entries go (closed and collected): the next pass removes C.
  for (const e of maps.ct.entries()) if (e.backendId === cId || e.daddr === C.ip || e.saddr === C.ip) maps.ct.delete(e);
  draining = pass(sink, desiredFrontends([svc()], BOTH.slice(0, 1)), draining).draining;
  expect(lb.backends.get(cId)).toBeUndefined();
  expect(draining.backends.size).toBe(0);
});

test("Maglev: the table in the map steers each flow to the backend the pure table names", () => {
  const sink = new ServiceMapSink(lb);
  const frontends = desiredFrontends([svc({ algorithm: "maglev" })], BOTH);
  pass(sink, frontends, { backends: new Map(), revNat: new Map() });
  const table = lb.maglev.get(7)!;
  expect(table).toHaveLength(MAGLEV_M);
  const names = new Map(lb.backends.entries().map(([id, b]) => [id, `${b.addr}:${b.port}`]));
  expect(table.map((id) => backendName(lb.backends.get(id)!))).toEqual(frontends[0].maglev);
  for (let i = 0; i < 20; i++) {
    const sportI = 44000 + i;
    const want = names.get(table[lbFlowHash({ saddr: A.ip, daddr: VIP, sport: sportI, dport: 80, proto: LbProto.TCP }) % MAGLEV_M]);
    expect(sentTo(sportI)).toBe(want);
  }
});

test("a deleted service's rows go at once; its reverse-NAT entry stays while CT holds its flows", () => {
  const sink = new ServiceMapSink(lb);
  pass(sink, desiredFrontends([svc()], BOTH), { backends: new Map(), revNat: new Map() });
  sentTo(45000);
  expect(flowsInUse(maps.ct, lb).revNat.has(7)).toBe(true);
  const r = pass(sink, [], { backends: new Map(), revNat: new Map() });
  expect(lb.services.entries()).toEqual([]);
  expect(lb.maglev.entries()).toEqual([]);
  expect(lb.revNat.get(7)).toEqual({ vip: VIP, port: 80 });
  for (const e of maps.ct.entries()) maps.ct.delete(e);
  pass(sink, [], r.draining);
  expect(lb.revNat.entries()).toEqual([]);
  expect(lb.backends.entries()).toEqual([]);
});
