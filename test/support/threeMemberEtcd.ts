// A throwaway 3-member etcd cluster on loopback with TLS on every client and peer connection
// (as in production), for the scale simulation and its benchmark. Each member has its own data
// dir (tmpfs or disk) and its own metrics port; stop() kills exactly these processes and removes
// the dirs. Built on test/support/etcd.ts's binary, TLS material and free-port helpers.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { EtcdConnection } from "../../provider/etcd/etcdClient";
import { ETCD_BINARY, freePort, makeTls, TlsMaterial } from "./etcd";

export interface EtcdMemberProcess {
  name: string;
  pid: number;
  clientUrl: string;
  metricsUrl: string;
  dataDir: string;
}

export interface ThreeMemberEtcd {
  members: EtcdMemberProcess[];
  connection: EtcdConnection;
  tls: TlsMaterial;
  stop(): Promise<void>;
}

export interface ThreeMemberOptions {
  /** Where the data dirs go (default /dev/shm; a disk path for production-like fsync). */
  dataRoot?: string;
  /** etcd's --quota-backend-bytes (default 8 GiB: a 5,000-host ramp outgrows the 2 GiB default's headroom for history). */
  quotaBytes?: number;
}

export async function startThreeMemberEtcd(opts: ThreeMemberOptions = {}): Promise<ThreeMemberEtcd> {
  const root = opts.dataRoot ?? (fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir());
  const dir = fs.mkdtempSync(path.join(root, "bpfnet-etcd3-"));
  const tls = makeTls({ proxyClient: true });
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const ca = file("ca.crt", tls.caPem);
  const cert = file("server.crt", tls.serverCertPem);
  const key = file("server.key", tls.serverKeyPem);
  const ports: { client: number; peer: number; metrics: number }[] = [];
  for (let i = 0; i < 3; i++) ports.push({ client: await freePort(), peer: await freePort(), metrics: await freePort() });
  const names = ["m0", "m1", "m2"];
  const initialCluster = names.map((n, i) => `${n}=https://127.0.0.1:${ports[i].peer}`).join(",");
  const children: ChildProcess[] = [];
  const exited = new Map<ChildProcess, Promise<void>>();
  const members: EtcdMemberProcess[] = [];
  const stderr: string[] = ["", "", ""];
  const stop = async () => {
    for (const c of children) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      c.kill("SIGTERM");
      const t = setTimeout(() => c.kill("SIGKILL"), 5000);
      await exited.get(c);
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  names.forEach((name, i) => {
    const p = ports[i];
    const dataDir = path.join(dir, name);
    const clientUrl = `https://127.0.0.1:${p.client}`;
    const peerUrl = `https://127.0.0.1:${p.peer}`;
    const child = spawn(
      ETCD_BINARY,
      [
        `--name=${name}`,
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${clientUrl}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        "--initial-cluster-token=bpfnet-scale",
        "--initial-cluster-state=new",
        `--listen-metrics-urls=http://127.0.0.1:${p.metrics}`,
        `--quota-backend-bytes=${opts.quotaBytes ?? 8 * 1024 ** 3}`,
        `--cert-file=${cert}`,
        `--key-file=${key}`,
        `--trusted-ca-file=${ca}`,
        "--client-cert-auth",
        `--peer-cert-file=${cert}`,
        `--peer-key-file=${key}`,
        `--peer-trusted-ca-file=${ca}`,
        "--peer-client-cert-auth",
        "--logger=zap",
        "--log-level=error",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    child.stderr!.on("data", (d) => (stderr[i] = (stderr[i] + d.toString()).slice(-4000)));
    exited.set(child, new Promise((resolve) => child.once("exit", () => resolve())));
    children.push(child);
    members.push({ name, pid: child.pid!, clientUrl, metricsUrl: `http://127.0.0.1:${p.metrics}/metrics`, dataDir });
  });
  const onExit = () => children.forEach((c) => c.kill("SIGKILL"));
  process.once("exit", onExit);
  try {
    await Promise.all(ports.map((p, i) => waitHealthy(p.metrics, children[i], () => stderr[i])));
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    members,
    tls,
    connection: { endpoints: members.map((m) => m.clientUrl), caPem: tls.caPem, certPem: tls.clientCertPem, keyPem: tls.clientKeyPem },
    stop: async () => {
      process.removeListener("exit", onExit);
      await stop();
    },
  };
}

async function waitHealthy(metricsPort: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd member exited during start: ${stderr()}`);
    try {
      const body = (await (await fetch(`http://127.0.0.1:${metricsPort}/health`)).json()) as { health?: string };
      if (body.health === "true") return;
    } catch {
      // not listening yet, or no leader yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd member did not become healthy within 30 s: ${stderr()}`);
}

export interface GrpcProxies {
  /** Each proxy's client URL (https://127.0.0.1:23800+i). */
  endpoints: string[];
  pids: number[];
  stop(): Promise<void>;
}

/** First client port of the proxies (23800-23809) and of their metrics (23810-23819). */
const PROXY_PORT = 23800;

/**
 * `count` etcd gRPC proxies (`etcd grpc-proxy start`) in front of the members, as a production
 * deployment runs one per rack: watches of the same range through one proxy coalesce into one
 * upstream watch, and the proxy caches serializable reads. TLS on both sides (to the members with
 * the client certificate, to its clients with the server certificate, client certificates
 * required). Through a proxy every client reaches etcd as the proxy's identity.
 */
export async function startGrpcProxies(etcd: ThreeMemberEtcd, count: number): Promise<GrpcProxies> {
  if (count < 1 || count > 10) throw new RangeError(`1 to 10 proxies (ports ${PROXY_PORT}-${PROXY_PORT + 9}), got ${count}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-grpc-proxy-"));
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const ca = file("ca.crt", etcd.tls.caPem);
  const files = {
    ca,
    cert: file("server.crt", etcd.tls.serverCertPem),
    key: file("server.key", etcd.tls.serverKeyPem),
    clientCert: file("proxy.crt", etcd.tls.proxyCertPem!),
    clientKey: file("proxy.key", etcd.tls.proxyKeyPem!),
  };
  const upstream = etcd.members.map((m) => m.clientUrl.replace(/^https:\/\//, "")).join(",");
  const children: ChildProcess[] = [];
  const stderr: string[] = [];
  for (let i = 0; i < count; i++) {
    stderr.push("");
    const child = spawn(
      ETCD_BINARY,
      [
        "grpc-proxy",
        "start",
        `--endpoints=${upstream}`,
        `--listen-addr=127.0.0.1:${PROXY_PORT + i}`,
        `--advertise-client-url=127.0.0.1:${PROXY_PORT + i}`,
        `--metrics-addr=http://127.0.0.1:${PROXY_PORT + 10 + i}`,
        `--data-dir=${path.join(dir, `proxy${i}`)}`,
        `--cacert=${files.ca}`,
        `--cert=${files.clientCert}`,
        `--key=${files.clientKey}`,
        `--cert-file=${files.cert}`,
        `--key-file=${files.key}`,
        `--trusted-ca-file=${files.ca}`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    child.stderr!.on("data", (d) => (stderr[i] = (stderr[i] + d.toString()).slice(-4000)));
    children.push(child);
  }
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill("SIGKILL"), 5000);
            c.once("exit", () => {
              clearTimeout(t);
              resolve();
            });
            c.kill("SIGTERM");
          }),
      ),
    );
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const onExit = () => children.forEach((c) => c.kill("SIGKILL"));
  process.once("exit", onExit);
  try {
    await Promise.all(
      children.map(async (c, i) => {
        const deadline = Date.now() + 30_000;
        for (;;) {
          if (c.exitCode !== null) throw new Error(`grpc-proxy ${i} exited during start: ${stderr[i].slice(-1500)}`);
          const up = await fetch(`http://127.0.0.1:${PROXY_PORT + 10 + i}/health`).then((r) => r.ok, () => false);
          if (up) return;
          if (Date.now() > deadline) throw new Error(`grpc-proxy ${i} not serving within 30 s: ${stderr[i]}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }),
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    endpoints: children.map((_, i) => `https://127.0.0.1:${PROXY_PORT + i}`),
    pids: children.map((c) => c.pid!),
    stop: async () => {
      process.removeListener("exit", onExit);
      await stop();
    },
  };
}
