// The agent's etcd client. It reuses the provider's connection options but hands retries to
// the agent: etcd3's per-host circuit breaker would refuse every call for 5 s after three
// failures, which only delays recovery of a single-endpoint cluster; our loops back off anyway.
import type { Etcd3, IOptions } from "etcd3";
import { clientOptions, EtcdConnection } from "../../provider/etcd/etcdClient";

/**
 * A fault-handling policy that runs the call as is (cockatiel's noop, without importing it).
 * It must be async: etcd3's markFailed() feeds it a function that throws and catches the
 * rejection; a synchronous throw would escape from a stream's error handler.
 */
const passThrough = {
  execute: async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> => fn({ signal: new AbortController().signal }),
};

export function agentClientOptions(conn: EtcdConnection, callTimeoutMs = 5000): IOptions {
  const base = clientOptions(conn, { callTimeoutMs });
  return {
    ...base,
    grpcOptions: {
      ...base.grpcOptions,
      // Find a dead connection (partition, etcd gone) within seconds, and redial quickly.
      "grpc.keepalive_time_ms": 5000,
      "grpc.keepalive_timeout_ms": 3000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 3000,
    },
    faultHandling: {
      host: () => passThrough as never,
      global: passThrough as never,
    },
  };
}

export function connectAgentClient(conn: EtcdConnection, callTimeoutMs?: number): Etcd3 {
  const { Etcd3: Client } = require("etcd3") as typeof import("etcd3");
  return new Client(agentClientOptions(conn, callTimeoutMs));
}
