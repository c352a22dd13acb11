// An etcd the lab's hosts can reach: test/support/etcd.ts binds 127.0.0.1, which inside a
// host's network namespace is that namespace's own loopback. This one listens on the root
// namespace's address on the lab's management bridge (10.X.0.254), which every host reaches.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import type { EtcdConnection } from "../../../provider/etcd/etcdClient";
import { ETCD_BINARY } from "../../support/etcd";

export interface LabEtcd {
  connection: EtcdConnection;
  pid: number;
  stop(): Promise<void>;
  /** Stops etcd (SIGTERM), keeping its data: an outage. */
  halt(): Promise<void>;
  /** Starts it again on the same ports and data (after halt()). */
  restart(): Promise<void>;
}

export async function freePortOn(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function startEtcdOn(host: string): Promise<LabEtcd> {
  const root = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(root, "bpfnet-agent-etcd-"));
  const [client, peer, metrics] = [await freePortOn(host), await freePortOn("127.0.0.1"), await freePortOn("127.0.0.1")];
  const clientUrl = `http://${host}:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const args = [
    "--name=agent-test",
    `--data-dir=${path.join(dir, "data")}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=agent-test=${peerUrl}`,
    "--initial-cluster-state=new",
    `--listen-metrics-urls=http://127.0.0.1:${metrics}`,
    "--logger=zap",
    "--log-level=error",
  ];
  let child: ChildProcess;
  let stderr = "";
  let exited = true;
  let exit: Promise<void> = Promise.resolve();
  const halt = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exit;
      clearTimeout(t);
    }
  };
  const stop = async () => {
    await halt();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const launch = async () => {
    child = spawn(ETCD_BINARY, args, { stdio: ["ignore", "ignore", "pipe"] });
    exited = false;
    child.stderr!.on("data", (d) => (stderr = (stderr + d.toString()).slice(-4000)));
    exit = new Promise<void>((resolve) => child.on("exit", () => ((exited = true), resolve())));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (exited) {
        await stop();
        throw new Error(`etcd exited during start: ${stderr}`);
      }
      try {
        const r = await fetch(`http://127.0.0.1:${metrics}/health`);
        if (((await r.json()) as { health?: string }).health === "true") break;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`etcd did not become healthy: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await launch();
  const handle: LabEtcd = {
    connection: { endpoints: [clientUrl] },
    pid: child!.pid!,
    stop,
    halt,
    restart: async () => {
      if (!exited) return;
      await launch();
      handle.pid = child.pid!;
    },
  };
  return handle;
}
