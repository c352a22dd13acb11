// RouterRoute's pure logic: what the inputs must look like, and what to do given the routes the
// router has for a prefix. No I/O: the resource reads the router, asks these functions, and runs
// what they decide, so every ownership rule is unit-tested without a router.
import { parseCidrLoose, formatCidr, parseIpv4 } from "../ipam/cidr";
import type { Failure } from "../network/networkSpec";
import type { ObservedRoute, RouteSpec, RouterOptions } from "./drivers/driver";
import { routerDriverKind, routerDriverNames } from "./drivers";
import { SshConnection, SshEndpoint, connectionOf, sshConnectionProblems } from "../host/sshConnection";
import { isUnknown } from "../common/unknown";

/** The router as RouterRoute stores it: driver options in plain view, the key kept apart. */
export type StoredRouter = RouterOptions & { connection: SshEndpoint };

export interface RouterRouteInputs {
  router: StoredRouter;
  /** The connection's private keys (router, then each jump host): always secret. */
  privateKeys: string[];
  /** The pod CIDR to route, e.g. "10.244.3.0/24". */
  prefix: string;
  /** The host's underlay address the router forwards the prefix to. */
  nextHop: string;
  /** SSH connect and handshake timeout (default: the connection's, else 10000). */
  connectTimeoutMs?: number;
}

export interface RouterRouteOutputs extends RouterRouteInputs {
  /** "root@10.0.0.1:22": the router as messages name it. */
  routerName: string;
}

export const MIN_CONNECT_TIMEOUT_MS = 100;
export const MAX_CONNECT_TIMEOUT_MS = 600_000;

const known = (v: unknown) => v !== undefined && !isUnknown(v);

/** Every problem with the inputs, naming the field and the value; preview's unknowns pass. */
export function routerRouteProblems(news: Partial<RouterRouteInputs>): Failure[] {
  const failures: Failure[] = [];
  const fail = (property: string, reason: string) => failures.push({ property, reason });

  if (!isUnknown(news.prefix)) {
    const c = typeof news.prefix === "string" ? parseCidrLoose(news.prefix) : undefined;
    if (!c) fail("prefix", `prefix must be an IPv4 CIDR like "10.244.1.0/24", got ${JSON.stringify(news.prefix)}`);
    else if (c.hostBitsSet) fail("prefix", `prefix ${JSON.stringify(news.prefix)} has host bits set; the network is "${formatCidr(c)}"`);
  }
  if (!isUnknown(news.nextHop) && (typeof news.nextHop !== "string" || parseIpv4(news.nextHop) === undefined)) {
    fail("nextHop", `nextHop must be an IPv4 address like "10.0.1.5", got ${JSON.stringify(news.nextHop)}`);
  }
  if (known(news.connectTimeoutMs)) {
    const t = news.connectTimeoutMs;
    if (!(typeof t === "number" && Number.isInteger(t) && t >= MIN_CONNECT_TIMEOUT_MS && t <= MAX_CONNECT_TIMEOUT_MS)) {
      fail("connectTimeoutMs", `connectTimeoutMs must be an integer from ${MIN_CONNECT_TIMEOUT_MS} to ${MAX_CONNECT_TIMEOUT_MS}, got ${JSON.stringify(t)}`);
    }
  }

  const router = news.router;
  if (isUnknown(router)) return failures;
  if (!router || typeof router !== "object" || Array.isArray(router)) {
    fail("router", `router is required: { connection, driver: ${routerDriverNames().map((n) => `"${n}"`).join(" | ")}, … }`);
    return failures;
  }
  if (!isUnknown(router.connection)) {
    for (const p of sshConnectionProblems(router.connection as Partial<SshConnection>, "router.connection")) fail("router", p);
  }
  if (!isUnknown(router.driver)) {
    const kind = typeof router.driver === "string" ? routerDriverKind(router.driver) : undefined;
    if (!kind) fail("router", `router.driver must be one of ${routerDriverNames().map((n) => `"${n}"`).join(", ")}, got ${JSON.stringify(router.driver)}`);
    // Driver options may be unknown in a preview; the driver judges them once known.
    else if (!Object.values(router).some(isUnknown)) for (const p of kind.optionProblems(router)) fail("router", p);
  }
  return failures;
}

/** What makes two RouterRoutes the same route: the router, its table/marker, the prefix. */
export function routeId(routerName: string, router: RouterOptions, prefix: string): string {
  return `${routerName} ${routerDriverKind(router.driver)!.ownershipKey(router)} ${prefix}`;
}

export interface DiffResult {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
}

const INPUT_KEYS: (keyof RouterRouteInputs)[] = ["router", "privateKeys", "prefix", "nextHop", "connectTimeoutMs"];
const sameJson = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * Another router, driver, ownership marker or prefix is another route: replace it. A new next
 * hop, keys, vtysh arguments or timeouts are edits in place (update moves the next hop).
 */
