// A throwaway etcd for tests and benchmarks: the Debian /usr/bin/etcd on 127.0.0.1 with free
// ports and its own data dir, optionally with mTLS and password auth. stop() kills it and
// removes the dir; pause()/resume() freeze it with SIGSTOP/SIGCONT to cut answers mid-flight.
import { ChildProcess, execFile, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import type { EtcdConnection } from "../../provider/etcd/etcdClient";

export const ETCD_BINARY = process.env.BPFNET_ETCD ?? "/usr/bin/etcd";
const ETCDCTL = process.env.BPFNET_ETCDCTL ?? "/usr/bin/etcdctl";

export interface TlsMaterial {
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  /** makeTls({ proxyClient: true }): a client certificate with an empty Common Name, as etcd's gRPC proxy requires upstream. */
  proxyCertPem?: string;
  proxyKeyPem?: string;
}

export interface StartOptions {
  /** Serve clients over TLS and require client certificates. */
  tls?: boolean;
  /** TLS from this material instead of a fresh makeTls() (e.g. a CA whose key the test holds). */
  tlsMaterial?: TlsMaterial;
  /** Enable password auth with this root user. */
  auth?: { username: string; password: string };
  /** Where the data dir goes (default /dev/shm when present: fsync on tmpfs is cheap). */
  dataRoot?: string;
  /** Serve clients on this address instead of 127.0.0.1, e.g. a lab's management bridge (10.X.0.254), which its hosts reach. With tls the server certificate names it too. */
  host?: string;
}

export interface TestEtcd {
  endpoints: string[];
  /** A connection with every credential needed (TLS client cert, password). */
  connection: EtcdConnection;
  tls?: TlsMaterial;
  pid: number;
  dataDir: string;
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function startEtcd(opts: StartOptions = {}): Promise<TestEtcd> {
  // A port picked free can be taken before etcd binds it: try again with new ports.
  let last: unknown;
  for (let i = 0; i < 3; i++) {
    try {
      return await startOnce(opts);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

async function startOnce(opts: StartOptions): Promise<TestEtcd> {
  const root = opts.dataRoot ?? (fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir());
  const dir = fs.mkdtempSync(path.join(root, "bpfnet-etcd-"));
  const dataDir = path.join(dir, "data");
  const [clientPort, peerPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const scheme = opts.tls ? "https" : "http";
  const clientUrl = `${scheme}://${opts.host ?? "127.0.0.1"}:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    "--name=test",
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=test=${peerUrl}`,
    "--initial-cluster-state=new",
    `--listen-metrics-urls=http://127.0.0.1:${metricsPort}`,
    "--logger=zap",
    "--log-level=error",
  ];
  let tls: TlsMaterial | undefined;
  if (opts.tls) {
    tls = opts.tlsMaterial ?? makeTls(opts.host ? { serverIp: opts.host } : {});
    const write = (name: string, text: string) => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, text, { mode: 0o600 });
      return p;
    };
    args.push(
      `--cert-file=${write("server.crt", tls.serverCertPem)}`,
      `--key-file=${write("server.key", tls.serverKeyPem)}`,
      `--trusted-ca-file=${write("ca.crt", tls.caPem)}`,
      "--client-cert-auth",
    );
  }
  const child = spawn(ETCD_BINARY, args, { stdio: ["ignore", "ignore", "pipe"] });
  running.add(child);
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr = (stderr + d.toString()).slice(-4000)));
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.on("exit", () => {
      exited = true;
      running.delete(child);
      resolve();
    }),
  );

  const cleanup = async () => {
    if (!exited) {
      child.kill("SIGCONT");
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exit;
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitHealthy(metricsPort, () => exited, () => stderr);
  } catch (e) {
    await cleanup();
    throw e;
  }

  const connection: EtcdConnection = { endpoints: [clientUrl] };
  if (tls) Object.assign(connection, { caPem: tls.caPem, certPem: tls.clientCertPem, keyPem: tls.clientKeyPem });
  if (opts.auth) {
    await enableAuth(clientUrl, dir, tls, opts.auth).catch(async (e) => {
      await cleanup();
      throw e;
    });
    Object.assign(connection, opts.auth);
  }
  return {
    endpoints: [clientUrl],
    connection,
    ...(tls ? { tls } : {}),
    pid: child.pid!,
    dataDir,
    pause: () => child.kill("SIGSTOP"),
    resume: () => child.kill("SIGCONT"),
    stop: cleanup,
  };
}

async function waitHealthy(metricsPort: number, exited: () => boolean, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (exited()) throw new Error(`etcd exited during start: ${stderr()}`);
    try {
      const r = await fetch(`http://127.0.0.1:${metricsPort}/health`);
      const body = (await r.json()) as { health?: string };
      if (body.health === "true") return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd did not become healthy within 20s: ${stderr()}`);
}

async function enableAuth(clientUrl: string, dir: string, tls: TlsMaterial | undefined, auth: { username: string; password: string }): Promise<void> {
  const base = [`--endpoints=${clientUrl}`];
  if (tls) {
    base.push(`--cacert=${path.join(dir, "ca.crt")}`);
    fs.writeFileSync(path.join(dir, "client.crt"), tls.clientCertPem);
    fs.writeFileSync(path.join(dir, "client.key"), tls.clientKeyPem, { mode: 0o600 });
    base.push(`--cert=${path.join(dir, "client.crt")}`, `--key=${path.join(dir, "client.key")}`);
  }
  const ctl = (...a: string[]) =>
    new Promise<void>((resolve, reject) =>
      execFile(ETCDCTL, [...base, ...a], { env: { ...process.env, ETCDCTL_API: "3" } }, (err, _out, errText) =>
        err ? reject(new Error(`etcdctl ${a.join(" ")}: ${errText || err.message}`)) : resolve(),
      ),
    );
  await ctl("user", "add", `${auth.username}:${auth.password}`);
  if (auth.username !== "root") await ctl("user", "add", `root:${auth.password}`);
  await ctl("user", "grant-role", auth.username, "root");
  await ctl("auth", "enable");
}

/** A CA, a server certificate for 127.0.0.1/localhost (and `serverIp`) and a client certificate (CN=root). */
export function makeTls(opts: { proxyClient?: boolean; serverIp?: string } = {}): TlsMaterial {
  // node-forge signs; keys come from node's native RSA generation (forge's is slow).
  const forge = require("node-forge") as typeof import("node-forge");
  const newKey = () => {
    const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
    const key = forge.pki.privateKeyFromPem(pem);
    return { pem, key, pub: forge.pki.setRsaPublicKey(key.n, key.e) };
  };
  const cert = (
    subject: string,
    pub: import("node-forge").pki.PublicKey,
    signer: import("node-forge").pki.rsa.PrivateKey,
    issuer: string,
    ext: object[],
  ) => {
    const c = forge.pki.createCertificate();
    c.publicKey = pub;
    c.serialNumber = "01" + crypto.randomBytes(8).toString("hex");
    c.validity.notBefore = new Date(Date.now() - 60_000);
    c.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
    c.setSubject([{ name: "commonName", value: subject }]);
    c.setIssuer([{ name: "commonName", value: issuer }]);
    c.setExtensions(ext);
    c.sign(signer, forge.md.sha256.create());
    return forge.pki.certificateToPem(c);
  };
  const ca = newKey();
  const server = newKey();
  const client = newKey();
  const caPem = cert("bpfnet-test-ca", ca.pub, ca.key, "bpfnet-test-ca", [
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
  ]);
  const serverCertPem = cert("127.0.0.1", server.pub, ca.key, "bpfnet-test-ca", [
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    { name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }, ...(opts.serverIp ? [{ type: 7, ip: opts.serverIp }] : []), { type: 2, value: "localhost" }] },
  ]);
  const clientCertPem = cert("root", client.pub, ca.key, "bpfnet-test-ca", [
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
    { name: "extKeyUsage", clientAuth: true },
  ]);
  const material: TlsMaterial = { caPem, serverCertPem, serverKeyPem: server.pem, clientCertPem, clientKeyPem: client.pem };
  if (opts.proxyClient) {
    // etcd's gRPC proxy refuses an upstream certificate with a Common Name (etcd would take it for that user).
    const proxy = newKey();
    material.proxyCertPem = cert("", proxy.pub, ca.key, "bpfnet-test-ca", [
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", clientAuth: true },
    ]);
    material.proxyKeyPem = proxy.pem;
  }
  return material;
}
