// RouterRoute's pure rules: input validation, replace decisions, and what create/update/delete/read
// do given the routes a router has for a prefix.
import type { ObservedRoute } from "../../provider/router/drivers/driver";
import {
  RouterRouteInputs,
  RouterRouteOutputs,
  diffRouterRoute,
  observedNextHop,
  planDelete,
  planEnsure,
  routerConnection,
  routerRouteProblems,
} from "../../provider/router/routerRouteSpec";
import { UNKNOWN } from "../../provider/common/unknown";

const FP = "SHA256:" + "A".repeat(43);
const endpoint = { host: "10.0.0.1", port: 22, user: "root", hostKeyFingerprint: FP };
const inputs = (over: Partial<RouterRouteInputs> = {}, router: Record<string, unknown> = {}): RouterRouteInputs =>
  ({
    router: { driver: "linux", connection: endpoint, ...router },
    privateKeys: ["KEY"],
    prefix: "10.244.1.0/24",
    nextHop: "10.0.1.5",
    ...over,
  }) as RouterRouteInputs;
const reasons = (i: unknown) => routerRouteProblems(i as RouterRouteInputs).map((f) => `${f.property}: ${f.reason}`);

describe("check", () => {
  test("a valid route passes, for both drivers", () => {
    expect(reasons(inputs())).toEqual([]);
    expect(reasons(inputs({}, { driver: "frr", vtyshArgs: ["--vty_socket", "/run/frr"], writeStartupConfig: true, tag: 7 }))).toEqual([]);
    expect(reasons(inputs({ connectTimeoutMs: 2000 }, { table: 100, protocol: 200 }))).toEqual([]);
    expect(reasons(inputs({}, { table: "bpfnet", protocol: "bpfnet" }))).toEqual([]);
  });

  test("each problem names the field and the value", () => {
    expect(reasons(inputs({ prefix: "10.244.1.0" }))).toEqual(['prefix: prefix must be an IPv4 CIDR like "10.244.1.0/24", got "10.244.1.0"']);
    expect(reasons(inputs({ prefix: "10.244.1.7/24" }))).toEqual(['prefix: prefix "10.244.1.7/24" has host bits set; the network is "10.244.1.0/24"']);
    expect(reasons(inputs({ prefix: "300.1.1.0/24" }))[0]).toContain('got "300.1.1.0/24"');
    expect(reasons(inputs({ nextHop: "10.0.1" }))).toEqual(['nextHop: nextHop must be an IPv4 address like "10.0.1.5", got "10.0.1"']);
    expect(reasons(inputs({ nextHop: "10.0.01.5" }))[0]).toContain('got "10.0.01.5"');
    expect(reasons(inputs({}, { driver: "bgp" }))).toEqual(['router: router.driver must be one of "linux", "frr", got "bgp"']);
    expect(reasons(inputs({ connectTimeoutMs: 5 }))[0]).toContain("connectTimeoutMs must be an integer from 100 to 600000, got 5");
    expect(reasons(inputs({}, { table: "local" }))[0]).toContain('router.table must be a routing table number');
    expect(reasons(inputs({}, { protocol: "boot" }))[0]).toContain('router.protocol must be a route protocol number (5-255) or name that marks bpfnet\'s routes only, got "boot"');
    expect(reasons(inputs({}, { protocol: 3 }))[0]).toContain("got 3");
    expect(reasons(inputs({}, { driver: "frr", tag: 0 }))[0]).toContain("router.tag must be a route tag 1-4294967295, got 0");
    expect(reasons(inputs({}, { driver: "frr", vtyshArgs: "--vty_socket x" }))[0]).toContain("router.vtyshArgs must be a list");
    expect(reasons(inputs({}, { connection: { ...endpoint, hostKeyFingerprint: "MD5:aa" } }))[0]).toContain('router.connection.hostKeyFingerprint must look like');
    expect(reasons({ prefix: "10.244.1.0/24", nextHop: "10.0.1.5" })).toEqual([expect.stringContaining("router: router is required")]);
  });

  test("unknown preview values pass through", () => {
    expect(reasons(inputs({ prefix: UNKNOWN, nextHop: UNKNOWN, connectTimeoutMs: UNKNOWN as unknown as number }))).toEqual([]);
    expect(reasons({ router: UNKNOWN, prefix: UNKNOWN, nextHop: UNKNOWN })).toEqual([]);
    expect(reasons(inputs({}, { driver: UNKNOWN, connection: UNKNOWN }))).toEqual([]);
    expect(reasons(inputs({}, { table: UNKNOWN }))).toEqual([]);
  });

  test("options of the other driver are ignored (an inventory may always carry vtyshArgs)", () => {
    expect(reasons(inputs({}, { driver: "linux", vtyshArgs: ["--vty_socket", "/x"] }))).toEqual([]);
  });
});

