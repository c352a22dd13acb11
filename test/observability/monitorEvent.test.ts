/**
 * The node monitor's pure parts: a datapath record as the API's event (wall-clock time, the
 * reason's name, the endpoint's id), filters from query/CLI input (hostile values refused naming
 * the parameter and the value), the human one-liner, the time-ordered merge of several hosts'
 * streams, and the monitor's bits of bpfnet_config.flags.
 */
import { decodeEvent, DatapathEvent, LAYOUTS, monitorSettings, withMonitorFlags } from "../../bpf/abi";
import { DropReason } from "../../bpf";
import { parseAgentConfig } from "../../node-agent/config";
import { silentLogger } from "../../node-agent/daemon/log";
import { MonitorHub } from "../../node-agent/monitor/hub";
import {
  filterQuery,
  formatMonitorEvent,
  matchesFilter,
  MonitorEvent,
  MonitorFilter,
  parseMonitorFilter,
  TimeOrderedMerge,
  toMonitorEvent,
  wallOffsetMs,
} from "../../node-agent/monitor/event";
import { MINIMAL_AGENT_CONFIG } from "../agent/support/agentConfig";

const drop: DatapathEvent = {
  type: "drop",
  timeNs: 5_000_000_000n, // 5 s after boot
  hook: "lxc",
  ifindex: 7,
  toIfindex: 0,
  direction: "ingress",
  reason: DropReason.SPOOFED_SOURCE,
  proto: 6,
  saddr: "10.1.0.9",
  daddr: "10.1.1.5",
  sport: 40000,
  dport: 443,
  srcIdentity: 0,
  dstIdentity: 300,
  endpointId: 12,
  ruleId: 0,
  length: 60,
};
const BOOT = Date.parse("2026-01-01T00:00:00.000Z");

test("a record as the API's event: wall-clock time, reason and its name, the tuple with identities, the endpoint's id", () => {
  const e = toMonitorEvent(drop, "h1", BOOT, (n) => (n === 12 ? "web" : undefined));
  expect(e).toEqual({
    time: "2026-01-01T00:00:05.000Z",
    host: "h1",
    type: "drop",
    hook: "lxc",
    reason: -137,
    reasonName: "spoofed-source",
    ifindex: 7,
    direction: "ingress",
    proto: 6,
    source: { ip: "10.1.0.9", port: 40000, identity: 0 },
    destination: { ip: "10.1.1.5", port: 443, identity: 300 },
    endpointId: 12,
    endpoint: "web",
    length: 60,
  });
  const v = toMonitorEvent({ ...drop, type: "verdict", verdict: "deny", reason: 0, ruleId: 4, endpointId: 0 }, "h1", BOOT);
  expect(v).toMatchObject({ type: "verdict", verdict: "deny", ruleId: 4 });
  expect(v).not.toHaveProperty("reason");
  expect(v).not.toHaveProperty("endpointId");
  const t = toMonitorEvent({ ...drop, type: "trace", reason: 0, toIfindex: 9 }, "h1", BOOT);
  expect(t).toMatchObject({ type: "trace", reason: 0, reasonName: "forwarded", toIfindex: 9 });
});

test("the monotonic-to-wall offset: now on both clocks", () => {
  expect(wallOffsetMs(7_000_000_000n, BOOT + 7000)).toBe(BOOT);
});

test("decodeEvent reads every field from its C offset and refuses other sizes or types", () => {
  const buf = Buffer.alloc(LAYOUTS.event.size);
  const f = LAYOUTS.event.fields;
  buf.writeBigUInt64LE(123n, f.time_ns.offset);
  buf.writeUInt32LE(7, f.ifindex.offset);
  buf.writeUInt32LE(9, f.to_ifindex.offset);
  Buffer.from([10, 1, 0, 9]).copy(buf, f.saddr.offset);
  Buffer.from([10, 1, 1, 5]).copy(buf, f.daddr.offset);
  buf.writeUInt16BE(40000, f.sport.offset);
  buf.writeUInt16BE(443, f.dport.offset);
  buf[f.proto.offset] = 6;
  buf[f.type.offset] = 2; // verdict
  buf[f.direction.offset] = 2; // egress
  buf[f.hook.offset] = 2; // overlay
  buf[f.verdict.offset] = 1; // allow
  buf.writeUInt32LE(256, f.src_identity.offset);
  buf.writeUInt32LE(300, f.dst_identity.offset);
  buf.writeUInt32LE(12, f.endpoint_id.offset);
  buf.writeUInt32LE(4, f.rule_id.offset);
  buf.writeUInt32LE(60, f.len.offset);
  expect(decodeEvent(buf)).toEqual({
    type: "verdict",
    timeNs: 123n,
    hook: "overlay",
    ifindex: 7,
    toIfindex: 9,
    direction: "egress",
    reason: 0,
    verdict: "allow",
    proto: 6,
    saddr: "10.1.0.9",
    daddr: "10.1.1.5",
    sport: 40000,
    dport: 443,
    srcIdentity: 256,
    dstIdentity: 300,
    endpointId: 12,
    ruleId: 4,
    length: 60,
  });
  expect(() => decodeEvent(buf.subarray(0, 40))).toThrow(RangeError);
  buf[f.type.offset] = 99;
  expect(() => decodeEvent(buf)).toThrow(/unknown type 99/);
});

