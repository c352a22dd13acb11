// The test that matters for the datapath, through the real CLI: `pulumi up` deploys etcd, the
// network, the allocations and the agents on a 3-host vxlan lab; containers join through the CNI
// plugin (the reference cnitool); traffic between containers on two hosts flows through our
// programs (counters grow; detached, it fails); removing a host removes its agent and its
// tunnel entries everywhere; destroy leaves no device, program, pin or process behind.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { InventoryHost } from "../../lab/inventory";
import { inventoryPath } from "../../lab/lab";
import type { AgentStatus } from "../../node-agent/api/types";
import { startTestLab, TestLab } from "../support/lab";
import { REPO, removeStack, rootProjectStack } from "../support/pulumi";
import { inNetns, ping, tcpTransfer, waitFor } from "../support/traffic";

jest.setTimeout(300_000);

const CONTAINERS = { h1: "tdpca", h2: "tdpcb" } as const;
const CNITOOL = path.join(REPO, ".tools", "bin", "cnitool");

describe("datapath through the real CLI: agents deployed by pulumi, containers by CNI", () => {
  let lab: TestLab;
  let stack: Stack;
  let netconfDir: string;
  const ips: Record<string, string> = {};
  const children: import("child_process").ChildProcess[] = [];
  const stackName = `ci-dp-${process.pid}`;
  const host = (name: string) => lab.inventory.hosts.find((h) => h.name === name)!;
  const agentSocket = (h: InventoryHost) => `${h.stateDir}/agent/agent.sock`;
  const status = (h: InventoryHost): AgentStatus => {
    const r = inNetns(h.netns!, [process.execPath, path.join(REPO, "bin", "bpfnet"), "status", "--socket", agentSocket(h), "--json"]);
    if (r.status !== 0) throw new Error(`bpfnet status on ${h.name}: ${r.stderr}`);
    return JSON.parse(r.stdout) as AgentStatus;
  };
  const cni = (h: InventoryHost, ...args: string[]) =>
    spawnSync("ip", ["netns", "exec", h.netns!, CNITOOL, ...args], {
      env: { ...process.env, CNI_PATH: path.join(REPO, "bin"), NETCONFPATH: path.join(netconfDir, h.name) },
      encoding: "utf8",
      timeout: 60_000,
    });

  beforeAll(async () => {
    lab = await startTestLab("tdp", 228, "vxlan", 3);
    stack = await rootProjectStack(stackName, { "bpfnet:inventory": inventoryPath(lab.stateDir) });
    netconfDir = fs.mkdtempSync(path.join(os.tmpdir(), "tdp-netconf-"));
    for (const h of lab.inventory.hosts) {
      fs.mkdirSync(path.join(netconfDir, h.name));
      fs.writeFileSync(
        path.join(netconfDir, h.name, "10-bpfnet.conflist"),
        JSON.stringify({ cniVersion: "1.0.0", name: "bpfnet", plugins: [{ type: "bpfnet-cni", agentSocket: agentSocket(h) }] }),
      );
    }
  });

  afterAll(async () => {
    for (const c of children) c.kill("SIGKILL");
    for (const [h, c] of Object.entries(CONTAINERS)) {
      if (lab && stack) cni(host(h), "del", "bpfnet", `/run/netns/${c}`);
      spawnSync("ip", ["netns", "del", c]);
    }
    if (stack) await removeStack(stack);
    if (netconfDir) fs.rmSync(netconfDir, { recursive: true, force: true });
    lab?.down();
  });

  test("pulumi up deploys etcd, the network, allocations and an agent on every host", async () => {
    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    const agents = up.outputs.agents.value as Record<string, string>;
    expect(Object.keys(agents).sort()).toEqual(["h1", "h2", "h3"]);
    const podCidrs = up.outputs.podCidrs.value as Record<string, string>;
    for (const h of lab.inventory.hosts) {
      const s = status(h);
      expect(s.agent.ready).toBe(true);
      expect(s.agent.incarnation).toBe(agents[h.name]);
      expect(s.agent.podCidr).toBe(podCidrs[h.name]);
      expect(s.tunnels.map((t) => t.cidr).sort()).toEqual(Object.entries(podCidrs).filter(([n]) => n !== h.name).map(([, c]) => c).sort());
    }
  });

  test("containers join through cnitool + bpfnet-cni on two hosts", () => {
    for (const [h, c] of Object.entries(CONTAINERS)) {
      spawnSync("ip", ["netns", "del", c]);
      spawnSync("ip", ["netns", "add", c]);
      const add = cni(host(h), "add", "bpfnet", `/run/netns/${c}`);
      expect(add.stderr).toBe("");
      expect(add.status).toBe(0);
      const result = JSON.parse(add.stdout) as { cniVersion: string; ips: { address: string }[] };
      expect(result.cniVersion).toBe("1.0.0");
      ips[c] = result.ips[0].address.split("/")[0];
      expect(cni(host(h), "check", "bpfnet", `/run/netns/${c}`).status).toBe(0);
    }
  });

  test("ping and a 10 MB TCP transfer work both ways, and the counters grow with them", async () => {
    const before = status(host("h1")).counters;
    expect(ping(CONTAINERS.h1, ips[CONTAINERS.h2], 5).received).toBe(5);
    expect(ping(CONTAINERS.h2, ips[CONTAINERS.h1], 5).received).toBe(5);
    const ab = await tcpTransfer(CONTAINERS.h1, CONTAINERS.h2, ips[CONTAINERS.h2], 10_000_000, 5201, children);
    expect(ab.received).toEqual({ n: ab.sent, sha: ab.sha });
    const ba = await tcpTransfer(CONTAINERS.h2, CONTAINERS.h1, ips[CONTAINERS.h1], 10_000_000, 5202, children);
    expect(ba.received).toEqual({ n: ba.sent, sha: ba.sha });
    const after = status(host("h1")).counters;
    expect(Number(after.forwarded.bytes) - Number(before.forwarded.bytes)).toBeGreaterThan(10_000_000);
  });

  test("with our programs detached the same traffic fails; the agent puts them back", async () => {
    const h2 = host("h2");
    // The overlay program delivers tunnelled packets to the container: without it, nothing arrives.
    spawnSync("ip", ["netns", "exec", h2.netns!, "tc", "filter", "del", "dev", "bpfnet_vxlan", "ingress"]);
    expect(ping(CONTAINERS.h1, ips[CONTAINERS.h2], 3, 0.2, 1).received).toBe(0);
    // A restarted agent re-attaches (the supervisor restarts it at once).
    spawnSync("sh", ["-c", `kill $(cat ${h2.stateDir}/agent/bpfnet-agent.pid)`]);
    await waitFor("the overlay program back on h2", () => status(h2).programs.some((p) => p.device === "bpfnet_vxlan" && p.current), 30_000, 300);
    expect(ping(CONTAINERS.h1, ips[CONTAINERS.h2], 3).received).toBe(3);
  });

  test("pulumi up again changes nothing; refresh finds no drift", async () => {
    const refresh = await stack.refresh();
    // Every resource read back the same: nothing but "same" (an empty summary would be a refresh that read nothing).
    expect(Object.keys(refresh.summary.resourceChanges ?? {})).toEqual(["same"]);
    const again = await stack.up();
    expect(Object.keys(again.summary.resourceChanges ?? {})).toEqual(["same"]);
  });

  test("a new agent bundle rolls out host by host while traffic keeps flowing", async () => {
    // Another bundle: the same content plus a marker file, so its sha256 differs.
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "tdp-bundle-"));
    try {
      spawnSync("tar", ["-xzf", path.join(REPO, "build", "agent-bundle.tgz"), "-C", work]);
      fs.writeFileSync(path.join(work, "UPGRADE-MARKER"), `${Date.now()}\n`);
      const bundle = path.join(work, "..", `tdp-bundle-${process.pid}.tgz`);
      spawnSync("tar", ["-czf", bundle, "-C", work, "."]);
      const before = Object.fromEntries(lab.inventory.hosts.map((h) => [h.name, status(h).agent.incarnation]));
      // 30 s of pings at 20/s from A to B while every agent is replaced.
      const flow = spawn("ip", ["netns", "exec", CONTAINERS.h1, "ping", "-n", "-q", "-i", "0.05", "-w", "30", ips[CONTAINERS.h2]], { stdio: ["ignore", "pipe", "ignore"] });
      children.push(flow);
      let pingOut = "";
      flow.stdout.on("data", (d: Buffer) => (pingOut += d));
      const done = new Promise<void>((resolve) => flow.on("exit", () => resolve()));
      await stack.setConfig("bpfnet:agentBundle", { value: bundle });
      const up = await stack.up();
      expect(up.summary.resourceChanges).toHaveProperty("update", 3);
      const after = lab.inventory.hosts.map((h) => status(h));
      for (const s of after) expect(s.agent.incarnation).not.toBe(before[s.agent.host]);
      // One host at a time (agents.maxUnavailable 1, in whatever order the engine reaches them):
      // no two agents started together.
      const started = after.map((s) => Date.parse(s.agent.startedAt)).sort((a, b) => a - b);
      expect(started[0]).toBeLessThan(started[1]);
      expect(started[1]).toBeLessThan(started[2]);
      for (const h of lab.inventory.hosts) expect(fs.existsSync(`${h.installDir}/current/UPGRADE-MARKER`)).toBe(true);
      await done;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(pingOut);
      expect(m).not.toBeNull();
      expect(Number(m![2])).toBe(Number(m![1])); // the pinned datapath forwarded throughout
      await stack.removeConfig("bpfnet:agentBundle");
      fs.rmSync(bundle, { force: true });
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  test("removing a host removes its agent and its tunnel entries everywhere", async () => {
    const h3 = host("h3");
    const h3Cidr = status(h3).agent.podCidr;
    await stack.setConfig("bpfnet:hosts", { value: "h1,h2" });
    await stack.up();
    expect(inNetns(h3.netns!, ["ip", "link", "show", "bpfnet_vxlan"]).status).not.toBe(0);
    expect(fs.existsSync(`${h3.stateDir}/agent`)).toBe(false);
    for (const h of ["h1", "h2"]) {
      await waitFor(`h3's tunnel entry gone on ${h}`, () => !status(host(h)).tunnels.some((t) => t.cidr === h3Cidr), 20_000, 200);
    }
    expect(ping(CONTAINERS.h1, ips[CONTAINERS.h2], 3).received).toBe(3);
  });

  test("pulumi destroy leaves no agent, device, pin or etcd behind", async () => {
    for (const [h, c] of Object.entries(CONTAINERS)) expect(cni(host(h), "del", "bpfnet", `/run/netns/${c}`).status).toBe(0);
    await stack.destroy();
    for (const h of lab.inventory.hosts) {
      expect(inNetns(h.netns!, ["ip", "-o", "link"]).stdout).not.toMatch(/bpfnet_|bn[0-9a-f]{11}/);
      // The kernel's own debug iterators sit at the root of every bpffs mount.
      expect(fs.readdirSync(h.bpffsDir).filter((f) => !f.endsWith(".debug"))).toEqual([]);
      expect(fs.existsSync(`${h.installDir}/current`)).toBe(false);
    }
    expect(spawnSync("pgrep", ["-f", `${lab.stateDir}/hosts/.*/(agent|etcd)`]).status).toBe(1);
  });
});
