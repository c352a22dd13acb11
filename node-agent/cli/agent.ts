// `bpfnet agent --config FILE`: the node agent in the foreground until SIGTERM.
// `bpfnet agent teardown --config FILE`: removes what the agent made on this host.
import { loadAgentConfig } from "../config";
import { runAgent } from "../daemon/main";
import { createLogger } from "../daemon/log";
import { teardown } from "../daemon/teardown";

export const AGENT_USAGE = `usage: bpfnet agent --config FILE            run the node agent (foreground, until SIGTERM)
       bpfnet agent teardown --config FILE   remove its devices, endpoints, programs, pins and state`;

export async function agentCommand(sub: string | undefined, flags: Map<string, string>): Promise<number> {
  const file = flags.get("config");
  if (!file) {
    console.error(AGENT_USAGE);
    return 2;
  }
  const cfg = loadAgentConfig(file);
  const log = createLogger(cfg.logLevel);
  if (sub === undefined || sub === "run") return runAgent(cfg, log);
  if (sub === "teardown") {
    await teardown(cfg, log);
    return 0;
  }
  console.error(AGENT_USAGE);
  return 2;
}
