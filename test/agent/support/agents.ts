// Running real agents in a lab: one process per lab host, inside the host's network namespace,
// from the compiled CLI. Tests rely on dist/ being built (`npx tsc -p .`; scripts/setup runs it
// before the tests); checkBuilt() fails early with that hint when it is missing or stale.
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { InventoryHost } from "../../../lab/inventory";
import { AgentClient } from "../../../node-agent/api/client";
import type { AgentStatus } from "../../../node-agent/api/types";
import { withEtcd, EtcdConnection } from "../../../provider/etcd/etcdClient";
import { allocate } from "../../../provider/ipam/ipamStore";
import { createConfig } from "../../../provider/network/networkStore";
import { checkNetworkSpec, NetworkSpecInputs } from "../../../provider/network/networkSpec";

export const REPO = path.resolve(__dirname, "..", "..", "..");
import { sleep } from "../../support/traffic";
export { echoesIn, inNetns, ping, sleep, snmpCounters, tcpResets, tcpTransfer, waitFor } from "../../support/traffic";
export type { PingResult, TransferResult } from "../../support/traffic";
export const CLI = path.join(REPO, "dist", "node-agent", "cli", "main.js");

/** Throws unless dist/ holds a build at least as new as every node-agent source. */
export function checkBuilt(): void {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build with \`npx tsc -p .\` (scripts/setup does)`);
  const newest = (dir: string, ext: string): number =>
    fs.readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = path.join(dir, e.name);
      return Math.max(m, e.isDirectory() ? newest(p, ext) : e.name.endsWith(ext) ? fs.statSync(p).mtimeMs : 0);
    }, 0);
  // The newest output, not one file's: an incremental build leaves unchanged outputs with their old times.
  for (const dir of ["node-agent"]) {
    const built = newest(path.join(REPO, "dist", dir), ".js");
    if (newest(path.join(REPO, dir), ".ts") > built + 1000) throw new Error(`dist/ is older than ${dir}/: rebuild with \`npx tsc -p tsconfig.build.json\``);
  }
}

/** Writes <prefix>/config and one allocation per host, as ContainerNetwork/HostAllocation would. */
export async function seedNetwork(conn: EtcdConnection, spec: NetworkSpecInputs, hosts: string[]): Promise<Record<string, string>> {
  const checked = checkNetworkSpec(spec);
  if (!checked.spec) throw new Error(`bad spec: ${JSON.stringify(checked.failures)}`);
  const s = checked.spec;
  return withEtcd(conn, async (c) => {
    await createConfig(c, s, `net-${s.prefix}`, false);
    const out: Record<string, string> = {};
    for (const h of hosts) out[h] = (await allocate(c, { prefix: s.prefix, host: h, allocationId: `alloc-${h}` })).podCidr;
    return out;
  });
}

export interface AgentOptions {
  prefix: string;
  etcd: EtcdConnection;
  leaseTtlSeconds?: number;
  resyncSeconds?: number;
  /** The health endpoint and prober (default off here: these tests count endpoints and programs). */
  health?: boolean;
  healthIntervalSeconds?: number;
  /** The command that runs the agent inside its host (default `ip netns exec <host netns>`). */
  launcher?: () => string[];
  /** "HOST:PORT" of the agent's Prometheus metrics (default: none served). */
  metricsAddress?: string;
}

export class LabAgent {
  proc: ChildProcess | undefined;
  readonly configPath: string;
  readonly logPath: string;
  readonly client: AgentClient;
  readonly socket: string;
  private readonly launcher: (() => string[]) | undefined;

  constructor(
    readonly host: InventoryHost,
    opts: AgentOptions,
  ) {
    this.launcher = opts.launcher;
    this.configPath = path.join(host.stateDir, "agent.json");
    this.logPath = path.join(host.stateDir, "agent.log");
    this.socket = path.join(host.stateDir, "agent.sock");
    fs.mkdirSync(host.stateDir, { recursive: true });
    fs.writeFileSync(
      this.configPath,
      JSON.stringify(
        {
          hostName: host.name,
          networkPrefix: opts.prefix,
          etcd: opts.etcd,
          stateDir: host.stateDir,
          bpffsDir: host.bpffsDir,
          underlayInterface: host.underlayInterface,
          underlayIp: host.underlayIp,
          leaseTtlSeconds: opts.leaseTtlSeconds ?? 10,
          resyncSeconds: opts.resyncSeconds ?? 5,
          health: opts.health ?? false,
          ...(opts.healthIntervalSeconds ? { healthIntervalSeconds: opts.healthIntervalSeconds } : {}),
          ...(opts.metricsAddress ? { metricsAddress: opts.metricsAddress } : {}),
          logLevel: "debug",
        },
        null,
        2,
      ),
    );
    this.client = new AgentClient(this.socket, 30_000);
  }

  get netns(): string {
    return this.host.netns!;
  }

  /**
   * Starts the agent in its host's namespace (log appended to agent.log) and waits until it is
   * ready. `cli` runs another build (e.g. an unpacked agent bundle's dist/node-agent/cli/main.js).
   */
  async start(timeoutMs = 30_000, cli = CLI): Promise<void> {
    const log = fs.openSync(this.logPath, "a");
    const [cmd, ...pre] = this.launcher?.() ?? ["ip", "netns", "exec", this.netns];
    const proc = spawn(cmd, [...pre, process.execPath, cli, "agent", "--config", this.configPath], {
      stdio: ["ignore", log, log],
    });
    fs.closeSync(log);
    this.proc = proc;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`agent ${this.host.name} exited with ${proc.exitCode}:\n${this.tail()}`);
      const s = await this.client.status().catch(() => undefined);
      if (s?.agent.ready) return;
      if (Date.now() > deadline) throw new Error(`agent ${this.host.name} not ready within ${timeoutMs} ms:\n${this.tail()}`);
      // Often: bench/peers.ts times a join through this (flanneld's side polls every 5 ms); a
      // try before the API socket exists is a failed connect, nothing for the agent to do.
      await sleep(5);
    }
  }

  /** SIGTERM (or another signal), waiting for the process to exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return proc?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
    proc.kill(signal);
    const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
    const code = await exited;
    clearTimeout(t);
    this.proc = undefined;
    return code;
  }

  status(): Promise<AgentStatus> {
    return this.client.status();
  }

  /** Runs the CLI against this agent's socket; returns stdout (throws with stderr on failure). */
  cli(...args: string[]): string {
    const r = spawnSync(process.execPath, [CLI, ...args, "--socket", this.socket], { encoding: "utf8", timeout: 60_000 });
    if (r.status !== 0) throw new Error(`bpfnet ${args.join(" ")} exited ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  tail(lines = 40): string {
    try {
      return fs.readFileSync(this.logPath, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

/** Container namespaces of the tests: all named tagtc…/trelc…/tpolc…/tpfc…/tsvcc…/tlbc…, removed by removeContainers(). */
export function addContainerNetns(name: string): string {
  if (!/^(tagtc|trelc|tpolc|tpfc|tsvcc|tlbc|tmonc|tcdc)/.test(name)) throw new Error(`container netns ${name} must start with tagtc (agent tests), trelc (reliability tests), tpolc (policy tests), tpfc (datapath performance tests), tsvcc (service tests), tlbc (service datapath tests), tmonc (monitor tests) or tcdc (CNI deletion queue tests)`);
  spawnSync("ip", ["netns", "del", name]);
  execFileSync("ip", ["netns", "add", name]);
  return `/run/netns/${name}`;
}

export function removeContainers(names: string[]): void {
  for (const n of names) spawnSync("ip", ["netns", "del", n]);
}
