// The contract between RouterRoute and the ways of programming a router. A driver turns route
// operations into router commands and router output back into routes; it never opens a
// connection itself. Every operation takes a batch, so many resources on one router share one
// round trip. Adding a driver (e.g. a BGP peer) means one file here and one line in index.ts.

/** A route bpfnet wants on the router. */
export interface RouteSpec {
  prefix: string;
  nextHop: string;
}

/** A route to a prefix as the router has it, whoever put it there. */
export interface ObservedRoute extends RouteSpec {
  /** Carries bpfnet's ownership marker (Linux proto, FRR tag). */
  owned: boolean;
  /** How the router shows it, for messages ("via 10.0.1.1 proto boot metric 0"). */
  description: string;
  /** What the driver needs to remove exactly this route and nothing else. */
  identity: Record<string, string | number>;
}

export interface CommandResult {
  command: string;
  /** Exit code; -1 when the connection dropped before the command reported one. */
  code: number;
  output: string;
}

/** Runs commands on the router, in order, in one round trip; each reports its own result. */
export interface RouterShell {
  run(commands: string[]): Promise<CommandResult[]>;
}

/** Per item: undefined when it worked, else a message naming the command and the router's answer. */
export type ItemError = string | undefined;

export interface RouterDriver {
  /** "linux", "frr", … */
  readonly kind: string;
  /** Operations of drivers with the same key may share a batch (same kind, version, options). */
  readonly batchKey: string;
  /** Routes to each prefix (exact match) in the table this driver manages. Throws if the router cannot tell. */
  read(shell: RouterShell, prefixes: string[]): Promise<ObservedRoute[][]>;
  /** Installs each route with bpfnet's marker, replacing a route of ours to the same prefix where the router does. */
  ensure(shell: RouterShell, routes: RouteSpec[]): Promise<ItemError[]>;
  /** Removes exactly these routes; one already gone is not an error. */
  remove(shell: RouterShell, routes: ObservedRoute[]): Promise<ItemError[]>;
  /** The command an operation on this item runs, for error messages. */
  describe(op: RouterOp, item: string | RouteSpec | ObservedRoute): string;
}

export type RouterOp = "read" | "ensure" | "remove";

/** The options of a router as RouterRoute stores them (the connection travels separately). */
export interface RouterOptions {
  driver: string;
  /** frr: arguments vtysh needs to reach this router's daemons (e.g. --vty_socket DIR). */
  vtyshArgs?: string[];
  /** frr: also `write memory`, so the routes survive an FRR restart. */
  writeStartupConfig?: boolean;
  /** frr: route tag marking bpfnet's static routes. */
  tag?: number;
  /** linux: routing table, number or name from rt_tables (default main). */
  table?: number | string;
  /** linux: route protocol marking bpfnet's routes, number or name from rt_protos. */
  protocol?: number | string;
}

/** A driver kind: validates its own options and builds the driver. Both pure. */
export interface RouterDriverKind {
  /** Problems with the options this kind reads, naming `router.<field>` and the value. */
  optionProblems(router: RouterOptions): string[];
  /** What marks a route as ours: changing it means another route, not an edit of this one. */
  ownershipKey(router: RouterOptions): string;
  create(router: RouterOptions): RouterDriver;
}
