// The smallest NodeAgent spec a check or agentConfig accepts, for tests that vary one field of it.
import type { NodeAgentSpec } from "../../provider/agent/nodeAgentSpec";

export const MINIMAL_NODE_AGENT_SPEC: NodeAgentSpec = {
  hostName: "h1",
  networkPrefix: "/bpfnet/t",
  installDir: "/opt/bpfnet",
  stateDir: "/var/lib/bpfnet",
  bpffsDir: "/sys/fs/bpf/bpfnet",
  underlayInterface: "eth0",
  underlayIp: "10.0.1.1",
  nodePath: "/usr/bin/node",
};

/** A well-formed bundle digest (the bundle itself is never read by these tests). */
export const BUNDLE_SHA256 = "a".repeat(64);
