// The pure rules behind the reliability scenarios: which node record an agent may overwrite
// (scenario 5) and the bounded applied log (scenario 1).
import { AppliedLog } from "../../node-agent/daemon/appliedLog";
import { newerAgent } from "../../node-agent/daemon/view";

const record = (incarnation: string, startedAt: string) => JSON.stringify({ schema: 1, host: "h2", underlayIp: "10.0.0.2", podCidr: "10.1.2.0/24", agentVersion: "0.2.0", incarnation, startedAt });

describe("newerAgent: a stale agent never overwrites a newer one's node record", () => {
  const us = { incarnation: "old", startedAt: new Date("2026-01-01T10:00:00Z") };
  const judge = (existing: string) => newerAgent(existing, us.incarnation, us.startedAt);

  test("a record of an agent that started later is refused, naming it", () => {
    expect(judge(record("new", "2026-01-01T10:00:01Z"))).toBe("agent new (version 0.2.0, started 2026-01-01T10:00:01Z, underlay 10.0.0.2) started after this one (2026-01-01T10:00:00.000Z)");
  });

  test("our own record, an older agent's (a restart replaces its predecessor) or one started at the same time may be overwritten", () => {
    expect(judge(record("old", "2026-01-01T11:00:00Z"))).toBeUndefined();
    expect(judge(record("previous", "2026-01-01T09:59:59Z"))).toBeUndefined();
    expect(judge(record("twin", "2026-01-01T10:00:00Z"))).toBeUndefined();
  });

  test("unreadable records (not JSON, another schema, no valid time) never block the write", () => {
    expect(judge("not json")).toBeUndefined();
    expect(judge(JSON.stringify({ schema: 2, host: "h2", underlayIp: "10.0.0.2", incarnation: "x", startedAt: "2030-01-01T00:00:00Z" }))).toBeUndefined();
    expect(judge(record("new", "tomorrow"))).toBeUndefined();
  });
});

describe("AppliedLog", () => {
  const batch = (relist: boolean, revision: number, ...revs: number[]) => ({ relist, revision, events: revs.map((r) => ({ type: "put" as const, key: `/k${r}`, value: "", modRevision: r })) });

  test("records events in order with their prefix and whether a relist produced them, and every list", () => {
    const log = new AppliedLog();
    log.record("/a/", batch(true, 5, 3, 4));
    log.record("/a/", batch(false, 6, 6));
    log.record("/b/", batch(true, 6));
    expect(log.view()).toEqual({
      events: [
        { prefix: "/a/", type: "put", key: "/k3", modRevision: 3, relist: true },
        { prefix: "/a/", type: "put", key: "/k4", modRevision: 4, relist: true },
        { prefix: "/a/", type: "put", key: "/k6", modRevision: 6, relist: false },
      ],
      lists: [
        { prefix: "/a/", revision: 5 },
        { prefix: "/b/", revision: 6 },
      ],
      dropped: 0,
    });
  });

  test("keeps the latest entries up to its capacity and counts what it dropped", () => {
    const log = new AppliedLog(3);
    log.record("/a/", batch(false, 5, 1, 2, 3, 4, 5));
    const v = log.view();
    expect(v.events.map((e) => e.modRevision)).toEqual([3, 4, 5]);
    expect(v.dropped).toBe(2);
  });
});
