// The agent's pure parts: config validation, address allocation, desired state from the etcd
// view, diffs and reconcilers, watch relist differences, CNI parsing and results.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ApiError } from "../../node-agent/api/client";
import { parseLabels } from "../../node-agent/cli/endpoint";
import { CniCode, cniErrorFromApi, endpointIdFor, parseInvocation, parseNetConf, resultFor, runCni } from "../../node-agent/cni/plugin";
import { ConfigError, parseAgentConfig } from "../../node-agent/config";
import { Backoff } from "../../node-agent/daemon/backoff";
import { planDevices } from "../../node-agent/daemon/devices";
import { checkAddRequest, EndpointError, EndpointView, hostVethName, tempPeerName } from "../../node-agent/daemon/endpoints";
import { isAssignable, nextFreeIp, podNetwork } from "../../node-agent/daemon/ipam";
import { silentLogger } from "../../node-agent/daemon/log";
import { ReconcileTarget, Reconciler } from "../../node-agent/daemon/reconcile";
import { diffKeys, diffRows } from "../../node-agent/policy/plan";
import { StateStore, writeFileAtomic } from "../../node-agent/daemon/state";
import { computePeers, desiredPeers, desiredTunnels, NetworkView, NodeRecord, parseNodeRecord } from "../../node-agent/daemon/view";
import { relistDifference } from "../../node-agent/daemon/watch";
import { HostRecord } from "../../provider/etcd/keys";

const baseConfig = {
  hostName: "h1",
  networkPrefix: "/bpfnet/dev",
  etcd: { endpoints: ["http://10.0.0.1:2379"] },
  stateDir: "/var/lib/bpfnet",
  bpffsDir: "/sys/fs/bpf/bpfnet",
  underlayInterface: "eth0",
  underlayIp: "192.168.1.10",
};

