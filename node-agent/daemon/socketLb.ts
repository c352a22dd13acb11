// The socket-level service hooks for this host's own namespace (bpf/socketLb.ts): attached at
// start (kept when a previous agent's pinned links carry the same programs, replaced without a
// gap when they do not), left attached when the agent stops (their pins hold them), detached by
// teardown. Without them host-namespace clients reach VIPs untranslated; containers are not
// affected (their translation is bpf_lxc's), so a failure here is logged, not fatal.
import { attachSocketLb, detachSocketLb } from "../../bpf";
import { Logger } from "./log";

export async function ensureSocketLb(pinRoot: string, objectDir: string | undefined, log: Logger): Promise<boolean> {
  try {
    const links = await attachSocketLb(pinRoot, objectDir ? { objectDir } : {});
    log.info("socket-level service hooks attached", { hooks: links.map((l) => `${l.hook}:${l.linkId}`).join(",") });
    return true;
  } catch (e) {
    log.warn("socket-level service hooks not attached: host-namespace clients reach service VIPs untranslated", { error: e as Error });
    return false;
  }
}

/** Teardown: the hooks' links detached and unpinned (the maps' pins go after). */
export function removeSocketLb(pinRoot: string, log: Logger): void {
  try {
    const hooks = detachSocketLb(pinRoot);
    if (hooks.length) log.info("socket-level service hooks detached", { hooks: hooks.join(",") });
  } catch (e) {
    log.warn("cannot detach the socket-level service hooks; removing their pins releases them", { error: e as Error });
  }
}