export function diffRouterRoute(olds: RouterRouteOutputs, news: RouterRouteInputs): DiffResult {
  const changes = INPUT_KEYS.some((k) => !sameJson(olds[k], news[k]));
  const replaces: string[] = [];
  if (!sameJson(olds.prefix, news.prefix)) replaces.push("prefix");
  const where = (r: StoredRouter | undefined) => {
    if (!r || isUnknown(r) || isUnknown(r.connection) || isUnknown(r.driver)) return undefined;
    const c = r.connection;
    const kind = routerDriverKind(r.driver);
    return JSON.stringify([c.host, c.port ?? 22, c.user, r.driver, kind && !Object.values(r).some(isUnknown) ? kind.ownershipKey(r) : "?"]);
  };
  const oldWhere = where(olds.router);
  const newWhere = where(news.router);
  if (oldWhere === undefined || oldWhere !== newWhere) replaces.push("router");
  // The new route would meet the old one on the router (same place, same prefix): delete first.
  const collide = replaces.length > 0 && sameJson(olds.prefix, news.prefix) && sameRouterHost(olds.router, news.router);
  return { changes: changes || replaces.length > 0, replaces, deleteBeforeReplace: collide };
}

function sameRouterHost(a: StoredRouter | undefined, b: StoredRouter | undefined): boolean {
  if (!a || !b || isUnknown(b) || isUnknown(b.connection)) return true; // unknown: assume the worst
  return a.connection.host === b.connection.host && (a.connection.port ?? 22) === (b.connection.port ?? 22);
}

/** What create/update do: install the desired route, then take away stale ones. */
export interface EnsurePlan {
  add?: RouteSpec;
  remove: ObservedRoute[];
}

const described = (routes: ObservedRoute[]) => routes.map((r) => r.description).join("; ");

/**
 * Decides create/update from the routes the router has for the prefix. Ours (marked) with other
 * next hops are stale (an interrupted update) and go. `claimedNextHop` is the next hop state
 * recorded for this resource (an update after refresh saw a hand change): that route, even
 * unmarked, is this resource's to restore. Any other unmarked route is someone else's: refuse.
 */
export function planEnsure(observed: ObservedRoute[], desired: RouteSpec, router: string, claimedNextHop?: string): EnsurePlan {
  const claimed = (r: ObservedRoute) => !r.owned && claimedNextHop !== undefined && r.nextHop === claimedNextHop;
  const foreign = observed.filter((r) => !r.owned && !claimed(r));
  if (foreign.length) {
    throw new Error(
      `router ${router}: ${desired.prefix} already has a route bpfnet does not own (${described(foreign)}); refusing to replace it. ` +
        `Remove it on the router, or route another prefix.`,
    );
  }
  const inPlace = observed.some((r) => r.owned && r.nextHop === desired.nextHop);
  const unmarkedDesired = observed.some((r) => claimed(r) && r.nextHop === desired.nextHop);
  return {
    ...(inPlace && !unmarkedDesired ? {} : { add: desired }),
    remove: observed.filter((r) => (r.owned || claimed(r)) && r.nextHop !== desired.nextHop),
  };
}

/** The routes delete removes: ours only. Someone else's route alone at the prefix is refused. */
export function planDelete(observed: ObservedRoute[], prefix: string, router: string): ObservedRoute[] {
  const ours = observed.filter((r) => r.owned);
  if (ours.length === 0 && observed.length > 0) {
    throw new Error(
      `router ${router}: the route to ${prefix} is not bpfnet's (${described(observed)}); refusing to delete someone else's route. ` +
        `Remove it on the router if it should go, then delete again.`,
    );
  }
  return ours;
}

/**
 * What refresh reports: our route's next hop (the one state has, if several), else the next hop
 * of whatever replaced it by hand (drift that update restores), else undefined (gone).
 */
export function observedNextHop(observed: ObservedRoute[], recorded: string): string | undefined {
  const ours = observed.filter((r) => r.owned);
  const pick = (rs: ObservedRoute[]) => (rs.find((r) => r.nextHop === recorded) ?? rs[0])?.nextHop;
  return ours.length ? pick(ours) : pick(observed);
}

/** The SSH connection for a stored router, with the resource's connect timeout applied throughout. */
export function routerConnection(router: StoredRouter, privateKeys: string[], connectTimeoutMs?: number): SshConnection {
  const withTimeout = (c: SshConnection): SshConnection => ({
    ...c,
    ...(connectTimeoutMs !== undefined ? { readyTimeoutMs: connectTimeoutMs } : {}),
    ...(c.jump ? { jump: withTimeout(c.jump) } : {}),
  });
  return withTimeout(connectionOf(router.connection, privateKeys));
}
