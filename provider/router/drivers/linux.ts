// The `linux` driver: iproute2 on a Linux router. bpfnet's routes carry their own route protocol
// number (`proto 178` by default), so they are told apart from routes an admin (`proto boot`,
// `proto static`) or a routing daemon put there, and `ip route del … proto 178` can never remove
// someone else's route. Reads use `ip -j` (JSON) and the kernel's own proto filter, so protocol
// names and numbers never need mapping here. Table and protocol are validated names or numbers,
// so they are safe inside the `ip -batch` input.
import { CommandResult, ItemError, ObservedRoute, RouteSpec, RouterDriver, RouterDriverKind, RouterOptions, RouterShell } from "./driver";
import { commandFailure, shellWords } from "./shell";

/** Unused by the kernel, iproute2 and FRR (186–198), so only bpfnet writes it. */
export const DEFAULT_LINUX_PROTOCOL = 178;
export const DEFAULT_LINUX_TABLE = "main";
const VERSION = 1;

/** Protocols that mean "someone else": the kernel's own and those admins use by hand. */
const RESERVED_PROTOCOLS = new Map<string, number>([["unspec", 0], ["redirect", 1], ["kernel", 2], ["boot", 3], ["static", 4]]);
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

export const linuxDriverKind: RouterDriverKind = {
  optionProblems(router) {
    const problems: string[] = [];
    const { table, protocol } = router;
    if (table !== undefined && !(isInteger(table, 1, 4294967295) || (typeof table === "string" && NAME.test(table) && table !== "local"))) {
      problems.push(`router.table must be a routing table number (1-4294967295) or name from rt_tables, not "local", got ${JSON.stringify(table)}`);
    }
    if (protocol !== undefined) {
      const reserved = typeof protocol === "string" ? RESERVED_PROTOCOLS.has(protocol) : [...RESERVED_PROTOCOLS.values()].includes(protocol as number);
      if (reserved || !(isInteger(protocol, 0, 255) || (typeof protocol === "string" && NAME.test(protocol)))) {
        problems.push(`router.protocol must be a route protocol number (5-255) or name that marks bpfnet's routes only, got ${JSON.stringify(protocol)}`);
      }
    }
    return problems;
  },
  ownershipKey: (router) => `linux table=${router.table ?? DEFAULT_LINUX_TABLE} proto=${router.protocol ?? DEFAULT_LINUX_PROTOCOL}`,
  create: (router) => linuxDriver(router),
};

function isInteger(v: unknown, min: number, max: number): boolean {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
}

export function linuxDriver(router: RouterOptions): RouterDriver {
  const table = String(router.table ?? DEFAULT_LINUX_TABLE);
  const protocol = String(router.protocol ?? DEFAULT_LINUX_PROTOCOL);
  // Reads of a whole batch are one `ip -batch` process: two `route show` lines per prefix (all
  // routes, then those under our protocol), one JSON array printed per line, in order.
  const showLines = (prefix: string) => [`route show table ${table} ${prefix}`, `route show table ${table} proto ${protocol} ${prefix}`];
  const show = (prefixes: string[]) => `ip -j -batch - <<'BPFNET_EOF'\n${prefixes.flatMap(showLines).join("\n")}\nBPFNET_EOF`;
  /** The read as messages name it: the heredoc of a 50-prefix batch is too long to quote. */
  const showName = (prefixes: string[]) =>
    `ip -j -batch - (route show table ${table} [proto ${protocol}] ${prefixes.length === 1 ? prefixes[0] : `for ${prefixes.length} prefixes`})`;
  const replace = (r: RouteSpec) => shellWords(["ip", "route", "replace", r.prefix, "via", r.nextHop, "proto", protocol, "table", table]);
  const del = (r: ObservedRoute) => shellWords(deleteWords(r, table));

  return {
    kind: "linux",
    batchKey: `linux/v${VERSION} table=${table} proto=${protocol}`,

    async read(shell: RouterShell, prefixes: string[]) {
      const [r] = await shell.run([show(prefixes)]);
      if (r.code !== 0) throw new Error(commandFailure({ ...r, command: showName(prefixes) }));
      const arrays = r.output.split("\n").filter((l) => l.trim() !== "");
      if (arrays.length !== 2 * prefixes.length) throw new Error(`\`${showName(prefixes)}\` printed ${arrays.length} answers for ${2 * prefixes.length} questions: ${r.output.slice(0, 300)}`);
      return prefixes.map((prefix, i) => observedRoutes(prefix, parseRoutes(arrays[2 * i]), parseRoutes(arrays[2 * i + 1])));
    },

    async ensure(shell: RouterShell, routes: RouteSpec[]) {
      return (await shell.run(routes.map(replace))).map(failureOf);
    },

    async remove(shell: RouterShell, routes: ObservedRoute[]) {
      // Gone already ("No such process") is what remove wants.
      return (await shell.run(routes.map(del))).map((r) => (/No such process/.test(r.output) ? undefined : failureOf(r)));
    },

    describe(op, item) {
      if (op === "read") return showName([item as string]);
      return op === "ensure" ? replace(item as RouteSpec) : del(item as ObservedRoute);
    },
  };
}

