// One SSH connection and one serial queue per router, shared by every RouterRoute in the provider
// process. The engine runs all dynamic resources in one process but deserializes each resource's
// provider separately, so module state is not shared between them: the pool lives on globalThis.
// Work queued while the connection is busy is merged into one batch per (operation, driver), so
// 50 routes created at once cost a handful of round trips on one connection, not 50 sessions.
// The connection closes after a short idle time, so the provider process can exit.
import { SshSession, withSsh } from "../../host/ssh";
import type { SshConnection } from "../../host/sshConnection";
import type { CommandResult, ItemError, ObservedRoute, RouteSpec, RouterDriver, RouterOp, RouterShell } from "./driver";
import { batchScript, parseBatchOutput } from "./shell";

/**
 * The globalThis key of the pool; bumped when the shape below changes, since old and new provider
 * code may share a process. A string, not a Symbol: closure serialization cannot carry symbols.
 */
const REGISTRY = "__bpfnetRouterChannels_v1";
export const IDLE_CLOSE_MS = 1000;
const BATCH_TIMEOUT_MS = 120_000;
const MAX_BATCH = 100;

export interface RouterChannelStats {
  /** SSH connections opened to this router by this process. */
  connections: number;
  /** Round trips (SSH execs). */
  execs: number;
  /** Router commands run. */
  commands: number;
  /** Pooled connections found dead (the router closed them) and replaced. */
  reconnects: number;
}

interface Held {
  session: SshSession;
  close(): Promise<void>;
}

