// IPAM benchmark: 1,000 host CIDRs by 8 concurrent clients against one local etcd, with the
// transactional allocator as it was (a read, a guess or a scan, a claim) and with its free-slot
// hint (one transaction per allocation), side by side in one run, and, for contrast, a naive
// read-pick-write allocator (no transaction).
//   npx ts-node bench/ipam.ts            (etcd data dir on disk, under the OS temp dir)
//   BENCH_TMPFS=1 npx ts-node bench/ipam.ts   (data dir on /dev/shm)
import * as os from "os";
import type { Etcd3 } from "etcd3";
import { formatCidr, nthSubnet, parseCidr, subnetCount } from "../provider/ipam/cidr";
import { containerNetworkProvider } from "../provider/network/containerNetwork";
import { EtcdConnection, connect } from "../provider/etcd/etcdClient";
import { listPrefix } from "../provider/etcd/etcdOps";
import { hostAllocationProvider } from "../provider/ipam/hostAllocation";
import { allocate, audit } from "../provider/ipam/ipamStore";
import { cidrFromKey, cidrKey, hostKey, ipamCidrsDir, ipamHostsDir } from "../provider/etcd/keys";
import { startEtcd } from "../test/support/etcd";

const HOSTS = 1000;
const CLIENTS = 8;

interface Row {
  name: string;
  pool: string;
  ok: number;
  failed: number;
  seconds: number;
  latencies: number[];
  conflicts: number;
  duplicates: number;
}

async function network(conn: EtcdConnection, name: string, clusterCidr: string): Promise<string> {
  const c = await containerNetworkProvider.check!({} as never, { connection: conn, networkName: name, mode: "vxlan", clusterCidr, hostPrefixLength: 24 } as never);
  if (c.failures?.length) throw new Error(JSON.stringify(c.failures));
  return (await containerNetworkProvider.create(c.inputs!)).id;
}

