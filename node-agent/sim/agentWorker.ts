// The worker side of a simulated agent on its own thread (agentThread.ts starts it): its own
// event loop and its own etcd client, the real SimulatedAgent inside, every map write posted
// to the harness in batches (one message per turn of the loop, i.e. per reconcile pass), and
// the harness's requests answered. Writes are flushed before any reply, so a reply means the
// harness's mirrors hold everything written before it.
import * as v8 from "v8";
import * as vm from "vm";
import { isMainThread, parentPort, workerData } from "worker_threads";
import type { MessagePort } from "worker_threads";
import { connectAgentClient } from "../daemon/etcd";
import { silentLogger } from "../daemon/log";
import { reconcileObservers } from "../daemon/reconcile";
import { SimulatedAgent } from "./simulatedAgent";
import type { AgentWorkerData, WorkerHeap, WorkerMessage, WorkerPass, WorkerRequest, WorkerWrite } from "./agentThread";

/** How often the worker looks whether its agent has listed every prefix (until it has). */
const SYNC_POLL_MS = 10;

/** A full GC: the process's own when it runs with --expose-gc, else one exposed here. */
function collector(): () => void {
  const own = (globalThis as { gc?: () => void }).gc;
  if (own) return own;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

function usedHeapAfterGc(): number {
  collector()();
  return v8.getHeapStatistics().used_heap_size;
}

function run(port: MessagePort, data: AgentWorkerData): void {
  const post = (m: WorkerMessage) => port.postMessage(m);
  process.on("unhandledRejection", (e) => post({ kind: "unhandled", message: (e as Error)?.message ?? String(e) }));
  // The client's module is loaded before the baseline (connectAgentClient requires it lazily): in
  // the harness's thread it is loaded already, so its code is no agent's memory there either.
  require("etcd3");
  const baselineBytes = usedHeapAfterGc();
  const client = connectAgentClient(data.connection, data.callTimeoutMs);
  let writes: WorkerWrite[] = [];
  let passes: WorkerPass[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    post({ kind: "writes", writes, passes, stats: agent.stats, synced: agent.synced, startedAt });
    writes = [];
    passes = [];
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };
  reconcileObservers.add((target, seconds, ok) => {
    passes.push([target, seconds, ok]);
    schedule();
  });
  const agent: SimulatedAgent = new SimulatedAgent({
    ...data.agent,
    client,
    log: silentLogger,
    onWrite: (map, key, removed, at) => {
      // Called right after the write: the value is the one just written.
      writes.push(removed || map === "peers" ? [map, key, removed, at] : [map, key, removed, at, map === "tunnel" ? agent.tunnel.get(key) : agent.ipcache.get(key)]);
      schedule();
    },
  });
  const startedAt = Date.now();
  agent.start();
  const poll = setInterval(() => {
    if (!agent.synced) return;
    clearInterval(poll);
    flush();
  }, SYNC_POLL_MS);

  const answer = async (op: WorkerRequest["op"]): Promise<unknown> => {
    switch (op) {
      case "stats":
        return agent.stats;
      case "settled":
        return agent.settled();
      case "heap":
        return { baselineBytes, usedBytes: usedHeapAfterGc() } satisfies WorkerHeap;
      case "stop":
        clearInterval(poll);
        await agent.stop();
        client.close();
        return undefined;
    }
  };
  port.on("message", (r: WorkerRequest) => {
    answer(r.op).then(
      (value) => {
        flush();
        post({ kind: "reply", id: r.id, value });
      },
      (e) => {
        flush();
        post({ kind: "reply", id: r.id, error: (e as Error)?.message ?? String(e) });
      },
    );
  });
}

if (!isMainThread && parentPort) run(parentPort, workerData as AgentWorkerData);
