// The lab: a small datacenter on one machine. Hosts are network namespaces with their own sshd,
// joined by an underlay bridge (vxlan) or through a router namespace running FRR (l3). A
// management bridge gives the root namespace SSH/etcd reach to every host, like an out-of-band
// network. Only lab addresses are used, and nothing is routed out of the lab.
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { Inventory, InventoryHost, InventorySsh } from "./inventory";
import { removeNodeMountTargets, stopKubeletNode } from "./kubelet";
import { ip, inNetns, killNetnsProcesses, linkExists, netnsExists, run, sleepMs, tryRun } from "./sh";
import { LabHostPlan, LabOptions, LabPlan, planLab, planNamespaces, planRootLinks } from "./topology";

const SSHD = "/usr/sbin/sshd";
const FRR_DIR = "/usr/lib/frr";
/** sshd insists on this privilege-separation directory; the lab creates it if missing and says so. */
const SSHD_PRIVSEP_DIR = "/run/sshd";

export interface LabState {
  options: LabOptions;
  createdPrivsepDir: boolean;
}

const statePath = (stateDir: string) => path.join(stateDir, "lab.json");
export const inventoryPath = (stateDir: string) => path.join(stateDir, "inventory.json");

/** Brings a lab up; an identical lab that is already up is returned as is. */
export async function labUp(options: LabOptions): Promise<Inventory> {
  const plan = planLab(options);
  const existing = readState(options.stateDir);
  if (existing) {
    if (JSON.stringify(existing.options) === JSON.stringify(options) && labHealthy(plan)) {
      return JSON.parse(fs.readFileSync(inventoryPath(options.stateDir), "utf8")) as Inventory;
    }
    labDown(existing.options.stateDir);
  }
  const conflicts = [...planNamespaces(plan).filter(netnsExists), ...planRootLinks(plan).filter(linkExists)];
  if (conflicts.length) {
    throw new Error(`lab ${options.name}: ${conflicts.join(", ")} already exist but no lab state is in ${options.stateDir}`);
  }
  // Traversable: FRR runs as the frr user below it. Keys live in 0700 subdirectories.
  fs.mkdirSync(options.stateDir, { recursive: true, mode: 0o755 });
  const state: LabState = { options, createdPrivsepDir: !fs.existsSync(SSHD_PRIVSEP_DIR) };
  fs.mkdirSync(SSHD_PRIVSEP_DIR, { recursive: true, mode: 0o755 });
  // Written first, so `down` can clean up whatever a failed `up` left behind.
  fs.writeFileSync(statePath(options.stateDir), JSON.stringify(state, null, 2));
  try {
    const clientKey = makeClientKey(options.stateDir);
    buildNetwork(plan);
    const hosts: InventoryHost[] = [];
    for (const h of plan.hosts) {
      makeHostDirs(h);
      const fingerprint = startSshd(h.netns, h.mgmtIp, path.join(h.dir, "ssh"), clientKey.authorizedKeys);
      hosts.push({
        name: h.name,
        ssh: sshEntry(h.mgmtIp, clientKey.privateKeyPath, fingerprint),
        underlayIp: h.underlayIp,
        underlayInterface: "eth0",
        installDir: path.join(h.dir, "opt"),
        stateDir: path.join(h.dir, "var"),
        bpffsDir: path.join(h.dir, "bpffs"),
        netns: h.netns,
      });
    }
    const inventory: Inventory = { lab: options.name, topology: options.topology, subnet: options.subnet, hosts };
    if (plan.router) {
      const r = plan.router;
      fs.mkdirSync(r.dir, { recursive: true });
      const fingerprint = startSshd(r.netns, r.mgmtIp, path.join(r.dir, "ssh"), clientKey.authorizedKeys);
      const frrDir = startFrr(r.netns, path.join(r.dir, "frr"), options.name);
      inventory.router = {
        name: "router",
        ssh: sshEntry(r.mgmtIp, clientKey.privateKeyPath, fingerprint),
        hostGateways: Object.fromEntries(plan.hosts.map((h) => [h.name, h.gateway!])),
        vtyshArgs: ["--vty_socket", frrDir, "--config_dir", frrDir],
        netns: r.netns,
      };
    }
    await Promise.all(
      [...hosts.map((h) => h.ssh.host), ...(inventory.router ? [inventory.router.ssh.host] : [])].map((a) => waitForPort(a, 22, 15_000)),
    );
    fs.writeFileSync(inventoryPath(options.stateDir), JSON.stringify(inventory, null, 2));
    return inventory;
  } catch (e) {
    labDown(options.stateDir);
    throw e;
  }
}

