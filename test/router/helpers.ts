// Shared helpers for the RouterRoute tests: provider inputs for a lab router, the router's kernel
// table and FRR config seen from outside (not through the code under test), and its sshd.
import * as fs from "fs";
import * as net from "net";
import { InventoryRouter, sshConnectionFor } from "../../lab/inventory";
import { pidAlive, run, tryRun } from "../../lab/sh";
import type { RouterRouteInputs, RouterRouteOutputs } from "../../provider/router/routerRouteSpec";
import { SshConnection, endpointOf, keysOf } from "../../provider/host/sshConnection";

export type Driver = "linux" | "frr";

export function routeInputs(
  router: InventoryRouter,
  driver: Driver,
  prefix: string,
  nextHop: string,
  conn: SshConnection = sshConnectionFor(router.ssh),
  extra: Partial<RouterRouteInputs> = {},
): RouterRouteInputs {
  return {
    router: { driver, ...(driver === "frr" ? { vtyshArgs: router.vtyshArgs } : {}), connection: endpointOf(conn) },
    privateKeys: keysOf(conn),
    prefix,
    nextHop,
    ...extra,
  };
}

/** The router namespace's kernel routes to exactly `prefix`, one line each ("" when none). */
export function kernelRoutes(router: InventoryRouter, prefix = ""): string {
  return run("ip", ["-n", router.netns!, "route", "show", ...(prefix ? [prefix] : [])]).trim();
}

/** Every IPv4 kernel route of the router namespace, for before/after comparisons (IPv6 link-local settles on its own). */
export function routingTable(router: InventoryRouter): string {
  return run("ip", ["-4", "-n", router.netns!, "route", "show", "table", "all"]);
}

/** `ip route …` lines of FRR's running config (all, or for one prefix). */
export function frrStatics(router: InventoryRouter, prefix = ""): string[] {
  const config = run("ip", ["netns", "exec", router.netns!, "vtysh", ...router.vtyshArgs, "-c", "show running-config"]);
  return config.split("\n").filter((l) => l.startsWith(`ip route ${prefix}`));
}

export function vtysh(router: InventoryRouter, ...lines: string[]): string {
  return run("ip", ["netns", "exec", router.netns!, "vtysh", ...router.vtyshArgs, ...lines.flatMap((l) => ["-c", l])]);
}

export function ipInRouter(router: InventoryRouter, ...args: string[]): string {
  return run("ip", ["-n", router.netns!, ...args]);
}

/** Polls until `probe` satisfies `ok` (FRR installs kernel routes asynchronously). */
export async function eventually<T>(probe: () => T, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = probe();
  while (!ok(v) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    v = probe();
  }
  return v;
}

interface SshdProcess {
  pid: number;
  cmdline: string;
}

/** sshd processes in the router namespace: the listener and one per live connection. */
export function routerSshds(router: Pick<InventoryRouter, "netns">): SshdProcess[] {
  const pids = tryRun("ip", ["netns", "pids", router.netns!]).stdout.split("\n").filter(Boolean).map(Number);
  return pids
    .map((pid) => {
      try {
        return { pid, cmdline: fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim() };
      } catch {
        return { pid, cmdline: "" };
      }
    })
    .filter((p) => /^(sshd|\/usr\/sbin\/sshd)\b/.test(p.cmdline));
}

/**
 * Stops the sshd of the router (or of a host), listener and live sessions (so pooled connections die too); returns
 * how to start it again: the listener's own `sshd -f <config> -E <log>` (sshd rewrites its
 * process title to "sshd: /usr/sbin/sshd -f … [listener] …", so the arguments are read from it).
 */
export async function stopRouterSshd(router: Pick<InventoryRouter, "netns">): Promise<string[]> {
  const procs = routerSshds(router);
  const listener = procs.find((p) => p.cmdline.includes("[listener]"));
  const m = listener && /(\/\S*sshd) -f (\S+) -E (\S+)/.exec(listener.cmdline);
  if (!m) throw new Error(`no sshd listener in ${router.netns}: ${JSON.stringify(procs)}`);
  for (const p of procs) tryRun("kill", ["-KILL", String(p.pid)]);
  const alive = await eventually(() => procs.filter((p) => pidAlive(p.pid)), (left) => left.length === 0);
  if (alive.length) throw new Error(`sshd processes ${alive.map((p) => p.pid).join(", ")} in ${router.netns} survived SIGKILL`);
  return [m[1], "-f", m[2], "-E", m[3]];
}

export async function startRouterSshd(router: InventoryRouter, argv: string[]): Promise<void> {
  run("ip", ["netns", "exec", router.netns!, ...argv]);
  await waitForPort(router.ssh.host, router.ssh.port, 5000);
}

export function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect({ host, port });
      sock.once("connect", () => (sock.destroy(), resolve()));
      sock.once("error", () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error(`${host}:${port} not listening after ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** SSH connections the router's sshd accepted so far (it logs one line per authenticated connection). */
export function acceptedConnections(stateDir: string): number {
  const log = `${stateDir}/router/ssh/sshd.log`;
  return fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter((l) => l.includes("Accepted publickey")).length : 0;
}

/** Outputs as the engine would pass them back (plain JSON). */
export const asOutputs = (o: unknown) => JSON.parse(JSON.stringify(o)) as RouterRouteOutputs;