describe("config", () => {
  test("fills in defaults", () => {
    const c = parseAgentConfig(baseConfig);
    expect(c.apiSocket).toBe("/var/lib/bpfnet/agent.sock");
    expect(c.leaseTtlSeconds).toBe(15);
    expect(c.resyncSeconds).toBe(30);
    expect(c.logLevel).toBe("info");
  });

  test("lists every problem, naming field and value", () => {
    let err: ConfigError | undefined;
    try {
      parseAgentConfig({ ...baseConfig, hostName: "", networkPrefix: "bpfnet/", stateDir: "rel/dir", underlayIp: "10.0.0.300", etcd: { endpoints: [] }, extra: 1 }, "a.json");
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toContain("invalid agent config a.json");
    const text = err!.problems.join("\n");
    expect(text).toMatch(/hostName is required/);
    expect(text).toMatch(/networkPrefix must be an absolute etcd key prefix.*"bpfnet\/"/);
    expect(text).toMatch(/stateDir must be an absolute path, got "rel\/dir"/);
    expect(text).toMatch(/underlayIp must be an IPv4 address, got "10.0.0.300"/);
    expect(text).toMatch(/etcd.endpoints must be a non-empty list/);
    expect(text).toMatch(/unknown field "extra"/);
  });
});

describe("pod addresses", () => {
  const pod = podNetwork("10.1.2.0/24");

  test("network, gateway and broadcast are never handed out", () => {
    expect(pod.gateway).toBe("10.1.2.1");
    expect(pod.capacity).toBe(253);
    for (const a of ["10.1.2.0", "10.1.2.1", "10.1.2.255", "10.1.3.2"]) expect(isAssignable(pod, a)).toBe(false);
    expect(nextFreeIp(pod, new Set())).toBe("10.1.2.2");
  });

  test("round robin after the last allocation, skipping used ones, wrapping around", () => {
    expect(nextFreeIp(pod, new Set(["10.1.2.2"]), "10.1.2.2")).toBe("10.1.2.3");
    // 10.1.2.3 was released: the next one after the cursor comes first.
    expect(nextFreeIp(pod, new Set(["10.1.2.2", "10.1.2.4"]), "10.1.2.4")).toBe("10.1.2.5");
    expect(nextFreeIp(pod, new Set(["10.1.2.2"]), "10.1.2.254")).toBe("10.1.2.3");
  });

  test("a full pool yields nothing, every address exactly once", () => {
    const small = podNetwork("10.9.0.0/29"); // .2-.6
    const used = new Set<string>();
    let last: string | undefined;
    for (;;) {
      const next = nextFreeIp(small, used, last);
      if (!next) break;
      expect(used.has(next)).toBe(false);
      used.add(next);
      last = next;
    }
    expect([...used].sort()).toEqual(["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]);
    expect(() => podNetwork("10.9.0.0/31")).toThrow(/too small/);
  });
});

describe("desired state from the etcd view", () => {
  const node = (host: string, underlayIp: string): NodeRecord => ({ schema: 1, host, underlayIp, podCidr: "", agentVersion: "x", incarnation: "i", startedAt: "" });
  const alloc = (host: string, cidr: string): HostRecord => ({ schema: 1, host, cidr, allocationId: "a", createdAt: "" });

  test("peers need a registration and an allocation; self is left out", () => {
    const nodes = new Map([["h1", node("h1", "10.0.1.1")], ["h2", node("h2", "10.0.1.2")], ["h3", node("h3", "10.0.1.3")]]);
    const allocs = new Map([["h1", alloc("h1", "10.1.1.0/24")], ["h2", alloc("h2", "10.1.2.0/24")], ["h4", alloc("h4", "10.1.4.0/24")]]);
    const { peers, problems } = computePeers("h1", "10.1.1.0/24", nodes, allocs);
    expect(peers).toEqual([{ host: "h2", podCidr: "10.1.2.0/24", underlayIp: "10.0.1.2" }]);
    expect(problems).toEqual([]);
    expect(desiredTunnels("vxlan", peers)).toEqual(new Map([["10.1.2.0/24", "10.0.1.2"]]));
    expect(desiredTunnels("l3", peers).size).toBe(0);
    // The overlay admits exactly the peers' underlay addresses (vxlan only: l3 has no overlay).
    expect(desiredPeers("vxlan", peers)).toEqual(new Set(["10.0.1.2"]));
    expect(desiredPeers("l3", peers).size).toBe(0);
  });

  test("unreadable, overlapping and duplicate records are skipped with a reason", () => {
    const nodes = new Map<string, NodeRecord | undefined>([["h2", node("h2", "10.0.1.2")], ["h3", node("h3", "10.0.1.3")], ["h4", undefined], ["h5", node("h5", "10.0.1.5")]]);
    const allocs = new Map([["h2", alloc("h2", "10.1.2.0/24")], ["h3", alloc("h3", "10.1.2.0/24")], ["h4", alloc("h4", "10.1.4.0/24")], ["h5", alloc("h5", "10.1.0.0/16")]]);
    const { peers, problems } = computePeers("h1", "10.1.1.0/24", nodes, allocs);
    expect(peers.map((p) => p.host)).toEqual(["h2"]);
    expect(problems.join("\n")).toMatch(/node record of h4 is unreadable/);
    expect(problems.join("\n")).toMatch(/h3 and h2 both claim 10.1.2.0\/24/);
    expect(problems.join("\n")).toMatch(/h5 \(10.1.0.0\/16\) overlaps/);
  });

  test("node records: schema and address are checked", () => {
    expect(parseNodeRecord(JSON.stringify(node("h1", "10.0.0.1")))?.host).toBe("h1");
    expect(parseNodeRecord(JSON.stringify({ ...node("h1", "10.0.0.1"), schema: 2 }))).toBeUndefined();
    expect(parseNodeRecord(JSON.stringify(node("h1", "nope")))).toBeUndefined();
    expect(parseNodeRecord("{")).toBeUndefined();
  });

  test("the view applies batches and is synced only once both prefixes were listed", () => {
    const v = new NetworkView("/bpfnet/dev");
    v.applyNodes({ relist: true, revision: 5, events: [{ type: "put", key: "/bpfnet/dev/state/nodes/v1/h2", value: JSON.stringify(node("h2", "10.0.0.2")), modRevision: 3 }] });
    expect(v.synced).toBe(false);
    v.applyAllocs({ relist: true, revision: 5, events: [{ type: "put", key: "/bpfnet/dev/ipam/v1/hosts/h2", value: JSON.stringify(alloc("h2", "10.1.2.0/24")), modRevision: 2 }] });
    expect(v.synced).toBe(true);
    v.applyNodes({ relist: false, revision: 6, events: [{ type: "delete", key: "/bpfnet/dev/state/nodes/v1/h2", value: "", modRevision: 6 }] });
    expect(v.nodes.has("h2")).toBe(false);
    expect(v.allocs.get("h2")?.cidr).toBe("10.1.2.0/24");
  });
});

describe("diffs, relists and reconcilers", () => {
  test("diffRows writes what differs and prunes what is not desired", () => {
    const d = diffRows(new Map([["b", 3], ["c", 4]]), new Map([["a", 1], ["b", 2]]), (x, y) => x === y);
    expect(d.upserts).toEqual([["a", 1], ["b", 2]]);
    expect(d.deletes).toEqual(["c"]);
  });

  test("relistDifference reports vanished keys as deletes and new or changed keys as puts", () => {
    const known = new Map([["k1", { value: "a", modRevision: 2 }], ["k2", { value: "b", modRevision: 3 }], ["k3", { value: "c", modRevision: 4 }]]);
    const listed = new Map([["k2", { value: "b", modRevision: 3 }], ["k3", { value: "c2", modRevision: 9 }], ["k4", { value: "d", modRevision: 8 }]]);
    expect(relistDifference(known, listed, 10)).toEqual([
      { type: "delete", key: "k1", value: "", modRevision: 10 },
      { type: "put", key: "k3", value: "c2", modRevision: 9 },
      { type: "put", key: "k4", value: "d", modRevision: 8 },
    ]);
  });

  /** A reconciler of an in-memory map whose next `fail.upserts` upserts throw. */
  function memoryReconciler(actual: Map<string, string>, fail: { upserts: number }, target: Pick<ReconcileTarget<string>, "desired" | "changes">): Reconciler<string> {
    const upsert = (k: string, v: string) => {
      if (fail.upserts-- > 0) throw new Error("injected");
      actual.set(k, v);
    };
    return new Reconciler<string>({ name: "t", ...target, actual: () => actual, equal: (a, b) => a === b, upsert, remove: (k) => void actual.delete(k) }, silentLogger, 60_000, { initialMs: 10, maxMs: 20 });
  }

  test("a reconciler leaves the target alone while desired is unknown, and retries failures", async () => {
    const actual = new Map([["stale", "x"]]);
    let desired: Map<string, string> | undefined;
    const r = memoryReconciler(actual, { upserts: 1 }, { desired: () => desired });
    r.start();
    await r.settled();
    expect(actual).toEqual(new Map([["stale", "x"]]));
    desired = new Map([["a", "1"]]);
    r.kick();
    await new Promise((res) => setTimeout(res, 200));
    await r.settled();
    await r.stop();
    expect(actual).toEqual(new Map([["a", "1"]]));
    expect(r.stats.errors).toBe(1);
    expect(r.stats.lastError).toMatch(/injected/);
  });

  test("an incremental target: a full pass first, then only its changes, a full pass again after a failure", async () => {
    const desired = new Map([["a", "1"], ["b", "2"]]);
    const actual = new Map([["stale", "x"]]);
    let changed = new Set<string>();
    const calls: string[] = [];
    const fail = { upserts: 0 };
    const r = memoryReconciler(actual, fail, {
      desired: () => (calls.push("full"), (changed = new Set()), desired),
      changes: () => {
        calls.push(`changes ${[...changed].join(",")}`);
        const d = diffKeys(changed, actual, (k) => desired.get(k), (a, b) => a === b);
        changed = new Set();
        return d;
      },
    });
    const change = async (k: string, v: string | undefined) => {
      if (v === undefined) desired.delete(k);
      else desired.set(k, v);
      changed.add(k);
      r.kick();
      await r.settled();
    };
    r.start();
    await r.settled();
    expect(actual).toEqual(new Map([["a", "1"], ["b", "2"]]));
    actual.set("drift", "y"); // not a change the target reports: only a full pass sees it
    await change("a", "3");
    await change("b", undefined);
    expect(calls).toEqual(["full", "changes a", "changes b"]);
    expect(actual).toEqual(new Map([["a", "3"], ["drift", "y"]]));
    fail.upserts = 1;
    await change("c", "4");
    await new Promise((res) => setTimeout(res, 100));
    await r.settled();
    expect(calls.slice(3)).toEqual(["changes c", "full"]);
    expect(actual).toEqual(new Map([["a", "3"], ["c", "4"]]));
    await r.stop();
    expect(r.stats.errors).toBe(1);
  });

  test("backoff grows to its cap", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000]);
    b.reset();
    expect(b.next()).toBe(100);
  });
});