/** Runs `one(client, host)` for HOSTS hosts over CLIENTS concurrent lanes, each with its own client. */
async function drive(conn: EtcdConnection, one: (client: Etcd3, host: string) => Promise<number>) {
  const hosts = Array.from({ length: HOSTS }, (_, i) => `node-${String(i).padStart(4, "0")}`);
  const latencies: number[] = [];
  let failed = 0;
  let conflicts = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const client = connect(conn);
      try {
        for (let h = hosts.shift(); h !== undefined; h = hosts.shift()) {
          const s = process.hrtime.bigint();
          try {
            conflicts += await one(client, h);
            latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
          } catch {
            failed++;
          }
        }
      } finally {
        client.close();
      }
    }),
  );
  return { latencies, failed, conflicts, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/** Two hosts on one CIDR count as one duplicate each beyond the first. */
async function duplicates(conn: EtcdConnection, prefix: string): Promise<number> {
  const client = connect(conn);
  try {
    const cidrs = (await listPrefix(client, ipamHostsDir(prefix))).map((kv) => JSON.parse(kv.value).cidr as string);
    return cidrs.length - new Set(cidrs).size;
  } finally {
    client.close();
  }
}

/** The transactional allocator: today's path (`hint: false`) or with this process's free-slot hint (one transaction per allocation). */
async function transactional(conn: EtcdConnection, name: string, pool: string, hint: boolean): Promise<Row> {
  const prefix = await network(conn, hint ? `${name}-hint` : name, pool);
  const r = await drive(conn, async (client, host) => {
    const a = await allocate(client, { prefix, host, allocationId: `${host}-bench`, hint });
    return a.conflicts;
  });
  const client = connect(conn);
  const problems = (await audit(client, prefix)).problems;
  client.close();
  if (problems.length) throw new Error(`audit of ${prefix}: ${problems.slice(0, 5).join("; ")}`);
  return { name: `txn allocator${hint ? " + hint" : ""} (${name})`, pool, ok: r.latencies.length, ...r, duplicates: await duplicates(conn, prefix) };
}

async function viaProvider(conn: EtcdConnection, name: string, pool: string): Promise<Row> {
  const prefix = await network(conn, name, pool);
  // The provider opens and closes its own client per call, as under `pulumi up`.
  const r = await drive(conn, async (_client, host) => {
    await hostAllocationProvider.create({ connection: conn, prefix, host });
    return 0;
  });
  return { name: `HostAllocation.create (${name})`, pool, ok: r.latencies.length, ...r, conflicts: NaN, duplicates: await duplicates(conn, prefix) };
}

/** Reads the used CIDRs, takes the lowest free one, writes both keys: no compare, no retry. */
async function naive(conn: EtcdConnection, name: string, pool: string): Promise<Row> {
  const prefix = await network(conn, name, pool);
  const p = parseCidr(pool)!;
  const total = subnetCount(p, 24);
  const r = await drive(conn, async (client, host) => {
    const used = new Set((await listPrefix(client, ipamCidrsDir(prefix))).map((kv) => cidrFromKey(prefix, kv.key)));
    let i = 0;
    while (i < total && used.has(formatCidr(nthSubnet(p, 24, i)))) i++;
    if (i === total) throw new Error("exhausted");
    const cidr = formatCidr(nthSubnet(p, 24, i));
    const rec = { schema: 1, host, allocationId: "naive", createdAt: new Date().toISOString() };
    await client.put(cidrKey(prefix, cidr)).value(JSON.stringify(rec));
    await client.put(hostKey(prefix, host)).value(JSON.stringify({ ...rec, cidr }));
    return 0;
  });
  return { name: `naive read-pick-write (${name})`, pool, ok: r.latencies.length, ...r, duplicates: await duplicates(conn, prefix) };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
}

function table(rows: Row[]): string {
  const head = ["allocator", "pool (/24s)", "ok", "failed", "alloc/s", "p50 ms", "p99 ms", "txn conflicts", "duplicates"];
  const body = rows.map((r) => [
    r.name,
    `${r.pool} (${subnetCount(parseCidr(r.pool)!, 24)})`,
    String(r.ok),
    String(r.failed),
    (r.ok / r.seconds).toFixed(0),
    pct(r.latencies, 50).toFixed(1),
    pct(r.latencies, 99).toFixed(1),
    Number.isNaN(r.conflicts) ? "-" : String(r.conflicts),
    String(r.duplicates),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)].join("\n");
}

async function main() {
  const tmpfs = process.env.BENCH_TMPFS === "1";
  const load0 = os.loadavg()[0];
  const etcd = await startEtcd({ dataRoot: tmpfs ? "/dev/shm" : os.tmpdir() });
  try {
    const conn = etcd.connection;
    await transactional(conn, "warmup", "10.192.0.0/12", false); // JIT and etcd warm-up, not reported
    await transactional(conn, "warmup", "10.208.0.0/12", true);
    // Today's allocator and the hinted one side by side, interleaved, same etcd, same run.
    const rows = [
      await transactional(conn, "sparse", "10.0.0.0/12", false),
      await transactional(conn, "sparse", "10.64.0.0/12", true),
      await transactional(conn, "dense", "10.16.0.0/14", false),
      await transactional(conn, "dense", "10.20.0.0/14", true),
      await viaProvider(conn, "provider", "10.32.0.0/12"),
      await naive(conn, "naive", "10.48.0.0/12"),
    ];
    console.log(`${HOSTS} hosts, ${CLIENTS} concurrent clients, etcd ${process.env.BPFNET_ETCD ?? "/usr/bin/etcd"} data dir on ${tmpfs ? "tmpfs" : "disk"}, ${os.cpus().length} CPUs, load average (1 min) ${load0.toFixed(1)} at the start, ${os.loadavg()[0].toFixed(1)} at the end`);
    console.log(table(rows));
  } finally {
    await etcd.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