interface Job {
  op: RouterOp;
  driver: RouterDriver;
  item: string | RouteSpec | ObservedRoute;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Channel {
  name: string;
  conn: SshConnection;
  queue: Job[];
  busy: boolean;
  held?: Promise<Held>;
  idleTimer?: NodeJS.Timeout;
  stats: RouterChannelStats;
}

interface Registry {
  channels: Map<string, Channel>;
  idleCloseMs: number;
}

function registry(): Registry {
  const g = globalThis as unknown as Record<string, Registry | undefined>;
  return (g[REGISTRY] ??= { channels: new Map(), idleCloseMs: IDLE_CLOSE_MS });
}

/** How long an idle connection stays open (tests that need it alive longer; default IDLE_CLOSE_MS). */
export function setRouterIdleCloseMs(ms: number): void {
  registry().idleCloseMs = ms;
}

/** "root@10.0.0.1:22", or "root@10.0.0.1:22 via admin@bastion:22". */
export function routerName(conn: Pick<SshConnection, "user" | "host" | "port"> & { jump?: Pick<SshConnection, "user" | "host" | "port"> }): string {
  const at = (c: { user: string; host: string; port?: number }) => `${c.user}@${c.host}:${c.port ?? 22}`;
  return conn.jump ? `${at(conn)} via ${at(conn.jump)}` : at(conn);
}

/** Same machine, same account, same expected host key, same path: same connection. */
function channelKey(conn: SshConnection): string {
  const part = (c: SshConnection): string => `${c.user}@${c.host}:${c.port ?? 22}#${c.hostKeyFingerprint}${c.jump ? ` > ${part(c.jump)}` : ""}`;
  return part(conn);
}

/** Route operations on one router, queued and batched with every other resource's. */
export interface RouterChannel {
  readonly name: string;
  read(driver: RouterDriver, prefix: string): Promise<ObservedRoute[]>;
  /** Rejects with the router's name and the failing command. */
  ensure(driver: RouterDriver, route: RouteSpec): Promise<void>;
  remove(driver: RouterDriver, route: ObservedRoute): Promise<void>;
}

export function routerChannel(conn: SshConnection): RouterChannel {
  const channels = registry().channels;
  const key = channelKey(conn);
  let ch = channels.get(key);
  if (!ch) {
    ch = { name: routerName(conn), conn, queue: [], busy: false, stats: { connections: 0, execs: 0, commands: 0, reconnects: 0 } };
    channels.set(key, ch);
  }
  ch.conn = conn; // the newest credentials serve the next connection
  const channel = ch;
  const submit = <T>(op: RouterOp, driver: RouterDriver, item: Job["item"]) =>
    new Promise<T>((resolve, reject) => {
      channel.queue.push({ op, driver, item, resolve: resolve as (v: unknown) => void, reject });
      void pump(channel);
    });
  return {
    name: channel.name,
    read: (driver, prefix) => submit<ObservedRoute[]>("read", driver, prefix),
    ensure: (driver, route) => submit<void>("ensure", driver, route),
    remove: (driver, route) => submit<void>("remove", driver, route),
  };
}

/** Counters per router name (summed over credentials and expected host keys), for tests and benchmarks. */
export function routerChannelStats(): Record<string, RouterChannelStats> {
  const out: Record<string, RouterChannelStats> = {};
  for (const c of registry().channels.values()) {
    const sum = (out[c.name] ??= { connections: 0, execs: 0, commands: 0, reconnects: 0 });
    for (const k of Object.keys(sum) as (keyof RouterChannelStats)[]) sum[k] += c.stats[k];
  }
  return out;
}

/** Closes every idle connection now (tests; a clean exit without waiting for the idle timer). */
export async function closeRouterChannels(): Promise<void> {
  await Promise.all([...registry().channels.values()].filter((c) => !c.busy).map((c) => closeSession(c)));
}

async function pump(ch: Channel): Promise<void> {
  if (ch.busy) return;
  ch.busy = true;
  clearTimeout(ch.idleTimer);
  try {
    while (ch.queue.length) await runBatch(ch, takeBatch(ch.queue));
  } finally {
    ch.busy = false;
    ch.idleTimer = setTimeout(() => void closeSession(ch), registry().idleCloseMs);
    ch.idleTimer.unref();
  }
}

/** The first job and every queued job that can share its round trip. */
function takeBatch(queue: Job[]): Job[] {
  const first = queue[0];
  const batch: Job[] = [];
  for (let i = 0; i < queue.length && batch.length < MAX_BATCH; ) {
    if (queue[i].op === first.op && queue[i].driver.batchKey === first.driver.batchKey) batch.push(...queue.splice(i, 1));
    else i++;
  }
  return batch;
}

async function runBatch(ch: Channel, jobs: Job[]): Promise<void> {
  const { op, driver } = jobs[0];
  const failure = (job: Job, why: string) => new Error(`router ${ch.name} (${driver.kind}): ${purpose(op, job.item)}: ${why}`);
  try {
    if (op === "read") {
      const routes = await driver.read(shellOf(ch), jobs.map((j) => j.item as string));
      jobs.forEach((j, i) => j.resolve(routes[i]));
      return;
    }
    const errors: ItemError[] =
      op === "ensure"
        ? await driver.ensure(shellOf(ch), jobs.map((j) => j.item as RouteSpec))
        : await driver.remove(shellOf(ch), jobs.map((j) => j.item as ObservedRoute));
    jobs.forEach((j, i) => (errors[i] === undefined ? j.resolve(undefined) : j.reject(failure(j, errors[i]!))));
  } catch (e) {
    const err = e as TransportFailure;
    // A driver's own errors name the command; a lost connection names the one it was running for.
    const why = (j: Job) => (err.transport ? `\`${driver.describe(op, j.item)}\`: ${err.message}` : err.message);
    for (const j of jobs) j.reject(failure(j, why(j)));
    // A router we cannot reach fails everything waiting for it now, not one timeout per batch.
    if (err.connectFailed) for (const j of ch.queue.splice(0)) j.reject(new Error(`router ${ch.name} (${j.driver.kind}): ${purpose(j.op, j.item)}: \`${j.driver.describe(j.op, j.item)}\`: ${err.message}`));
  }
}

/** What an operation was for, in words, for error messages. */
function purpose(op: RouterOp, item: Job["item"]): string {
  if (op === "read") return `reading routes to ${item as string}`;
  const r = item as ObservedRoute;
  return op === "ensure" ? `adding route ${r.prefix} via ${r.nextHop}` : `removing ${r.description}`;
}

/** The connection failed (as opposed to a command): `connectFailed` when it never came up. */
type TransportFailure = Error & { transport?: true; connectFailed?: true };

/** Commands as one script on the pooled session; a stale pooled session is replaced once. */
function shellOf(ch: Channel): RouterShell {
  return {
    async run(commands: string[]): Promise<CommandResult[]> {
      const nonce = Math.random().toString(36).slice(2, 10);
      const script = batchScript(commands, nonce);
      for (let attempt = 0; ; attempt++) {
        const reused = ch.held !== undefined;
        const held = await session(ch);
        ch.stats.execs++;
        try {
          const r = await withTimeout(held.session.exec("sh -s", script), BATCH_TIMEOUT_MS, () => void closeSession(ch));
          ch.stats.commands += commands.length;
          const results = parseBatchOutput(commands, r.stdout, nonce);
          if (results.some((x) => x.code === -1)) void closeSession(ch); // dropped mid-batch
          return results;
        } catch (e) {
          void closeSession(ch);
          // The exec never started on a connection the router had closed: nothing ran, try a new one.
          // (A timeout is different: the commands may have run, so it is reported, not retried.)
          if (reused && attempt === 0 && !(e as { timedOut?: true }).timedOut) {
            ch.stats.reconnects++;
            continue;
          }
          throw Object.assign(e as Error, { transport: true });
        }
      }
    },
  };
}

function session(ch: Channel): Promise<Held> {
  if (!ch.held) {
    ch.stats.connections++;
    const opening = openHeld(ch.conn).catch((e: Error) => {
      if (ch.held === opening) ch.held = undefined;
      throw Object.assign(new Error(`cannot connect: ${e.message}`), { transport: true, connectFailed: true });
    });
    ch.held = opening;
  }
  return ch.held;
}

async function closeSession(ch: Channel): Promise<void> {
  const held = ch.held;
  ch.held = undefined;
  clearTimeout(ch.idleTimer);
  if (held) await held.then((h) => h.close(), () => undefined);
}

/** A withSsh session held open until close(): withSsh keeps host-key checks and jump hosts in one place. */
function openHeld(conn: SshConnection): Promise<Held> {
  return new Promise<Held>((resolve, reject) => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let ready = false;
    const done: Promise<void> = withSsh(conn, async (session) => {
      ready = true;
      resolve({ session, close: () => (release(), done) });
      await released;
    }).catch((e: Error) => {
      if (!ready) reject(e);
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(Object.assign(new Error(`no answer in ${ms / 1000} s`), { timedOut: true }));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
