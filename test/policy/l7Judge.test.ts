// The L7 proxy's verdict per request (node-agent/policy/l7.ts) from computed policy: the issue's
// example, whole-match regexes, rules adding up with L4 allows, and request targets that must
// never be judged (dot segments, encoded slashes, hostile text).
import { checkPolicySpec, PolicySpec, PolicySpecInputs } from "../../provider/policy/policySpec";
import { ACTION, computePolicy } from "../../node-agent/policy/compute";
import { judgeablePath, judgeHttp } from "../../node-agent/policy/l7";

function policy(p: PolicySpecInputs): PolicySpec {
  const { spec, failures } = checkPolicySpec(p);
  expect(failures).toEqual([]);
  return spec!;
}

const WEB = 256, API = 257, OTHER = 258;
const identities = new Map<number, Record<string, string>>([[WEB, { app: "web" }], [API, { app: "api" }], [OTHER, { app: "other" }]]);
const apiFromWeb = policy({
  policyName: "api-from-web",
  endpointSelector: { app: "api" },
  ingress: [
    { fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP", http: [{ method: "GET", path: "/v1/.*" }, { method: "POST", path: "/v1/orders" }] }] },
    { fromEntities: ["host"] },
  ],
});
const api = (policies: PolicySpec[]) =>
  computePolicy({ policies, endpoints: [{ endpointId: 2, labels: { app: "api" } }], identities, proxyPort: 15001 }).endpoints[0];

test("the issue's example: GET /v1/items and POST /v1/orders pass, DELETE and other paths do not", () => {
  const ep = api([apiFromWeb]);
  expect(ep.entries.find((e) => e.identity === WEB)).toMatchObject({ action: ACTION.redirect, proxyPort: 15001 });
  expect(judgeHttp(ep, "ingress", WEB, 8080, "GET", "/v1/items")).toMatchObject({ allowed: true, reason: "rule" });
  expect(judgeHttp(ep, "ingress", WEB, 8080, "POST", "/v1/orders")).toMatchObject({ allowed: true, reason: "rule" });
  expect(judgeHttp(ep, "ingress", WEB, 8080, "DELETE", "/v1/items")).toMatchObject({ allowed: false, reason: "no-rule" });
  expect(judgeHttp(ep, "ingress", WEB, 8080, "POST", "/v1/items")).toMatchObject({ allowed: false });
  expect(judgeHttp(ep, "ingress", WEB, 8080, "GET", "/v2/items")).toMatchObject({ allowed: false });
});

test("regexes match whole: no prefix, suffix or case slack", () => {
  const ep = api([apiFromWeb]);
  for (const [m, p] of [["GETX", "/v1/a"], ["get", "/v1/a"], ["XGET", "/v1/a"], ["POST", "/v1/orders/1"], ["POST", "/v1/ordersx"], ["GET", "/a/v1/b"]]) {
    expect(judgeHttp(ep, "ingress", WEB, 8080, m, p).allowed).toBe(false);
  }
  // The query is part of the target, as in Cilium: "/v1/orders" does not match "/v1/orders?x=1".
  expect(judgeHttp(ep, "ingress", WEB, 8080, "POST", "/v1/orders?x=1").allowed).toBe(false);
  expect(judgeHttp(ep, "ingress", WEB, 8080, "GET", "/v1/items?x=1").allowed).toBe(true);
});

test("another identity, another port or another direction has no HTTP rule", () => {
  const ep = api([apiFromWeb]);
  expect(judgeHttp(ep, "ingress", OTHER, 8080, "GET", "/v1/items").allowed).toBe(false);
  expect(judgeHttp(ep, "ingress", WEB, 9090, "GET", "/v1/items").allowed).toBe(false);
  expect(judgeHttp(ep, "egress", WEB, 8080, "GET", "/v1/items").allowed).toBe(false);
  // The host's rule allows every port at L4: a request from it passes whole.
  expect(judgeHttp(ep, "ingress", 1, 8080, "DELETE", "/anything")).toMatchObject({ allowed: true, reason: "l4-allow" });
});

test("rules add up: HTTP rules of two policies on one row, and a broader L4 allow opens the port", () => {
  const more = policy({ policyName: "more", endpointSelector: { app: "api" }, ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP", http: [{ method: "DELETE", path: "/v1/items/[0-9]+" }] }] }] });
  const ep = api([apiFromWeb, more]);
  expect(ep.http.get(`${WEB}/8080/6/1`)?.length).toBe(3);
  expect(judgeHttp(ep, "ingress", WEB, 8080, "DELETE", "/v1/items/7").allowed).toBe(true);
  expect(judgeHttp(ep, "ingress", WEB, 8080, "DELETE", "/v1/items/x").allowed).toBe(false);
  const whole = policy({ policyName: "whole", endpointSelector: { app: "api" }, ingress: [{ fromEndpoints: [{ app: "web" }] }] });
  expect(judgeHttp(api([apiFromWeb, whole]), "ingress", WEB, 8080, "DELETE", "/v1/items")).toMatchObject({ allowed: true, reason: "l4-allow" });
});

test("a method-only or path-only rule leaves the other open", () => {
  const p = policy({ policyName: "p", endpointSelector: { app: "api" }, ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 80, protocol: "TCP", http: [{ method: "HEAD" }, { path: "/health" }] }] }] });
  const ep = api([p]);
  expect(judgeHttp(ep, "ingress", WEB, 80, "HEAD", "/any/thing").allowed).toBe(true);
  expect(judgeHttp(ep, "ingress", WEB, 80, "PUT", "/health").allowed).toBe(true);
  expect(judgeHttp(ep, "ingress", WEB, 80, "PUT", "/other").allowed).toBe(false);
});

test("hostile targets are never judged allowed, whatever the rules", () => {
  const ep = api([apiFromWeb]);
  const hostile = [
    "/v1/../admin", "/v1/./items/..", "/v1/%2e%2e/admin", "/v1/%2E%2e/admin", "/v1/a%2fb", "/v1/a%5cb", "/v1\\..\\admin",
    "/v1/items;rm -rf /", "/v1/$(id)", "/v1/`id`", "/v1/items\nX-Injected: 1", "/v1/it ems", "/v1/'\"", "http://evil/v1/items", "*", "", "v1/items",
  ];
  for (const target of hostile) {
    const allowed = judgeHttp(ep, "ingress", WEB, 8080, "GET", target).allowed;
    // Those with no dot segment, encoding trick or control/space character are plain paths the regex judges.
    if (judgeablePath(target)) expect([target, allowed]).toEqual([target, /^\/v1\/[\x21-\x7e]*$/.test(target)]);
    else expect([target, allowed]).toEqual([target, false]);
  }
  expect(judgeablePath("/v1/../admin")).toBe(false);
  expect(judgeablePath("/v1/items\n")).toBe(false);
  expect(judgeablePath("/v1/items;rm")).toBe(true); // a plain path character; the regex decides
  expect(judgeHttp(ep, "ingress", WEB, 8080, "GET", "/v1/$(id)").allowed).toBe(true); // "/v1/.*" allows it: it is only text
});
