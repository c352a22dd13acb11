// Pure planning of a lab: names and addresses for every namespace and link, from a few options.
// No I/O here, so the plan is unit-tested and `lab up`/`lab down` share one source of truth.

export type LabTopology = "vxlan" | "l3";

export interface LabOptions {
  /** Lab name: prefixes every namespace and root-namespace link (1–8 chars, [a-z0-9]). */
  name: string;
  /** Number of hosts (1–50). */
  hosts: number;
  topology: LabTopology;
  /** A private /16 that every lab address comes from, e.g. "10.213.0.0/16". */
  subnet: string;
  /** Directory for the lab's state (keys, host roots, logs, inventory). */
  stateDir: string;
}

export interface LabHostPlan {
  name: string; // "h1"
  netns: string; // "<lab>-h1"
  mgmtIp: string; // SSH and control-plane address (management bridge)
  underlayIp: string; // eth0: the data-plane address other hosts and the router see
  underlayPrefix: number;
  gateway?: string; // l3: the router's address on this host's subnet
  rootMgmtLink: string; // root-namespace end of the management veth
  rootUnderlayLink?: string; // vxlan: root-namespace end of the underlay veth (bridge port)
  routerLink?: string; // l3: router-side interface name for this host
  dir: string; // state root of this host: opt/, var/, bpffs/ live below
}

export interface LabRouterPlan {
  netns: string;
  mgmtIp: string;
  rootMgmtLink: string;
  dir: string;
}

export interface LabPlan {
  options: LabOptions;
  mgmtBridge: string;
  mgmtCidr: string; // e.g. 10.213.0.0/24
  rootMgmtIp: string; // the root namespace's address on the management bridge
  underlayBridge?: string; // vxlan only
  hosts: LabHostPlan[];
  router?: LabRouterPlan; // l3 only
}

export const DEFAULT_LAB: Omit<LabOptions, "stateDir"> = {
  name: "bpfnet",
  hosts: 3,
  topology: "vxlan",
  subnet: "10.213.0.0/16",
};
export const DEFAULT_STATE_ROOT = "/run/bpfnet/lab";

const PRIVATE_16 = /^10\.(\d{1,3})\.0\.0\/16$/;

export function validateLabOptions(o: LabOptions): void {
  if (!/^[a-z][a-z0-9]{0,7}$/.test(o.name)) {
    throw new Error(`lab name "${o.name}" must be 1-8 characters [a-z0-9], starting with a letter`);
  }
  if (!Number.isInteger(o.hosts) || o.hosts < 1 || o.hosts > 50) {
    throw new Error(`lab hosts ${o.hosts} must be an integer from 1 to 50`);
  }
  if (o.topology !== "vxlan" && o.topology !== "l3") {
    throw new Error(`lab topology "${o.topology}" must be "vxlan" or "l3"`);
  }
  const m = PRIVATE_16.exec(o.subnet);
  if (!m || Number(m[1]) > 255) {
    throw new Error(`lab subnet "${o.subnet}" must be a private 10.X.0.0/16`);
  }
}

export function planLab(o: LabOptions): LabPlan {
  validateLabOptions(o);
  const base = o.subnet.split(".").slice(0, 2).join("."); // "10.213"
  const mgmt = (i: number) => `${base}.0.${i}`;
  const hosts: LabHostPlan[] = [];
  for (let i = 1; i <= o.hosts; i++) {
    const name = `h${i}`;
    const common = {
      name,
      netns: `${o.name}-${name}`,
      mgmtIp: mgmt(i),
      rootMgmtLink: `${o.name}-m${i}`,
      dir: `${o.stateDir}/hosts/${name}`,
    };
    if (o.topology === "vxlan") {
      hosts.push({ ...common, underlayIp: `${base}.1.${i}`, underlayPrefix: 24, rootUnderlayLink: `${o.name}-u${i}` });
    } else {
      // Each host sits alone in its own /24 behind the router: 10.X.(10+i).1, router .254.
      hosts.push({
        ...common,
        underlayIp: `${base}.${10 + i}.1`,
        underlayPrefix: 24,
        gateway: `${base}.${10 + i}.254`,
        routerLink: `eth${i}`,
      });
    }
  }
  const plan: LabPlan = {
    options: o,
    mgmtBridge: `${o.name}-mgmt`,
    mgmtCidr: `${base}.0.0/24`,
    rootMgmtIp: mgmt(254),
    hosts,
  };
  if (o.topology === "vxlan") plan.underlayBridge = `${o.name}-ul`;
  else plan.router = { netns: `${o.name}-rt`, mgmtIp: mgmt(200), rootMgmtLink: `${o.name}-mr`, dir: `${o.stateDir}/router` };
  return plan;
}

/** Every network namespace a plan creates (used by `down` and by leak checks). */
export function planNamespaces(p: LabPlan): string[] {
  return [...p.hosts.map((h) => h.netns), ...(p.router ? [p.router.netns] : [])];
}

/** Every root-namespace link a plan creates (veth ends die with their namespaces; bridges do not). */
export function planRootLinks(p: LabPlan): string[] {
  return [
    p.mgmtBridge,
    ...(p.underlayBridge ? [p.underlayBridge] : []),
    ...p.hosts.flatMap((h) => [h.rootMgmtLink, ...(h.rootUnderlayLink ? [h.rootUnderlayLink] : [])]),
    ...(p.router ? [p.router.rootMgmtLink] : []),
  ];
}
