// The `frr` driver: static routes in FRR's running config through vtysh. bpfnet's routes carry a
// route tag (`tag 178` by default). FRR keeps one tag per static path (prefix + distance), so a
// next hop added by hand without the tag clears it for the whole prefix: the prefix then counts
// as someone else's and bpfnet refuses to delete it. Each batch is one vtysh call; if vtysh stops
// at a failing line, the batch is replayed one route per call to tell which route failed (adding
// an existing static route, or removing a missing one, is harmless in FRR).
import { CommandResult, ItemError, ObservedRoute, RouteSpec, RouterDriver, RouterDriverKind, RouterOptions, RouterShell } from "./driver";
import { commandFailure, shellWords } from "./shell";

export const DEFAULT_FRR_TAG = 178;
const VERSION = 1;

export const frrDriverKind: RouterDriverKind = {
  optionProblems(router) {
    const problems: string[] = [];
    const { vtyshArgs, tag, writeStartupConfig } = router;
    if (vtyshArgs !== undefined && !(Array.isArray(vtyshArgs) && vtyshArgs.every((a) => typeof a === "string" && !/[\n\0]/.test(a)))) {
      problems.push(`router.vtyshArgs must be a list of vtysh arguments (strings), got ${JSON.stringify(vtyshArgs)}`);
    }
    if (tag !== undefined && !(typeof tag === "number" && Number.isInteger(tag) && tag >= 1 && tag <= 4294967295)) {
      problems.push(`router.tag must be a route tag 1-4294967295, got ${JSON.stringify(tag)}`);
    }
    if (writeStartupConfig !== undefined && typeof writeStartupConfig !== "boolean") {
      problems.push(`router.writeStartupConfig must be true or false, got ${JSON.stringify(writeStartupConfig)}`);
    }
    return problems;
  },
  ownershipKey: (router) => `frr tag=${router.tag ?? DEFAULT_FRR_TAG}`,
  create: (router) => frrDriver(router),
};

export function frrDriver(router: RouterOptions): RouterDriver {
  const tag = router.tag ?? DEFAULT_FRR_TAG;
  const args = router.vtyshArgs ?? [];
  const save = router.writeStartupConfig === true;
  const vtysh = (lines: string[]) => shellWords(["vtysh", ...args, ...lines.flatMap((l) => ["-c", l])]);
  const configure = (lines: string[]) => vtysh(["configure terminal", ...lines]);
  const showConfig = vtysh(["show running-config"]);
  const addLine = (r: RouteSpec) => `ip route ${r.prefix} ${r.nextHop} tag ${tag}`;
  const removeLine = (r: ObservedRoute) => `no ${r.identity.line}`;

  /** One vtysh call for the whole batch; on failure, one call per line to find the culprit. */
  async function apply(shell: RouterShell, lines: string[]): Promise<ItemError[]> {
    const [batch] = await shell.run([configure(lines)]);
    let errors: ItemError[] = lines.map(() => undefined);
    if (batch.code !== 0) errors = (await shell.run(lines.map((l) => configure([l])))).map(failureOf);
    if (save && errors.some((e) => e === undefined)) {
      const [written] = await shell.run([vtysh(["write memory"])]);
      if (written.code !== 0) errors = errors.map((e) => e ?? `the route is in the running config, but ${commandFailure(written)}`);
    }
    return errors;
  }

  return {
    kind: "frr",
    batchKey: `frr/v${VERSION} tag=${tag} vtysh=${JSON.stringify(args)} save=${save}`,

    async read(shell: RouterShell, prefixes: string[]) {
      const [config] = await shell.run([showConfig]);
      if (config.code !== 0) throw new Error(commandFailure(config));
      const statics = parseStaticRoutes(config.output, tag);
      return prefixes.map((p) => statics.filter((r) => r.prefix === p));
    },

    ensure: (shell, routes) => apply(shell, routes.map(addLine)),
    remove: (shell, routes) => apply(shell, routes.map(removeLine)),

    describe(op, item) {
      if (op === "read") return showConfig;
      return configure([op === "ensure" ? addLine(item as RouteSpec) : removeLine(item as ObservedRoute)]);
    },
  };
}

function failureOf(r: CommandResult): ItemError {
  return r.code === 0 ? undefined : commandFailure(r);
}

/**
 * Static IPv4 routes of the default VRF and table from `show running-config`: top-level lines
 * `ip route <prefix> <next hop> [interface] [tag N] [distance] …`. Routes under `vrf` blocks
 * (indented) and those bound to another kernel table are not in the space bpfnet manages.
 */
export function parseStaticRoutes(config: string, ourTag: number): ObservedRoute[] {
  const routes: ObservedRoute[] = [];
  for (const raw of config.split("\n")) {
    const line = raw.trimEnd();
    if (!line.startsWith("ip route ")) continue;
    const words = line.split(/\s+/);
    if (words.includes("table") || words.includes("vrf") || words.includes("nexthop-vrf")) continue;
    const [, , prefix, nextHop] = words;
    const t = words.indexOf("tag");
    const tag = t > 0 ? Number(words[t + 1]) : 0;
    routes.push({ prefix, nextHop, owned: tag === ourTag, description: line, identity: { line } });
  }
  return routes;
}
