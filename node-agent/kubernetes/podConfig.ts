// The agent as a Kubernetes pod: what the DaemonSet's init container turns the network's
// ConfigMap and the node's etcd credentials into (the agent's config file, the CNI conflist).
// Pure: the file I/O is podSetup.ts.
import { EtcdConnection } from "../../provider/etcd/etcdClient";
import { AgentConfig, parseAgentConfig } from "../config";

/** The ConfigMap's `network.json`: the network as every node's agent sees it. */
export interface PodNetworkConfig {
  networkPrefix: string;
  /** The agent's state directory on each node (a hostPath). */
  stateDir: string;
  bpffsDir: string;
  /** Per node: its data-plane address and interface. */
  nodes: Record<string, { underlayIp: string; underlayInterface: string }>;
}

/** The agent's config for `node`, validated the same way as a host-deployed agent's. */
export function podAgentConfig(net: PodNetworkConfig, node: string, etcd: EtcdConnection): AgentConfig {
  const n = net.nodes[node];
  if (!n) throw new Error(`node ${JSON.stringify(node)} is not in the network's ConfigMap (nodes: ${Object.keys(net.nodes).join(", ") || "none"}); add it to KubernetesNetwork's nodes`);
  return parseAgentConfig(
    {
      hostName: node,
      networkPrefix: net.networkPrefix,
      etcd,
      stateDir: net.stateDir,
      bpffsDir: net.bpffsDir,
      underlayInterface: n.underlayInterface,
      underlayIp: n.underlayIp,
    },
    `ConfigMap network.json + Secret ${node}.json`,
  );
}

/** The CNI conflist the init container installs: the runtime calls bpfnet-cni with the agent's socket. */
export function cniConflist(networkName: string, agentSocket: string): string {
  return JSON.stringify({ cniVersion: "1.0.0", name: networkName, plugins: [{ type: "bpfnet-cni", agentSocket }] }, null, 2) + "\n";
}
