// The DaemonSet's init container: writes this node's agent config from the mounted ConfigMap and
// Secret, and installs the CNI plugin onto the host (the agent's release and a Node.js runtime
// under the host's install directory, a bpfnet-cni launcher in the CNI bin directory, the
// conflist in the CNI config directory). Run as
//   node dist/node-agent/kubernetes/podSetup.js --node NAME --config DIR --etcd DIR --release DIR
//     --host-install DIR --host-cni-bin DIR --host-cni-conf DIR
// Every path comes from the DaemonSet the component wrote; the node name from the downward API.
import * as fs from "fs";
import * as path from "path";
import { parseArgs } from "../cli/main";
import { cniConflist, podAgentConfig, PodNetworkConfig } from "./podConfig";
import { shellQuote } from "../../provider/common/shell";

export const CONFIG_FILE = "network.json";
export const CONFLIST_FILE = "10-bpfnet.conflist";

export function podSetup(flags: Map<string, string>): string {
  const need = (f: string) => {
    const v = flags.get(f);
    if (!v) throw new Error(`--${f} is required`);
    return v;
  };
  const node = need("node");
  const net = JSON.parse(fs.readFileSync(path.join(need("config"), CONFIG_FILE), "utf8")) as PodNetworkConfig & { networkName: string };
  const etcd = JSON.parse(fs.readFileSync(path.join(need("etcd"), `${node}.json`), "utf8"));
  const cfg = podAgentConfig(net, node, etcd);
  fs.mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
  const configFile = path.join(cfg.stateDir, "agent.json");
  fs.writeFileSync(configFile, JSON.stringify(cfg, null, 2) + "\n", { mode: 0o600 });

  // The release this image carries, and the Node.js it runs on, copied onto the host: the
  // container runtime runs the CNI plugin on the host, outside any container.
  const install = need("host-install");
  const release = need("release");
  const hostRelease = path.join(install, "release");
  fs.rmSync(`${hostRelease}.new`, { recursive: true, force: true });
  fs.cpSync(release, `${hostRelease}.new`, { recursive: true });
  fs.rmSync(hostRelease, { recursive: true, force: true });
  fs.renameSync(`${hostRelease}.new`, hostRelease);
  fs.copyFileSync(process.execPath, path.join(install, "node.new"));
  fs.chmodSync(path.join(install, "node.new"), 0o755);
  fs.renameSync(path.join(install, "node.new"), path.join(install, "node"));
  const launcher = path.join(need("host-cni-bin"), "bpfnet-cni");
  fs.writeFileSync(`${launcher}.new`, `#!/bin/sh\nexec ${shellQuote(path.join(install, "node"))} ${shellQuote(path.join(hostRelease, "bin", "bpfnet-cni"))} "$@"\n`, { mode: 0o755 });
  fs.renameSync(`${launcher}.new`, launcher);
  const conflist = path.join(need("host-cni-conf"), CONFLIST_FILE);
  fs.writeFileSync(conflist, cniConflist(net.networkName, cfg.apiSocket), { mode: 0o644 });
  return `bpfnet: ${node}: ${configFile}, ${launcher}, ${conflist}`;
}

if (require.main === module) {
  try {
    console.log(podSetup(parseArgs(process.argv.slice(2)).flags));
  } catch (e) {
    console.error(`bpfnet pod setup: ${(e as Error).message}`);
    process.exit(1);
  }
}
