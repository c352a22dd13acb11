/**
 * The lasting trace switches (node-agent/monitor/traceSwitch.ts): the file they are kept in, read
 * back after a "restart" (a new TraceSwitches on the same file), written atomically, hostile
 * values refused naming them; and the status line that shows them (`bpfnet status`).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { checkSampleEvery, checkTraceEndpoint, formatTraceState, parseTraceState, TraceSwitches } from "../../node-agent/monitor/traceSwitch";
import { formatMonitorStatus } from "../../node-agent/monitor/statusText";
import type { MonitorStatus } from "../../node-agent/api/types";

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-traces-"))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const HOSTILE = ["a b", "x;y", "$(id)", "`id`", "a\nb", "..", "../x", "'a'", '"a"', "", "-a"];

test("switches survive a new reader of the file (an agent restart), sorted and without repeats", () => {
  const file = path.join(dir, "state", "monitor-traces.json");
  const warnings: string[] = [];
  const t = TraceSwitches.load(file, (m) => warnings.push(m));
  expect(t.endpoints).toEqual([]);
  expect(t.sampleEvery).toBeUndefined();
  expect(t.setEndpoint("web", true)).toBe(true);
  expect(t.setEndpoint("api", true)).toBe(true);
  expect(t.setEndpoint("web", true)).toBe(false); // already on
  expect(t.setSampleEvery(100)).toBe(true);
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  expect(fs.existsSync(`${file}.tmp`)).toBe(false);

  const again = TraceSwitches.load(file, (m) => warnings.push(m));
  expect(again.endpoints).toEqual(["api", "web"]);
  expect(again.sampleEvery).toBe(100);
  expect(again.setEndpoint("api", false)).toBe(true);
  expect(again.setEndpoint("api", false)).toBe(false);
  expect(again.setSampleEvery(undefined)).toBe(true); // back to the agent config's
  const third = TraceSwitches.load(file, (m) => warnings.push(m));
  expect(third.endpoints).toEqual(["web"]);
  expect(third.sampleEvery).toBeUndefined();
  expect(warnings).toEqual([]);
});

test("an unreadable or foreign file is reported and ignored, never half-applied", () => {
  const file = path.join(dir, "monitor-traces.json");
  for (const text of ["{", "[]", '{"schema":2,"endpoints":[]}', '{"schema":1}', '{"schema":1,"endpoints":["$(id)"]}', '{"schema":1,"endpoints":[],"sampleEvery":70000}']) {
    fs.writeFileSync(file, text);
    const warnings: string[] = [];
    const t = TraceSwitches.load(file, (m) => warnings.push(m));
    expect({ text, endpoints: t.endpoints, sample: t.sampleEvery, warned: warnings.length }).toEqual({ text, endpoints: [], sample: undefined, warned: 1 });
    expect(warnings[0]).toContain(`${file} ignored: `);
  }
  expect(parseTraceState(formatTraceState({ endpoints: ["b", "a", "a"], sampleEvery: 0 }))).toEqual({ endpoints: ["a", "b"], sampleEvery: 0 });
});

test.each(HOSTILE)("endpoint %j is refused naming it, and nothing is written", (bad) => {
  expect(() => checkTraceEndpoint(bad)).toThrow(`endpoint must be an endpoint id or number, got ${JSON.stringify(bad)}`);
  const file = path.join(dir, "t.json");
  const t = TraceSwitches.load(file, () => undefined);
  expect(() => t.setEndpoint(bad, true)).toThrow("endpoint must be");
  expect(fs.existsSync(file)).toBe(false);
});

test.each([-1, 65536, 1.5, "1;2", "$(id)", "`id`", "1\n2", "..", "'7'", " 7", "0x10", null, true])("sample %j is refused naming it", (bad) => {
  expect(() => checkSampleEvery(bad)).toThrow(`sample must be an integer from 0 (no sampling) to 65535, got ${JSON.stringify(bad)}`);
});

test("sample rates from the command line: 0..65535 as digits", () => {
  expect(checkSampleEvery("0")).toBe(0);
  expect(checkSampleEvery("65535")).toBe(65535);
  expect(checkSampleEvery(1000)).toBe(1000);
});

test("the status line says whether events are written, what is traced and what was read", () => {
  const m: MonitorStatus = { state: "idle", listeners: 0, received: { drop: 3, verdict: 2, trace: 1 }, lost: "5", listenerDropped: 0, traceSampleEvery: 0, tracedEndpoints: [], listenerTraced: [] };
  expect(formatMonitorStatus(m)).toBe("monitor   idle (no listener: the datapath writes no event); traces off; read drop 3, verdict 2, trace 1, lost 5");
  expect(formatMonitorStatus({ ...m, state: "listening", listeners: 2, tracedEndpoints: ["web"], listenerTraced: ["api"], traceSampleEvery: 100, listenerDropped: 4 })).toBe(
    "monitor   2 listeners; traces endpoints web; while listened to: api; 1 in 100 sampled; read drop 3, verdict 2, trace 1, lost 5, 4 not sent to backed-up listeners",
  );
  expect(formatMonitorStatus({ ...m, state: "off" })).toContain("monitor   OFF (monitorEvents: false)");
});
