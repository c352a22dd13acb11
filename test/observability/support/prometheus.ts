// A real Prometheus (Debian's package, /usr/bin/prometheus) for a lab: its own process bound to
// a lab address, scraping the given targets every second, its data in a temporary directory;
// stop() kills it and removes the directory. Queries go to its HTTP API.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as http from "http";
import { freePortOn } from "../../agent/support/etcd";
import { waitFor } from "../../agent/support/agents";

export interface LabPrometheus {
  /** http://HOST:PORT */
  url: string;
  /** PromQL instant query: the result vector's samples. */
  query(promql: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  stop(): Promise<void>;
}

function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
          } catch (e) {
            reject(e);
          }
        });
      })
      .on("error", reject)
      .on("timeout", function (this: http.ClientRequest) {
        this.destroy(new Error(`${url}: no answer`));
      });
  });
}

/** Starts Prometheus on `listenHost` (a lab address of this namespace) scraping `targets` (HOST:PORT). */
export async function startLabPrometheus(listenHost: string, targets: Record<string, string>): Promise<LabPrometheus> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-prometheus-"));
  const port = await freePortOn(listenHost);
  const config = [
    "global:",
    "  scrape_interval: 1s",
    "  scrape_timeout: 1s",
    "scrape_configs:",
    "  - job_name: bpfnet-agents",
    "    static_configs:",
    ...Object.entries(targets).map(([host, target]) => `      - targets: [${JSON.stringify(target)}]\n        labels: { host: ${JSON.stringify(host)} }`),
  ].join("\n");
  fs.writeFileSync(path.join(dir, "prometheus.yml"), config + "\n");
  const log = fs.openSync(path.join(dir, "prometheus.log"), "a");
  const child: ChildProcess = spawn(
    "/usr/bin/prometheus",
    [`--config.file=${path.join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(dir, "data")}`, `--web.listen-address=${listenHost}:${port}`],
    { stdio: ["ignore", log, log] },
  );
  fs.closeSync(log);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = `http://${listenHost}:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const query = async (promql: string) => {
    const r = (await getJson(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`)) as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (r.status !== "success") throw new Error(`PromQL ${promql}: ${r.error}`);
    return r.data!.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  };
  try {
    await waitFor("Prometheus ready", async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}: ${fs.readFileSync(path.join(dir, "prometheus.log"), "utf8").slice(-2000)}`);
      return (await getJson(`${url}/api/v1/status/buildinfo`).catch(() => undefined)) !== undefined;
    }, 60_000, 250);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, query, stop };
}
