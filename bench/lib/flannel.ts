// flannel in a lab, for bench/peers.ts: flanneld per host on the lab's etcd, its own underlay
// port on the lab's underlay bridge, and containers wired the way flannel's CNI plugin does
// (it turns subnet.env into a bridge + host-local configuration and delegates to those plugins;
// its own module is not served by the Go proxy, so that translation is done here).
// The binaries come from scripts/build-bench-tools.sh. Everything lives in the lab's host
// namespaces and state directories: `lab down` removes it (flannel.1, cni0, routes, files).
import * as fs from "fs";
import * as path from "path";
import { run, tryRun } from "../../lab/sh";
import { shellQuote } from "../../provider/common/shell";
import { Children, sleep } from "./proc";

export const FLANNEL_VERSION = "v0.28.10";
export const CNI_PLUGINS_VERSION = "v1.10.0";
const CACHE = process.env.BPFNET_CACHE ?? "/var/cache/bpfnet";
export const FLANNELD = path.join(CACHE, `flannel-${FLANNEL_VERSION}`, "bin", "flanneld");
export const CNI_BIN = path.join(CACHE, `cni-plugins-${CNI_PLUGINS_VERSION}`, "bin");

/** Throws (naming the build step) unless flanneld and the CNI plugins are built. */
export function checkFlannelTools(): void {
  const missing = [FLANNELD, ...["bridge", "host-local", "loopback"].map((p) => path.join(CNI_BIN, p))].filter((f) => !fs.existsSync(f));
  if (missing.length) throw new Error(`missing ${missing.join(", ")}: build them with \`bash scripts/build-bench-tools.sh\``);
}

export type FlannelBackend = "vxlan" | "host-gw";

/** flannel's network config, written to `<prefix>/config` (its etcd backend reads it there). */
export function flannelNetworkConfig(network: string, backend: FlannelBackend, vxlanPort: number): string {
  const b = backend === "vxlan" ? { Type: "vxlan", Port: vxlanPort } : { Type: "host-gw" };
  return JSON.stringify({ Network: network, SubnetLen: 24, Backend: b });
}

/** What flanneld writes to its subnet file (FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ). */
export interface SubnetEnv {
  network: string;
  subnet: string;
  mtu: number;
  ipMasq: boolean;
}

/** Parses subnet.env; undefined until every field is there (flanneld writes it once its lease is held). */
export function parseSubnetEnv(text: string): SubnetEnv | undefined {
  const kv = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Z_]+)=(.*)$/.exec(line);
    if (m) kv.set(m[1], m[2].trim());
  }
  const [network, subnet, mtu] = [kv.get("FLANNEL_NETWORK"), kv.get("FLANNEL_SUBNET"), Number(kv.get("FLANNEL_MTU"))];
  if (!network || !subnet || !Number.isInteger(mtu) || mtu <= 0) return undefined;
  return { network, subnet, mtu, ipMasq: kv.get("FLANNEL_IPMASQ") === "true" };
}

/** "10.1.2.1/24" → "10.1.2.0/24": flannel's plugin parses FLANNEL_SUBNET as a network (net.ParseCIDR). */
export function networkOf(cidr: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  const bits = Number(m?.[5]);
  if (!m || bits > 32 || m.slice(1, 5).some((o) => Number(o) > 255)) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const addr = m.slice(1, 5).reduce((a, o) => a * 256 + Number(o), 0);
  const net = bits === 0 ? 0 : addr - (addr % 2 ** (32 - bits));
  return `${[24, 16, 8, 0].map((sh) => Math.floor(net / 2 ** sh) % 256).join(".")}/${bits}`;
}

/**
 * The bridge plugin configuration flannel's CNI plugin delegates to: bridge cni0 as the
 * gateway, the host's flannel subnet from host-local, a route to the whole flannel network,
 * flannel's MTU. flannel's plugin masquerades when flanneld does not; in the lab nothing leaves
 * the lab, so masquerading stays off on both sides (no NAT on either path raced).
 */
export function flannelCniConfig(env: SubnetEnv, dataDir: string): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name: "cbr0",
    type: "bridge",
    bridge: "cni0",
    isGateway: true,
    ipMasq: false,
    hairpinMode: true,
    mtu: env.mtu,
    ipam: { type: "host-local", ranges: [[{ subnet: networkOf(env.subnet) }]], routes: [{ dst: env.network }], dataDir },
  });
}

export interface FlannelHost {
  name: string;
  netns: string;
  stateDir: string;
}

const flannelDir = (h: FlannelHost) => path.join(h.stateDir, "flannel");
export const subnetFile = (h: FlannelHost): string => path.join(flannelDir(h), "subnet.env");

/** The underlay port flannel uses beside the host's eth0: a veth into the lab's underlay bridge. */
export const FLANNEL_UNDERLAY_DEVICE = "fl0";