describe("filters", () => {
  test("types (comma-separated or repeated) and an endpoint id or number", () => {
    expect(parseMonitorFilter([], undefined)).toEqual({});
    expect(parseMonitorFilter(["drop,verdict", "drop"], "web")).toEqual({ types: ["drop", "verdict"], endpoint: "web" });
    expect(parseMonitorFilter(["trace"], "12")).toEqual({ types: ["trace"], endpoint: "12" });
    expect(filterQuery({ types: ["drop", "trace"], endpoint: "web-1" })).toBe("?type=drop&type=trace&endpoint=web-1");
    expect(filterQuery({})).toBe("");
  });

  test.each(["drop;id", "$(id)", "`id`", "drop\nx", "..", "'drop'", "dro p", "DROP"])("a hostile type %j is refused naming it", (bad) => {
    expect(() => parseMonitorFilter([bad], undefined)).toThrow(`type must be one of drop, verdict, trace, got ${JSON.stringify(bad.split(",")[0])}`);
  });

  test.each(["a b", "x;y", "$(id)", "`id`", "a\nb", "..", "../etc", "'a'", '"a"', "", "-x"])("a hostile endpoint %j is refused naming it", (bad) => {
    expect(() => parseMonitorFilter([], bad)).toThrow(`endpoint must be an endpoint id or number, got ${JSON.stringify(bad)}`);
  });

  test("matching: type, and the endpoint by id or number", () => {
    const e = toMonitorEvent(drop, "h1", BOOT, () => "web");
    expect(matchesFilter({}, e)).toBe(true);
    expect(matchesFilter({ types: ["drop"] }, e)).toBe(true);
    expect(matchesFilter({ types: ["trace", "verdict"] }, e)).toBe(false);
    expect(matchesFilter({ endpoint: "web" }, e)).toBe(true);
    expect(matchesFilter({ endpoint: "12" }, e)).toBe(true);
    expect(matchesFilter({ endpoint: "api" }, e)).toBe(false);
    expect(matchesFilter({ endpoint: "12" }, { ...e, endpointId: undefined, endpoint: undefined })).toBe(false);
  });
});

test("the one-liner names time, host, what happened, where, and the flow with identities", () => {
  const e = toMonitorEvent(drop, "h1", BOOT, () => "web");
  expect(formatMonitorEvent(e)).toBe("2026-01-01T00:00:05.000Z h1 DROP spoofed-source at lxc ingress ifindex 7 endpoint web: 10.1.0.9:40000 (id ?) -> 10.1.1.5:443 (id 300) tcp 60B");
  const v = toMonitorEvent({ ...drop, type: "verdict", verdict: "allow", reason: 0, ruleId: 3, proto: 1, srcIdentity: 256 }, "h2", BOOT);
  expect(formatMonitorEvent(v)).toBe("2026-01-01T00:00:05.000Z h2 POLICY ingress ALLOW rule 3 endpoint 12: 10.1.0.9 (id 256) -> 10.1.1.5 (id 300) icmp 60B");
  const t = toMonitorEvent({ ...drop, type: "trace", reason: 1, toIfindex: 0 }, "h1", BOOT);
  expect(formatMonitorEvent(t)).toMatch(/ h1 TRACE passed from lxc ifindex 7 to stack endpoint 12: /);
});