function failureOf(r: CommandResult): ItemError {
  return r.code === 0 ? undefined : commandFailure(r);
}

/** One entry of `ip -j route show`. */
interface IpRoute {
  dst: string;
  type?: string;
  gateway?: string;
  nexthops?: { gateway?: string; dev?: string }[];
  dev?: string;
  protocol?: string;
  metric?: number;
}

export function parseRoutes(json: string): IpRoute[] {
  const text = json.trim();
  if (text === "") return [];
  const parsed = JSON.parse(text) as unknown;
  if (!Array.isArray(parsed)) throw new Error(`unexpected \`ip -j route\` output: ${text.slice(0, 200)}`);
  return parsed as IpRoute[];
}

/** `ip` prints host routes without "/32" and 0/0 as "default". */
export function normalDst(dst: string): string {
  if (dst === "default") return "0.0.0.0/0";
  return dst.includes("/") ? dst : `${dst}/32`;
}

const gatewayOf = (r: IpRoute) => r.gateway ?? r.nexthops?.find((n) => n.gateway)?.gateway ?? "";
const sameRoute = (a: IpRoute, b: IpRoute) =>
  normalDst(a.dst) === normalDst(b.dst) && gatewayOf(a) === gatewayOf(b) && (a.metric ?? 0) === (b.metric ?? 0) && (a.type ?? "unicast") === (b.type ?? "unicast");

/** Routes to `prefix`; owned are those the kernel also lists under bpfnet's protocol. */
export function observedRoutes(prefix: string, all: IpRoute[], ours: IpRoute[]): ObservedRoute[] {
  return all
    .filter((r) => normalDst(r.dst) === prefix)
    .map((r) => {
      const owned = ours.some((o) => sameRoute(o, r));
      const hops = r.nexthops?.length ? r.nexthops.map((n) => `nexthop via ${n.gateway ?? "?"}`).join(" ") : r.gateway ? `via ${r.gateway}` : "";
      const description = [r.type && r.type !== "unicast" ? r.type : "", prefix, hops, r.dev ? `dev ${r.dev}` : "", `proto ${r.protocol ?? "?"}`, `metric ${r.metric ?? 0}`]
        .filter(Boolean)
        .join(" ");
      const identity: Record<string, string | number> = { metric: r.metric ?? 0, type: r.type ?? "unicast" };
      if (r.protocol !== undefined) identity.protocol = r.protocol;
      if (r.gateway) identity.gateway = r.gateway;
      return { prefix, nextHop: gatewayOf(r), owned, description, identity };
    });
}

/** `ip route del` matching one route exactly: type, gateway, protocol and metric. */
function deleteWords(r: ObservedRoute, table: string): string[] {
  const id = r.identity;
  return [
    "ip", "route", "del",
    ...(id.type && id.type !== "unicast" ? [String(id.type)] : []),
    r.prefix,
    ...(id.gateway ? ["via", String(id.gateway)] : []),
    ...(id.protocol !== undefined ? ["proto", String(id.protocol)] : []),
    "metric", String(id.metric ?? 0),
    "table", table,
  ];
}