/**
 * A second port on the lab's underlay bridge for `host` (address `ip`/24), so flannel's traffic
 * never crosses a device bpfnet attached a program to (bpfnet l3 puts bpf_netdev on eth0). The
 * root end dies with the host's namespace.
 */
export function addFlannelUnderlay(host: FlannelHost, bridge: string, rootIfname: string, ip: string, mtu: number): void {
  tryRun("ip", ["link", "del", rootIfname]);
  run("ip", ["link", "add", rootIfname, "mtu", String(mtu), "type", "veth", "peer", "name", FLANNEL_UNDERLAY_DEVICE, "mtu", String(mtu), "netns", host.netns]);
  run("ip", ["link", "set", rootIfname, "master", bridge, "up"]);
  run("ip", ["-n", host.netns, "addr", "add", `${ip}/24`, "dev", FLANNEL_UNDERLAY_DEVICE]);
  run("ip", ["-n", host.netns, "link", "set", FLANNEL_UNDERLAY_DEVICE, "up"]);
}

/**
 * Starts flanneld in `host`'s namespace on the etcd at `endpoint` over mutual TLS (flannel's
 * network config under `prefix`), and resolves with its subnet once subnet.env is written. The process is one
 * of `children` (killed by their killAll).
 */
export async function startFlanneld(children: Children, host: FlannelHost, o: { endpoint: string; prefix: string; iface: string; timeoutMs: number; tls: { caPem: string; certPem: string; keyPem: string } }): Promise<SubnetEnv> {
  fs.mkdirSync(flannelDir(host), { recursive: true });
  fs.rmSync(subnetFile(host), { force: true });
  const log = path.join(flannelDir(host), "flanneld.log");
  // flanneld reads its etcd credentials from files: the host's own copies (gone with the lab).
  const file = (name: string, pem: string, mode: number) => {
    const f = path.join(flannelDir(host), name);
    fs.writeFileSync(f, pem, { mode });
    return f;
  };
  const tls = { ca: file("etcd-ca.crt", o.tls.caPem, 0o644), cert: file("etcd-client.crt", o.tls.certPem, 0o644), key: file("etcd-client.key", o.tls.keyPem, 0o600) };
  const args = [
    `--etcd-endpoints=${o.endpoint}`,
    `--etcd-prefix=${o.prefix}`,
    `--etcd-cafile=${tls.ca}`,
    `--etcd-certfile=${tls.cert}`,
    `--etcd-keyfile=${tls.key}`,
    `--iface=${o.iface}`,
    `--subnet-file=${subnetFile(host)}`,
    "--ip-masq=false",
    // The lab's namespaces forward by default; flannel's FORWARD ACCEPT rules would change nothing.
    "--iptables-forward-rules=false",
  ];
  const child = children.spawn(host.netns, [FLANNELD, ...args]);
  const out = fs.createWriteStream(log, { flags: "a" });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const env = fs.existsSync(subnetFile(host)) ? parseSubnetEnv(fs.readFileSync(subnetFile(host), "utf8")) : undefined;
    if (env) return env;
    if (child.exitCode !== null || Date.now() > deadline) {
      const tail = fs.existsSync(log) ? fs.readFileSync(log, "utf8").slice(-1500) : "";
      throw new Error(`flanneld on ${host.name} ${child.exitCode !== null ? `exited ${child.exitCode}` : `wrote no subnet file in ${o.timeoutMs} ms`}: ${tail}`);
    }
    await sleep(5);
  }
}

/** Runs the bridge plugin (ADD or DEL) for `containerNetns` as a container runtime would; ADD gives the container's address. */
export async function flannelCni(children: Children, host: FlannelHost, command: "ADD" | "DEL", containerId: string, containerNetns: string, env: SubnetEnv): Promise<string> {
  const conf = flannelCniConfig(env, path.join(flannelDir(host), "ipam"));
  const confFile = path.join(flannelDir(host), `cni-${containerId}.json`);
  fs.writeFileSync(confFile, conf);
  // The plugin reads its configuration on stdin: sh redirects the file.
  const r = await children.run(host.netns, ["sh", "-c", `exec ${shellQuote(path.join(CNI_BIN, "bridge"))} < ${shellQuote(confFile)}`], 30_000, {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: `/run/netns/${containerNetns}`,
    CNI_IFNAME: "eth0",
    CNI_PATH: CNI_BIN,
  });
  if (command === "DEL") fs.rmSync(confFile, { force: true });
  if (r.code !== 0) throw new Error(`bridge plugin ${command} for ${containerNetns} on ${host.name} exited ${r.code}: ${(r.stdout + r.stderr).trim().slice(-600)}`);
  if (command === "DEL") return "";
  const ip = (JSON.parse(r.stdout) as { ips?: { address?: string }[] }).ips?.[0]?.address?.split("/")[0];
  if (!ip) throw new Error(`bridge plugin ADD for ${containerNetns} gave no address: ${r.stdout.slice(0, 300)}`);
  return ip;
}
