// The router drivers RouterRoute knows, by the name `router.driver` gives. A new driver is a file
// implementing RouterDriverKind and one line here; the resource does not change.
import type { RouterDriver, RouterDriverKind, RouterOptions } from "./driver";
import { frrDriverKind } from "./frr";
import { linuxDriverKind } from "./linux";

export const ROUTER_DRIVERS: Record<string, RouterDriverKind> = {
  linux: linuxDriverKind,
  frr: frrDriverKind,
};

export const routerDriverNames = (): string[] => Object.keys(ROUTER_DRIVERS);

export function routerDriverKind(name: string): RouterDriverKind | undefined {
  return Object.prototype.hasOwnProperty.call(ROUTER_DRIVERS, name) ? ROUTER_DRIVERS[name] : undefined;
}

export function routerDriver(router: RouterOptions): RouterDriver {
  const kind = routerDriverKind(router.driver);
  if (!kind) throw new Error(`router.driver must be one of ${routerDriverNames().map((n) => `"${n}"`).join(", ")}, got ${JSON.stringify(router.driver)}`);
  return kind.create(router);
}