describe("time-ordered merge of several hosts' streams", () => {
  const at = (host: string, ms: number): MonitorEvent => ({ ...toMonitorEvent(drop, host, BOOT), time: new Date(BOOT + ms).toISOString() });

  test("events are held for the window, then released oldest first whatever their arrival order", () => {
    const m = new TimeOrderedMerge(500);
    m.push(at("h2", 300));
    m.push(at("h1", 100));
    m.push(at("h1", 900));
    expect(m.release(BOOT + 900).map((e) => [e.host, e.time.slice(17)])).toEqual([
      ["h1", "00.100Z"],
      ["h2", "00.300Z"],
    ]);
    m.push(at("h2", 800)); // late, but still inside the window: goes before h1's 900
    expect(m.release(BOOT + 1000)).toEqual([]);
    expect(m.release(BOOT + 1500).map((e) => [e.host, e.time.slice(17)])).toEqual([
      ["h2", "00.800Z"],
      ["h1", "00.900Z"],
    ]);
  });

  test("flush releases everything, ties ordered by host", () => {
    const m = new TimeOrderedMerge(500);
    m.push(at("h2", 100));
    m.push(at("h1", 100));
    expect(m.release(BOOT, true).map((e) => e.host)).toEqual(["h1", "h2"]);
    expect(m.release(BOOT + 10_000, true)).toEqual([]);
  });
});

test("the monitor's bits of bpfnet_config.flags: set, read back, other bits kept, bad sampling refused", () => {
  const flags = withMonitorFlags(0x80, { traceEndpoints: true, traceSampleEvery: 1000 });
  expect(monitorSettings(flags)).toEqual({ eventsOff: false, traceEndpoints: true, traceSampleEvery: 1000 });
  expect(flags & 0x80).toBe(0x80);
  expect(monitorSettings(withMonitorFlags(flags, { eventsOff: true }))).toEqual({ eventsOff: true, traceEndpoints: false, traceSampleEvery: 0 });
  expect(monitorSettings(withMonitorFlags(0, { traceSampleEvery: 65535 })).traceSampleEvery).toBe(65535);
  for (const bad of [-1, 65536, 1.5, NaN]) expect(() => withMonitorFlags(0, { traceSampleEvery: bad })).toThrow(RangeError);
});

describe("the agent config's monitor switches", () => {
  const AGENT = MINIMAL_AGENT_CONFIG;

  test("events on and no sampling by default; both settable", () => {
    expect(parseAgentConfig(AGENT)).toMatchObject({ monitorEvents: true, traceSampleEvery: 0 });
    expect(parseAgentConfig({ ...AGENT, monitorEvents: false, traceSampleEvery: 100 })).toMatchObject({ monitorEvents: false, traceSampleEvery: 100 });
    expect(parseAgentConfig({ ...AGENT, traceSampleEvery: 0 }).traceSampleEvery).toBe(0);
  });

  test.each(["false", "0", 1, null, "$(id)", "`id`", "a;b", "x\ny"])("monitorEvents %j is refused naming it", (bad) => {
    expect(() => parseAgentConfig({ ...AGENT, monitorEvents: bad })).toThrow(`monitorEvents must be true or false, got ${JSON.stringify(bad)}`);
  });

  test.each([-1, 65536, 1.5, "10", "$(id)", "1;2", "..", null])("traceSampleEvery %j is refused naming it", (bad) => {
    expect(() => parseAgentConfig({ ...AGENT, traceSampleEvery: bad })).toThrow(`traceSampleEvery must be an integer from 0 (no sampling) to 65535, got ${JSON.stringify(bad)}`);
  });
});

test("the hub traces an endpoint while some listener naming it wants traces, knows whether anyone listens, and says when either changes", () => {
  let changes = 0;
  const hub = new MonitorHub("/nonexistent", "h1", silentLogger, () => new Map(), () => changes++);
  const listener = (filter: MonitorFilter) => ({ filter, send: () => true });
  expect(hub.listening()).toBe(false);
  const a = hub.subscribe(listener({ types: ["trace"], endpoint: "web" }));
  expect(hub.listening()).toBe(true);
  expect(changes).toBe(2); // the first listener, and web traced
  const b = hub.subscribe(listener({ endpoint: "web" })); // all types: traces too
  const c = hub.subscribe(listener({ types: ["drop"], endpoint: "api" })); // no traces wanted
  const d = hub.subscribe(listener({ types: ["trace"] })); // no endpoint: nothing switched on
  expect([...hub.tracedEndpoints()]).toEqual(["web"]);
  expect(changes).toBe(2);
  a();
  a(); // twice is once
  expect([...hub.tracedEndpoints()]).toEqual(["web"]);
  expect(changes).toBe(2);
  b();
  expect([...hub.tracedEndpoints()]).toEqual([]);
  expect(changes).toBe(3);
  c();
  expect(hub.listening()).toBe(true);
  expect(changes).toBe(3);
  d();
  expect(hub.counts().listeners).toBe(0);
  expect(hub.listening()).toBe(false);
  expect(changes).toBe(4); // the last listener went
});
