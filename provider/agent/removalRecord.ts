// Pure: what bpfnet leaves on a host it removes without reaching it (`unreachable: true`,
// docs/reliability.md scenario 7), as the record written to <prefix>/state/removed/v1/<host>,
// so an operator can clean the host later (or wipe it) from the list, not from memory.
import { SCHEMA_VERSION } from "../etcd/keys";
import { shellWords } from "../common/shell";
import { SupervisorKind, serviceFiles, stopCommand, uninstallCommand } from "../host/supervisor";
import { NodeAgentSpec, agentPaths, agentService } from "./nodeAgentSpec";

/** What stays on the host: the agent's service, files, pins and devices, and the commands NodeAgent's delete would have run there. */
export interface LeftOnHost {
  service: string;
  supervisor: SupervisorKind;
  /** Files and directories (a trailing `*` is a glob). */
  paths: string[];
  devices: string[];
  /** Run on the host as root, in order, to remove them (what NodeAgent's delete runs over SSH). */
  cleanup: string[];
}

export interface RemovalRecord {
  schema: number;
  host: string;
  removedAt: string;
  /** The local user and machine that ran `pulumi up`. */
  removedBy: string;
  reason: string;
  /** The host's etcd principals deleted before its keys (none with hostCredentials "shared"). */
  revoked: string[];
  leftOnHost: LeftOnHost;
}

export const UNREACHABLE_REASON = "marked unreachable: true, then removed from the Network; bpfnet did not contact the host (no SSH)";

/** The commands that remove an agent from its host, in order: NodeAgent's delete runs them over SSH; the record lists them for an operator. */
export function removalCommands(spec: NodeAgentSpec, bundleSha256: string, supervisor: SupervisorKind) {
  const p = agentPaths(spec, bundleSha256);
  const service = agentService(spec, bundleSha256);
  return {
    stop: stopCommand(service, supervisor),
    // The agent removes what it made: programs, devices, endpoints, pins, its state.
    teardown: shellWords([spec.nodePath, p.cli, "agent", "teardown", "--config", p.config]),
    uninstall: uninstallCommand(service, supervisor),
    remove: shellWords(["rm", "-rf", `${spec.installDir}/releases`, `${spec.installDir}/bundles`, p.current, p.dir]),
  };
}

export function leftOnHost(spec: NodeAgentSpec, bundleSha256: string, supervisor: SupervisorKind): LeftOnHost {
  const p = agentPaths(spec, bundleSha256);
  const service = agentService(spec, bundleSha256);
  const files = serviceFiles(service);
  return {
    service: service.name,
    supervisor,
    paths: [p.release, p.current, `${spec.installDir}/bundles`, p.dir, p.config, ...(supervisor === "systemd" ? [files.unit] : []), `${spec.bpffsDir}/bpfnet_*`],
    // node-agent/daemon/devices.ts and its endpoint veths (bn + 11 hex digits).
    devices: ["bpfnet_host", "bpfnet_net", "bpfnet_vxlan", "bn*"],
    cleanup: Object.values(removalCommands(spec, bundleSha256, supervisor)).filter((c) => c !== "true"),
  };
}

export function removalRecord(spec: NodeAgentSpec, left: LeftOnHost, revoked: string[], removedBy: string, now: Date): RemovalRecord {
  return { schema: SCHEMA_VERSION, host: spec.hostName, removedAt: now.toISOString(), removedBy, reason: UNREACHABLE_REASON, revoked, leftOnHost: left };
}
