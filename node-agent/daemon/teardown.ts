// Removes everything the agent made on a host (the host leaves the network, or NodeAgent is
// deleted): endpoint veths, bpfnet devices (their tc hooks go with them), pinned maps, its
// etcd keys and its state files. The agent must be stopped first.
import * as fs from "fs";
import * as path from "path";
import { AgentClient } from "../api/client";
import { AgentConfig } from "../config";
import { removeHostKeys } from "../../provider/etcd/hostKeys";
import { tryIp } from "./exec";
import { DATAPATH_PROGRAMS, TcHook } from "../../bpf";
import { removeDevices } from "./devices";
import { getLink } from "./links";
import { removeProxyRoute } from "./l7Delivery";
import { removeSocketLb } from "./socketLb";
import { connectAgentClient } from "./etcd";
import { Logger } from "./log";
import { ENDPOINTS_FILE, NETWORK_FILE, StateStore } from "./state";
import { deletionQueueDir } from "../cni/deletionQueue";

export async function teardown(cfg: AgentConfig, log: Logger): Promise<void> {
  const running = await new AgentClient(cfg.apiSocket, 2000).status().then(() => true, () => false);
  if (running) throw new Error(`an agent is still answering on ${cfg.apiSocket}: stop it before tearing down`);

  const store = new StateStore(cfg.stateDir);
  let ids: string[] = [];
  try {
    const state = store.loadEndpoints();
    ids = Object.keys(state.endpoints);
    for (const rec of Object.values(state.endpoints)) await tryIp("link", "del", rec.hostIfname);
  } catch (e) {
    log.warn("cannot read the endpoint state; endpoint devices may remain", { error: e as Error });
  }
  await removeDevices();
  await detachUnderlay(cfg.underlayInterface, log);
  await removeProxyRoute();
  removeSocketLb(cfg.bpffsDir, log);
  // Every map bpfnet pinned here (all named bpfnet_*), also those a newer datapath added
  // (peers, ipcache, policy, ct, verdicts, …): a removed host keeps no pin.
  for (const name of pinnedMaps(cfg.bpffsDir)) fs.rmSync(path.join(cfg.bpffsDir, name), { force: true });

  const client = connectAgentClient(cfg.etcd);
  try {
    await removeHostKeys(client, cfg.networkPrefix, cfg.hostName);
  } catch (e) {
    log.warn("cannot remove this host's keys from etcd; they expire (node, identity users) or must be removed by hand (endpoints)", { error: e as Error });
  } finally {
    client.close();
  }
  for (const f of [ENDPOINTS_FILE, NETWORK_FILE]) fs.rmSync(path.join(cfg.stateDir, f), { force: true });
  fs.rmSync(cfg.apiSocket, { force: true });
  // The host's endpoints are all gone: so is any CNI delete still queued for them.
  fs.rmSync(deletionQueueDir(cfg.apiSocket), { recursive: true, force: true });
  log.info("torn down", { host: cfg.hostName, endpoints: ids.length });
}

/** bpf_netdev off the underlay device (l3 mode), which stays: the host's own interface. */
async function detachUnderlay(name: string, log: Logger): Promise<void> {
  const link = await getLink(name).catch(() => undefined);
  if (!link) return;
  try {
    const hook = TcHook.open(link.ifindex, DATAPATH_PROGRAMS.netdev.direction);
    if (hook.query()) hook.detach();
  } catch (e) {
    log.warn("cannot detach bpf_netdev from the underlay device", { device: name, error: e as Error });
  }
}

/** The names of bpfnet's pins in `bpffsDir` (none when the directory is gone). */
export function pinnedMaps(bpffsDir: string): string[] {
  try {
    return fs.readdirSync(bpffsDir).filter((f) => f.startsWith("bpfnet_"));
  } catch {
    return [];
  }
}