/** Removes every namespace, link, process, mount and file the lab made. Safe to repeat. */
export function labDown(stateDir: string): void {
  const state = readState(stateDir);
  if (!state) return;
  const plan = planLab(state.options);
  // Real Kubernetes nodes (lab k8s up --kubelet) first: their pods live in namespaces of their own.
  for (const h of plan.hosts) stopKubeletNode(state.options.name, h.name);
  removeNodeMountTargets(state.options.name, path.dirname(stateDir));
  for (const ns of planNamespaces(plan)) {
    if (!netnsExists(ns)) continue;
    killNetnsProcesses(ns);
    tryRun("ip", ["netns", "del", ns]);
  }
  for (const link of planRootLinks(plan)) if (linkExists(link)) tryRun("ip", ["link", "del", link]);
  for (const mount of mountsBelow(stateDir).reverse()) tryRun("umount", ["-l", mount]);
  fs.rmSync(stateDir, { recursive: true, force: true });
  removeEmptyParents(stateDir);
  if (state.createdPrivsepDir && otherLabsUp(stateDir) === 0) fs.rmSync(SSHD_PRIVSEP_DIR, { recursive: true, force: true });
}

export interface LabStatus {
  up: boolean;
  options?: LabOptions;
  hosts: { name: string; netns: string; exists: boolean; processes: number }[];
}

export function labStatus(stateDir: string): LabStatus {
  const state = readState(stateDir);
  if (!state) return { up: false, hosts: [] };
  const plan = planLab(state.options);
  const hosts = [...plan.hosts.map((h) => ({ name: h.name, netns: h.netns })), ...(plan.router ? [{ name: "router", netns: plan.router.netns }] : [])].map(
    (h) => ({ ...h, exists: netnsExists(h.netns), processes: netnsExists(h.netns) ? tryRun("ip", ["netns", "pids", h.netns]).stdout.split("\n").filter(Boolean).length : 0 }),
  );
  return { up: hosts.every((h) => h.exists && h.processes > 0), options: state.options, hosts };
}

function readState(stateDir: string): LabState | undefined {
  try {
    return JSON.parse(fs.readFileSync(statePath(stateDir), "utf8")) as LabState;
  } catch {
    return undefined;
  }
}

function labHealthy(plan: LabPlan): boolean {
  return planNamespaces(plan).every((ns) => netnsExists(ns) && tryRun("ip", ["netns", "pids", ns]).stdout.trim() !== "");
}

function otherLabsUp(stateDir: string): number {
  const root = path.dirname(stateDir);
  if (!fs.existsSync(root)) return 0;
  return fs.readdirSync(root).filter((d) => path.join(root, d) !== stateDir && fs.existsSync(statePath(path.join(root, d)))).length;
}

function buildNetwork(plan: LabPlan): void {
  ip("link", "add", plan.mgmtBridge, "type", "bridge");
  ip("addr", "add", `${plan.rootMgmtIp}/24`, "dev", plan.mgmtBridge);
  ip("link", "set", plan.mgmtBridge, "up");
  if (plan.underlayBridge) {
    ip("link", "add", plan.underlayBridge, "type", "bridge");
    ip("link", "set", plan.underlayBridge, "up");
  }
  if (plan.router) {
    const r = plan.router;
    addNamespace(r.netns, r.rootMgmtLink, r.mgmtIp, plan.mgmtBridge);
    inNetns(r.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1");
  }
  for (const h of plan.hosts) {
    addNamespace(h.netns, h.rootMgmtLink, h.mgmtIp, plan.mgmtBridge);
    if (h.rootUnderlayLink && plan.underlayBridge) {
      ip("link", "add", h.rootUnderlayLink, "type", "veth", "peer", "name", "eth0", "netns", h.netns);
      ip("link", "set", h.rootUnderlayLink, "master", plan.underlayBridge, "up");
    } else if (plan.router && h.routerLink && h.gateway) {
      ip("-n", h.netns, "link", "add", "eth0", "type", "veth", "peer", "name", h.routerLink, "netns", plan.router.netns);
      ip("-n", plan.router.netns, "addr", "add", `${h.gateway}/${h.underlayPrefix}`, "dev", h.routerLink);
      ip("-n", plan.router.netns, "link", "set", h.routerLink, "up");
    }
    ip("-n", h.netns, "addr", "add", `${h.underlayIp}/${h.underlayPrefix}`, "dev", "eth0");
    ip("-n", h.netns, "link", "set", "eth0", "up");
    // l3: every other host, and any pod network behind them, is reached through the router,
    // which has no route out of the lab.
    if (h.gateway) ip("-n", h.netns, "route", "add", "default", "via", h.gateway);
  }
}

function addNamespace(netns: string, rootLink: string, mgmtIp: string, bridge: string): void {
  ip("netns", "add", netns);
  ip("-n", netns, "link", "set", "lo", "up");
  ip("link", "add", rootLink, "type", "veth", "peer", "name", "mgmt0", "netns", netns);
  ip("link", "set", rootLink, "master", bridge, "up");
  ip("-n", netns, "addr", "add", `${mgmtIp}/24`, "dev", "mgmt0");
  ip("-n", netns, "link", "set", "mgmt0", "up");
}

function makeHostDirs(h: LabHostPlan): void {
  for (const d of ["opt", "var", "bpffs", "ssh"]) fs.mkdirSync(path.join(h.dir, d), { recursive: true });
  // Hosts share this machine's filesystem: each gets its own bpffs so pinned maps never collide.
  run("mount", ["-t", "bpf", "bpf", path.join(h.dir, "bpffs")]);
}

function makeClientKey(stateDir: string): { privateKeyPath: string; authorizedKeys: string } {
  const dir = path.join(stateDir, "client");
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = path.join(dir, "id_ed25519");
  run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "bpfnet-lab-client", "-f", key]);
  const authorizedKeys = path.join(dir, "authorized_keys");
  fs.copyFileSync(`${key}.pub`, authorizedKeys);
  return { privateKeyPath: key, authorizedKeys };
}