describe("diff", () => {
  const olds = (over: Partial<RouterRouteInputs> = {}, router: Record<string, unknown> = {}): RouterRouteOutputs => ({ ...inputs(over, router), routerName: "root@10.0.0.1:22" });

  test("same inputs: no change", () => {
    expect(diffRouterRoute(olds(), inputs())).toEqual({ changes: false, replaces: [], deleteBeforeReplace: false });
  });

  test("a new next hop, keys, vtysh arguments or timeout are updates in place", () => {
    expect(diffRouterRoute(olds(), inputs({ nextHop: "10.0.2.5" }))).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
    expect(diffRouterRoute(olds(), inputs({ privateKeys: ["OTHER"] })).replaces).toEqual([]);
    expect(diffRouterRoute(olds({}, { driver: "frr" }), inputs({}, { driver: "frr", vtyshArgs: ["-N", "x"] })).replaces).toEqual([]);
    expect(diffRouterRoute(olds(), inputs({ connectTimeoutMs: 500 }))).toMatchObject({ changes: true, replaces: [] });
  });

  test("another prefix or router is another route; the same spot is freed first", () => {
    expect(diffRouterRoute(olds(), inputs({ prefix: "10.244.2.0/24" }))).toEqual({ changes: true, replaces: ["prefix"], deleteBeforeReplace: false });
    const otherRouter = inputs({}, { connection: { ...endpoint, host: "10.0.0.2" } });
    expect(diffRouterRoute(olds(), otherRouter)).toEqual({ changes: true, replaces: ["router"], deleteBeforeReplace: false });
    // Another marker on the same router and prefix: the new route would collide with the old one.
    expect(diffRouterRoute(olds(), inputs({}, { protocol: 200 }))).toEqual({ changes: true, replaces: ["router"], deleteBeforeReplace: true });
    expect(diffRouterRoute(olds(), inputs({}, { driver: "frr" }))).toEqual({ changes: true, replaces: ["router"], deleteBeforeReplace: true });
    expect(diffRouterRoute(olds(), inputs({}, { table: "main" })).replaces).toEqual([]); // the default, spelled out
  });

  test("unknown identity in a preview may mean a replacement", () => {
    expect(diffRouterRoute(olds(), inputs({ prefix: UNKNOWN })).replaces).toEqual(["prefix"]);
    expect(diffRouterRoute(olds(), inputs({}, { connection: UNKNOWN })).replaces).toEqual(["router"]);
  });
});

const route = (nextHop: string, owned: boolean, description = `via ${nextHop}${owned ? " proto 178" : " proto boot"}`): ObservedRoute => ({
  prefix: "10.244.1.0/24",
  nextHop,
  owned,
  description,
  identity: {},
});
const desired = { prefix: "10.244.1.0/24", nextHop: "10.0.1.5" };

describe("planEnsure", () => {
  test("nothing there: add", () => {
    expect(planEnsure([], desired, "r")).toEqual({ add: desired, remove: [] });
  });

  test("ours already there: nothing to do (idempotent)", () => {
    expect(planEnsure([route("10.0.1.5", true)], desired, "r")).toEqual({ remove: [] });
  });

  test("ours with another next hop (an update, or one interrupted): add the new, remove the old", () => {
    const old = route("10.0.9.9", true);
    expect(planEnsure([old], desired, "r")).toEqual({ add: desired, remove: [old] });
    expect(planEnsure([old, route("10.0.1.5", true)], desired, "r")).toEqual({ remove: [old] });
  });

  test("someone else's route: refuse, naming the router and the route", () => {
    expect(() => planEnsure([route("10.0.7.7", false)], desired, "root@r:22")).toThrow(
      "router root@r:22: 10.244.1.0/24 already has a route bpfnet does not own (via 10.0.7.7 proto boot); refusing to replace it.",
    );
    expect(() => planEnsure([route("10.0.1.5", false)], desired, "r")).toThrow(/does not own/);
  });

  test("a hand change that state recorded (refresh) is this resource's to restore", () => {
    const hand = route("10.0.7.7", false);
    expect(planEnsure([hand], desired, "r", "10.0.7.7")).toEqual({ add: desired, remove: [hand] });
    // Same next hop but unmarked: mark it again, do not remove it.
    expect(planEnsure([route("10.0.1.5", false)], desired, "r", "10.0.1.5")).toEqual({ add: desired, remove: [] });
    // A claim covers only the recorded next hop.
    expect(() => planEnsure([hand, route("10.0.8.8", false)], desired, "r", "10.0.7.7")).toThrow(/via 10.0.8.8/);
  });
});

describe("planDelete", () => {
  test("removes ours only", () => {
    const ours = route("10.0.1.5", true);
    expect(planDelete([ours], desired.prefix, "r")).toEqual([ours]);
    expect(planDelete([ours, route("10.0.7.7", false)], desired.prefix, "r")).toEqual([ours]);
  });

  test("already gone: nothing to do", () => {
    expect(planDelete([], desired.prefix, "r")).toEqual([]);
  });

  test("only someone else's route there: refuse", () => {
    expect(() => planDelete([route("10.0.1.5", false)], desired.prefix, "root@r:22")).toThrow(
      "router root@r:22: the route to 10.244.1.0/24 is not bpfnet's (via 10.0.1.5 proto boot); refusing to delete someone else's route.",
    );
  });
});

describe("observedNextHop (refresh)", () => {
  test("ours, preferring the recorded next hop", () => {
    expect(observedNextHop([route("10.0.1.5", true)], "10.0.1.5")).toBe("10.0.1.5");
    expect(observedNextHop([route("10.0.9.9", true), route("10.0.1.5", true)], "10.0.1.5")).toBe("10.0.1.5");
    expect(observedNextHop([route("10.0.9.9", true)], "10.0.1.5")).toBe("10.0.9.9");
  });
  test("replaced by hand: reports the new next hop (drift)", () => {
    expect(observedNextHop([route("10.0.7.7", false)], "10.0.1.5")).toBe("10.0.7.7");
  });
  test("gone", () => {
    expect(observedNextHop([], "10.0.1.5")).toBeUndefined();
  });
});

test("routerConnection applies the connect timeout to the router and its jump host", () => {
  const router = { driver: "linux", connection: { ...endpoint, jump: { ...endpoint, host: "bastion" } } };
  const c = routerConnection(router, ["K1", "K2"], 1500);
  expect(c).toMatchObject({ host: "10.0.0.1", privateKey: "K1", readyTimeoutMs: 1500, jump: { host: "bastion", privateKey: "K2", readyTimeoutMs: 1500 } });
  expect(routerConnection(router, ["K1", "K2"]).readyTimeoutMs).toBeUndefined();
});
