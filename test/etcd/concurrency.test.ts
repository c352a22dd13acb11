// Allocators in separate OS processes against one real etcd: no CIDR is ever handed out twice,
// a full pool fails cleanly, and killed clients or a frozen etcd leave nothing duplicated or leaked.
import { ChildProcess, spawn } from "child_process";
import * as path from "path";
import { containsCidr, parseCidr } from "../../provider/ipam/cidr";
import { containerNetworkProvider } from "../../provider/network/containerNetwork";
import { EtcdConnection, withEtcd } from "../../provider/etcd/etcdClient";
import { audit } from "../../provider/ipam/ipamStore";
import { ipamCidrsDir, ipamHostsDir } from "../../provider/etcd/keys";
import { startEtcd, TestEtcd } from "../support/etcd";
import { keysUnder } from "./helpers";

const ROOT = path.resolve(__dirname, "../..");
const WORKER = path.join(__dirname, "fixtures", "allocWorker.ts");

interface Result {
  host: string;
  ok: boolean;
  podCidr?: string;
  allocationId?: string;
  outcome?: string;
  retries?: number;
  ms?: number;
  code?: string;
  error?: string;
}

let etcd: TestEtcd;
let conn: EtcdConnection;

beforeAll(async () => {
  etcd = await startEtcd();
  conn = etcd.connection;
});
afterAll(async () => etcd?.stop());

async function network(name: string, clusterCidr: string, hostPrefixLength: number): Promise<string> {
  const c = await containerNetworkProvider.check!({} as never, { connection: conn, networkName: name, mode: "vxlan", clusterCidr, hostPrefixLength } as never);
  expect(c.failures).toEqual([]);
  return (await containerNetworkProvider.create(c.inputs!)).id;
}

