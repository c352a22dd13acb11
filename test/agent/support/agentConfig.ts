// The smallest raw agent config parseAgentConfig accepts: the tests of single config fields
// spread it and set the field they check.
export const MINIMAL_AGENT_CONFIG = {
  hostName: "h1",
  networkPrefix: "/bpfnet/t",
  etcd: { endpoints: ["http://10.0.0.254:2379"] },
  stateDir: "/var/lib/bpfnet/agent",
  bpffsDir: "/sys/fs/bpf/bpfnet",
  underlayInterface: "eth0",
  underlayIp: "10.0.1.1",
};