/** Starts an sshd inside a namespace with its own host key; returns the key's SHA256 fingerprint. */
function startSshd(netns: string, listen: string, dir: string, authorizedKeys: string): string {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hostKey = path.join(dir, "ssh_host_ed25519_key");
  run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `bpfnet-lab-${netns}`, "-f", hostKey]);
  const config = path.join(dir, "sshd_config");
  fs.writeFileSync(
    config,
    [
      `ListenAddress ${listen}`,
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "MaxStartups 100:30:200",
      "MaxSessions 100",
      "Subsystem sftp internal-sftp",
      "",
    ].join("\n"),
  );
  inNetns(netns, SSHD, "-f", config, "-E", path.join(dir, "sshd.log"));
  return fingerprintOf(`${hostKey}.pub`);
}

function fingerprintOf(pubKeyPath: string): string {
  // "256 SHA256:abc… comment (ED25519)"
  return run("ssh-keygen", ["-l", "-E", "sha256", "-f", pubKeyPath]).split(" ")[1];
}

/** zebra + staticd inside the router namespace, with lab-local config, sockets and logs. */
function startFrr(netns: string, dir: string, lab: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "frr.conf"), `hostname ${lab}-router\n!\n`);
  fs.writeFileSync(path.join(dir, "staticd.conf"), "");
  fs.writeFileSync(path.join(dir, "vtysh.conf"), "service integrated-vtysh-config\n");
  // The daemons drop to the frr user; it must own its directory.
  run("chown", ["-R", "frr:frr", dir]);
  for (const daemon of ["zebra", "staticd"]) {
    const conf = daemon === "zebra" ? "frr.conf" : "staticd.conf";
    inNetns(netns, path.join(FRR_DIR, daemon), "-d", "-u", "frr", "-g", "frr",
      "-f", path.join(dir, conf), "-i", path.join(dir, `${daemon}.pid`), "-z", path.join(dir, "zserv.api"),
      "--vty_socket", dir, "-P", "0", "--log", `file:${path.join(dir, `${daemon}.log`)}`);
  }
  // vtysh connects once both daemons have made their sockets.
  for (let i = 0; i < 100 && !["zebra.vty", "staticd.vty"].every((s) => fs.existsSync(path.join(dir, s))); i++) sleepMs(50);
  return dir;
}

function sshEntry(host: string, privateKeyPath: string, hostKeyFingerprint: string): InventorySsh {
  return { host, port: 22, user: "root", privateKeyPath, hostKeyFingerprint };
}

/** The lab root and its parent were created for labs; leave nothing empty behind. */
function removeEmptyParents(stateDir: string): void {
  for (let dir = path.dirname(stateDir), i = 0; i < 2; dir = path.dirname(dir), i++) {
    try {
      fs.rmdirSync(dir);
    } catch {
      return; // not empty, or not ours to remove
    }
  }
}

function mountsBelow(dir: string): string[] {
  return fs
    .readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1])
    .filter((m) => m && (m === dir || m.startsWith(dir + "/")));
}

function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect({ host, port });
      sock.once("connect", () => {
        sock.destroy();
        resolve();
      });
      sock.once("error", () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error(`sshd on ${host}:${port} did not come up in ${timeoutMs} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}