const hostsOf = (proc: number, n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}-p${proc}-h${i}`);

/** Starts one worker process per host list; `onResult` sees every line as it arrives. */
function runWorkers(prefix: string, hostLists: string[][], via: "provider" | "store", onResult?: (r: Result) => void) {
  const results: Result[] = [];
  const children: ChildProcess[] = [];
  const done = Promise.all(
    hostLists.map(
      (hosts) =>
        new Promise<void>((resolve, reject) => {
          const job = { connection: conn, prefix, hosts, concurrency: 4, via, deadlineMs: 60_000 };
          const child = spawn(process.execPath, ["-r", "ts-node/register", WORKER, JSON.stringify(job)], {
            cwd: ROOT,
            env: { ...process.env, TS_NODE_TRANSPILE_ONLY: "true" },
            stdio: ["ignore", "pipe", "pipe"],
          });
          children.push(child);
          let buf = "";
          let err = "";
          child.stdout!.on("data", (d) => {
            buf += d.toString();
            let nl;
            while ((nl = buf.indexOf("\n")) >= 0) {
              const r = JSON.parse(buf.slice(0, nl)) as Result;
              buf = buf.slice(nl + 1);
              results.push(r);
              onResult?.(r);
            }
          });
          child.stderr!.on("data", (d) => (err += d.toString()));
          child.on("exit", (code, signal) => (code === 0 || signal === "SIGKILL" ? resolve() : reject(new Error(`worker exited ${code} ${signal}: ${err}`))));
        }),
    ),
  );
  return { results, children, done };
}

async function consistent(prefix: string) {
  const a = await withEtcd(conn, (c) => audit(c, prefix));
  expect(a.problems).toEqual([]);
  const cidrs = [...a.hosts.values()].map((h) => h.cidr);
  expect(new Set(cidrs).size).toBe(cidrs.length);
  expect((await keysUnder(conn, ipamCidrsDir(prefix))).length).toBe(a.hosts.size);
  return a;
}

test("256 allocations from 8 processes at once: all distinct, all inside the pool", async () => {
  const prefix = await network("conc", "10.100.0.0/16", 24); // exactly 256 host subnets
  const run = runWorkers(prefix, Array.from({ length: 8 }, (_, p) => hostsOf(p, 32, "c")), "provider");
  await run.done;
  const failed = run.results.filter((r) => !r.ok);
  expect(failed).toEqual([]);
  expect(run.results).toHaveLength(256);
  const cidrs = run.results.map((r) => r.podCidr!);
  expect(new Set(cidrs).size).toBe(256);
  const pool = parseCidr("10.100.0.0/16")!;
  for (const c of cidrs) expect(containsCidr(pool, parseCidr(c)!) && c.endsWith("/24")).toBe(true);
  const a = await consistent(prefix);
  expect(a.hosts.size).toBe(256);
  for (const r of run.results) expect(a.hosts.get(r.host)).toMatchObject({ cidr: r.podCidr, allocationId: r.allocationId });
});

test("a pool of exactly 16 subnets and 40 hosts in 8 processes: 16 succeed, 24 get the exhaustion error", async () => {
  const prefix = await network("full", "10.101.0.0/24", 28);
  const run = runWorkers(prefix, Array.from({ length: 8 }, (_, p) => hostsOf(p, 5, "f")), "provider");
  await run.done;
  const ok = run.results.filter((r) => r.ok);
  const failed = run.results.filter((r) => !r.ok);
  expect(ok).toHaveLength(16);
  expect(new Set(ok.map((r) => r.podCidr)).size).toBe(16);
  expect(failed).toHaveLength(24);
  for (const f of failed) {
    expect(f.code).toBe("exhausted");
    expect(f.error).toBe(`pool 10.101.0.0/24 of network ${prefix} is exhausted: all 16 /28 host subnets are allocated (host "${f.host}" got none)`);
  }
  expect((await consistent(prefix)).hosts.size).toBe(16);
});

test("clients killed mid-transaction leave no duplicate and no leak; the re-run adopts what they wrote", async () => {
  const prefix = await network("kill", "10.102.0.0/16", 24);
  const lists = Array.from({ length: 8 }, (_, p) => hostsOf(p, 24, "k"));
  let seen = 0;
  const run = runWorkers(prefix, lists, "store", () => {
    if (++seen === 40) for (const c of run.children) c.kill("SIGKILL");
  });
  await run.done;
  const reported = run.results.filter((r) => r.ok);
  expect(reported.length).toBeGreaterThanOrEqual(40);
  expect(reported.length).toBeLessThan(192);
  const after = await consistent(prefix);
  // Every allocation a client reported is in etcd as reported; etcd may hold more (killed before reporting).
  for (const r of reported) expect(after.hosts.get(r.host)).toMatchObject({ cidr: r.podCidr, allocationId: r.allocationId });

  const rerun = runWorkers(prefix, lists, "store");
  await rerun.done;
  expect(rerun.results.filter((r) => !r.ok)).toEqual([]);
  const final = await consistent(prefix);
  expect(final.hosts.size).toBe(192);
  for (const [host, rec] of after.hosts) {
    const again = rerun.results.find((r) => r.host === host)!;
    expect(again.podCidr).toBe(rec.cidr);
    expect(again.outcome).toBe("adopted");
  }
  expect(rerun.results.filter((r) => r.outcome === "new")).toHaveLength(192 - after.hosts.size);
});

test("etcd frozen (SIGSTOP) while clients wait on transactions: after SIGCONT all finish, nothing twice, nothing leaked", async () => {
  const prefix = await network("pause", "10.103.0.0/16", 24);
  let seen = 0;
  let resumed = false;
  let afterResume = 0;
  let paused: Promise<void> | undefined;
  const run = runWorkers(prefix, Array.from({ length: 8 }, (_, p) => hostsOf(p, 16, "z")), "store", () => {
    if (resumed) afterResume++;
    if (++seen === 20) {
      etcd.pause();
      paused = new Promise((r) => setTimeout(r, 6000)).then(() => {
        resumed = true;
        etcd.resume();
      });
    }
  });
  await run.done;
  await paused;
  expect(run.results.filter((r) => !r.ok)).toEqual([]);
  expect(run.results).toHaveLength(128);
  expect(new Set(run.results.map((r) => r.podCidr)).size).toBe(128);
  // The freeze was felt: allocations were still waiting when etcd came back, and finished after
  // it (their calls hit the deadline and were retried): counted by order of events, not by time.
  expect(afterResume).toBeGreaterThan(0);
  const a = await consistent(prefix);
  expect(a.hosts.size).toBe(128);
  for (const r of run.results) expect(a.hosts.get(r.host)).toMatchObject({ cidr: r.podCidr, allocationId: r.allocationId });
  expect((await keysUnder(conn, ipamHostsDir(prefix))).length).toBe(128);
});