describe("devices and endpoints", () => {
  test("vxlan routes the cluster CIDR to bpfnet_host, l3 only the host's pod CIDR", () => {
    const net = { schema: 1, mode: "vxlan" as const, clusterCidr: "10.1.0.0/16", vni: 7, vxlanPort: 8472, mtu: 1450, podCidr: "10.1.2.0/24" };
    const vx = planDevices(net, "10.0.1.7");
    // Bound to the host's underlay address.
    expect(vx.vxlan).toEqual({ name: "bpfnet_vxlan", port: 8472, mtu: 1450, local: "10.0.1.7" });
    expect(vx.routes).toEqual([{ dst: "10.1.0.0/16", dev: "bpfnet_host", src: "10.1.2.1" }]);
    expect(vx.host.address).toBe("10.1.2.1/32");
    const l3 = planDevices({ ...net, mode: "l3" }, "10.0.1.7");
    expect(l3.vxlan).toBeUndefined();
    expect(l3.routes).toEqual([{ dst: "10.1.2.0/24", dev: "bpfnet_host", src: "10.1.2.1" }]);
    expect(l3.sysctls).toContainEqual(["net/ipv4/ip_forward", "1"]);
  });

  test("device names fit IFNAMSIZ and are stable", () => {
    const id = "cnitool-" + "f".repeat(20);
    expect(hostVethName(id)).toMatch(/^bn[0-9a-f]{11}$/);
    expect(hostVethName(id)).toBe(hostVethName(id));
    expect(tempPeerName(id)).not.toBe(hostVethName(id));
  });

  test("add requests are validated", () => {
    expect(checkAddRequest({ id: "c1", netns: "/run/netns/x" })).toEqual({ id: "c1", netns: "/run/netns/x", ifname: "eth0", labels: {} });
    const bad = (r: unknown) => () => checkAddRequest(r);
    expect(bad({ id: "../x", netns: "/run/netns/x" })).toThrow(EndpointError);
    expect(bad({ id: "c1", netns: "netns/x" })).toThrow(/absolute path/);
    expect(bad({ id: "c1", netns: "/run/netns/x", ifname: "a-very-long-interface" })).toThrow(/ifname/);
    expect(bad({ id: "c1", netns: "/run/netns/x", labels: { app: 1 } })).toThrow(/string value/);
    expect(parseLabels("app=web, tier=db")).toEqual({ app: "web", tier: "db" });
    expect(() => parseLabels("nokey")).toThrow(/key=value/);
  });

  test("state files are replaced atomically with mode 0600", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-state-"));
    try {
      const store = new StateStore(dir);
      expect(store.loadEndpoints().endpoints).toEqual({});
      const s = store.loadEndpoints();
      s.lastAllocated = "10.0.0.9";
      store.saveEndpoints(s);
      expect(store.loadEndpoints().lastAllocated).toBe("10.0.0.9");
      expect(fs.statSync(store.endpointsFile).mode & 0o777).toBe(0o600);
      expect(fs.readdirSync(dir).sort()).toEqual(["endpoints.json"]);
      writeFileAtomic(path.join(dir, "endpoints.json"), "{oops");
      expect(() => store.loadEndpoints()).toThrow(/not valid JSON/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("CNI plugin", () => {
  const conf = JSON.stringify({ cniVersion: "1.0.0", name: "bpfnet", type: "bpfnet-cni", agentSocket: "/nonexistent/agent.sock" });
  const env = { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1", CNI_NETNS: "/run/netns/x", CNI_IFNAME: "eth0", CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web" };

  test("config and environment parsing, with the spec's error codes", () => {
    expect(parseNetConf(conf).agentSocket).toBe("/nonexistent/agent.sock");
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return (e as { code: number }).code;
      }
      return 0;
    };
    expect(code(() => parseNetConf("{"))).toBe(CniCode.DECODE_FAILED);
    expect(code(() => parseNetConf(JSON.stringify({ cniVersion: "0.3.1", name: "x" })))).toBe(CniCode.INCOMPATIBLE_VERSION);
    expect(code(() => parseNetConf(JSON.stringify({ cniVersion: "1.0.0" })))).toBe(CniCode.INVALID_CONFIG);
    expect(parseInvocation(env).args).toEqual({ IgnoreUnknown: "1", K8S_POD_NAME: "web" });
    expect(code(() => parseInvocation({ ...env, CNI_NETNS: "" }))).toBe(CniCode.INVALID_ENV);
    expect(parseInvocation({ ...env, CNI_COMMAND: "DEL", CNI_NETNS: "" }).netns).toBe("");
    expect(endpointIdFor(parseInvocation(env))).toBe("c1");
    expect(endpointIdFor(parseInvocation({ ...env, CNI_IFNAME: "net1" }))).toBe("c1.net1");
  });

  test("agent errors map to CNI codes; an absent agent means try again later", async () => {
    expect(cniErrorFromApi(new ApiError(409, "exists", "x"), "adding").code).toBe(CniCode.CONFLICT);
    expect(cniErrorFromApi(new ApiError(507, "pool-exhausted", "x"), "adding").code).toBe(CniCode.POOL_EXHAUSTED);
    expect(cniErrorFromApi(new ApiError(503, "not-ready", "x"), "adding").code).toBe(CniCode.TRY_AGAIN_LATER);
    await expect(runCni(env, conf)).rejects.toMatchObject({ code: CniCode.TRY_AGAIN_LATER });
    expect(JSON.parse(await runCni({ CNI_COMMAND: "VERSION" }, ""))).toEqual({ cniVersion: "1.0.0", supportedVersions: ["1.0.0"] });
  });

  test("the ADD result names both interfaces, the /32 and the default route", () => {
    const ep: EndpointView = {
      id: "c1", ip: "10.1.2.5", address: "10.1.2.5/32", gateway: "10.1.2.1", podCidr: "10.1.2.0/24", mtu: 1450, netns: "/run/netns/x",
      ifname: "eth0", mac: "02:00:00:00:00:01", hostIfname: "bnabc", hostIfindex: 9, hostMac: "02:00:00:00:00:02", labels: {}, status: "ready", createdAt: "",
    };
    expect(resultFor(parseNetConf(conf), ep)).toEqual({
      cniVersion: "1.0.0",
      interfaces: [{ name: "bnabc", mac: "02:00:00:00:00:02" }, { name: "eth0", mac: "02:00:00:00:00:01", sandbox: "/run/netns/x" }],
      ips: [{ address: "10.1.2.5/32", gateway: "10.1.2.1", interface: 1 }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.1.2.1" }],
      dns: {},
    });
  });
});
