// The lab inventory: what `lab up` writes and stacks read. The same shape describes real hosts,
// so a stack moves from the lab to a datacenter by pointing at another inventory file.
import * as fs from "fs";
import type { NetworkHostArgs } from "../components/network";
import type { SshConnection } from "../provider/host/sshConnection";
import { nameProblem } from "../provider/etcd/keys";
import { addressProblem, hostPathProblem, interfaceNameProblem } from "../provider/common/validate";

/** How to reach a machine of the inventory over SSH. */
export interface InventorySsh {
  host: string;
  port: number;
  user: string;
  /** Path of the private key that every host in this inventory accepts. */
  privateKeyPath: string;
  /** SHA256 fingerprint of the host key ("SHA256:…"), verified on every connection. */
  hostKeyFingerprint: string;
}

/** A host of the inventory: SSH access, data-plane address and interface, per-host paths. */
export interface InventoryHost {
  name: string;
  ssh: InventorySsh;
  /** The data-plane address (eth0) other hosts and the router reach this host on. */
  underlayIp: string;
  underlayInterface: string;
  /** Per-host paths: hosts of a lab share one filesystem, so each gets its own roots. */
  installDir: string;
  stateDir: string;
  bpffsDir: string;
  netns?: string;
}

/** The router of an l3 inventory: SSH access, its address on each host's subnet, FRR's vtysh arguments. */
export interface InventoryRouter {
  name: string;
  ssh: InventorySsh;
  /** Router address on each host's subnet, by host name. */
  hostGateways: Record<string, string>;
  /** Arguments vtysh needs to reach this router's FRR (its daemons use lab-local sockets). */
  vtyshArgs: string[];
  netns?: string;
}

/** The machines a network deploys onto: what `bpfnet lab up` writes (`inventory.json`), or the same shape for real hosts. */
export interface Inventory {
  lab: string;
  topology: "vxlan" | "l3";
  subnet: string;
  hosts: InventoryHost[];
  router?: InventoryRouter;
}

/** Reads and checks an inventory file; the error says how to make one when it is missing. */
export function readInventory(path: string): Inventory {
  let raw: string;
  try {
    raw = fs.readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read inventory ${path}: ${(e as Error).message} (is the lab up? run: bpfnet lab up)`);
  }
  const inv = JSON.parse(raw) as Inventory;
  if (!Array.isArray(inv.hosts) || inv.hosts.length === 0) throw new Error(`inventory ${path} lists no hosts`);
  const problems = inventoryHostProblems(inv.hosts);
  if (problems.length > 0) throw new Error(`inventory ${path}: ${problems.join("; ")}`);
  return inv;
}

/**
 * The host fields the CLI puts into commands on hosts (`bpfnet health` builds agent paths and
 * namespace names from them): quoted there, and refused here when they are not what they claim.
 */
export function inventoryHostProblems(hosts: InventoryHost[]): string[] {
  return hosts.flatMap((h, i) => {
    const at = `hosts[${i}]${typeof h?.name === "string" ? ` (${JSON.stringify(h.name)})` : ""}`;
    return [
      nameProblem(`${at}.name`, h?.name),
      addressProblem(`${at}.underlayIp`, h?.underlayIp),
      interfaceNameProblem(`${at}.underlayInterface`, h?.underlayInterface),
      hostPathProblem(`${at}.installDir`, h?.installDir),
      hostPathProblem(`${at}.stateDir`, h?.stateDir),
      hostPathProblem(`${at}.bpffsDir`, h?.bpffsDir),
    ].filter((p): p is string => p !== undefined);
  });
}

/** An inventory SSH entry as a provider connection (the key file is read here, once). */
export function sshConnectionFor(ssh: InventorySsh): SshConnection {
  return {
    host: ssh.host,
    port: ssh.port,
    user: ssh.user,
    privateKey: fs.readFileSync(ssh.privateKeyPath, "utf8"),
    hostKeyFingerprint: ssh.hostKeyFingerprint,
  };
}

/** The inventory's hosts as Network component hosts. */
export function networkHostsOf(inv: Inventory): NetworkHostArgs[] {
  return inv.hosts.map((h) => ({
    name: h.name,
    connection: sshConnectionFor(h.ssh),
    underlayIp: h.underlayIp,
    underlayInterface: h.underlayInterface,
    installDir: h.installDir,
    stateDir: h.stateDir,
    bpffsDir: h.bpffsDir,
    controlAddress: h.ssh.host,
  }));
}
