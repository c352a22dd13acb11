// The `bpfnet` command line. Each command's module is loaded when that command runs: the agent's
// start (docs/agent.md "Start time") does not pay for lab, ui, connectivity or monitor code.

/** Every command's usage; loads every command's module, so only for a word that names none. */
async function usage(): Promise<string> {
  const [{ AGENT_USAGE }, { ENDPOINT_USAGE }, { LAB_USAGE }, { MONITOR_USAGE }, { SERVICE_USAGE }] = await Promise.all([
    import("./agent"),
    import("./endpoint"),
    import("./lab"),
    import("./monitor"),
    import("./service"),
  ]);
  return `usage: bpfnet <command>
commands:
  lab up|down|status   a datacenter of network namespaces on this machine
  health [--inventory F] [--wait S]  agents and the host × host health matrix (exit 1: a path is down)
  connectivity test [--inventory F]  temporary endpoints everywhere, every path checked, then removed
  ui --inventory F [--listen 127.0.0.1:8490]  a live status page: hosts, health, endpoints, flows, drops
  agent --config F     the node agent (foreground)
  endpoint add|del|list  containers of this host, through the agent's API
  status               the agent's state (devices, programs, maps, peers)
  monitor              the datapath's drops, policy verdicts and traces, live (--all: every host)
  service list         services: VIP, ports, backends with host and state, through the agent's API
${LAB_USAGE}
${AGENT_USAGE}
${ENDPOINT_USAGE}
${MONITOR_USAGE}
${SERVICE_USAGE}`;
}

/** "--a b --c" → {a: "b", c: ""}; positional words are returned in order. */
export function parseArgs(argv: string[]): { words: string[]; flags: Map<string, string> } {
  const words: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) {
      words.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) flags.set(a.slice(2), argv[++i]);
    else flags.set(a.slice(2), "");
  }
  return { words, flags };
}

export async function main(argv: string[]): Promise<number> {
  const { words, flags } = parseArgs(argv);
  switch (words[0]) {
    case "lab":
      return (await import("./lab")).labCommand(words[1], flags, words[2]);
    case "health":
      return (await import("./health")).healthCommand(flags);
    case "connectivity":
      return (await import("./connectivity")).connectivityCommand(words[1], flags);
    case "ui":
      return (await import("./ui")).uiCommand(flags);
    case "agent":
      return (await import("./agent")).agentCommand(words[1], flags);
    case "endpoint":
      return (await import("./endpoint")).endpointCommand(words[1], flags);
    case "status":
      return (await import("./endpoint")).statusCommand(flags);
    case "monitor":
      return (await import("./monitor")).monitorCommand(flags, words.slice(1));
    case "service":
      return (await import("./service")).serviceCommand(words[1], flags);
    default:
      console.error(await usage());
      return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      console.error(`bpfnet: ${err.message}`);
      process.exit(1);
    },
  );
}
