// Pure policy computation: selectors → identities, enforcement semantics, the policy-map rows
// of the datapath contract, CIDR identities, the ipcache, and the gap-free apply order.
import { checkPolicySpec, PolicySpec, PolicySpecInputs } from "../../provider/policy/policySpec";
import { ACTION, computePolicy, DIRECTION, ENDPOINT_FLAGS as F, EndpointPolicy, PolicyEndpoint, PolicyEntry, PROTO } from "../../node-agent/policy/compute";
import { IpcacheRows } from "../../node-agent/policy/ipcache";
import { diffRows, isEmptyPlan, planEndpoint } from "../../node-agent/policy/plan";
import { CIDR_IDENTITY_BASE, labelsFromKey, labelsKey, selects } from "../../node-agent/policy/identity";

/** Policies go through the same validation as the resource's, so tests use real normal forms. */
function policy(p: PolicySpecInputs): PolicySpec {
  const { spec, failures } = checkPolicySpec(p);
  expect(failures).toEqual([]);
  return spec!;
}

// The three-tier app: identities as the allocator would hand them out.
const WEB = 256, API = 257, DB = 258, CANARY = 259, INTRUDER = 260;
const identities = new Map<number, Record<string, string>>([
  [WEB, { app: "web" }],
  [API, { app: "api" }],
  [DB, { app: "db" }],
  [CANARY, { app: "web", track: "canary" }],
  [INTRUDER, {}],
]);
const endpoints: PolicyEndpoint[] = [
  { endpointId: 1, labels: { app: "web" } },
  { endpointId: 2, labels: { app: "api" } },
  { endpointId: 3, labels: { app: "db" } },
  { endpointId: 4, labels: {} },
];

const apiFromWeb = policy({
  policyName: "api-from-web",
  endpointSelector: { app: "api" },
  ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP" }] }, { fromEntities: ["host"] }],
  egress: [{ toEndpoints: [{ app: "db" }], toPorts: [{ port: 5432, protocol: "TCP" }] }],
});

function run(policies: PolicySpec[], extra: Partial<Parameters<typeof computePolicy>[0]> = {}) {
  return computePolicy({ policies, endpoints, identities, ...extra });
}
const ep = (r: ReturnType<typeof run>, id: number) => r.endpoints.find((e) => e.endpointId === id)!;
/** Rows as compact tuples [identity, dport, proto, direction, action], sorted. */
const rows = (e: EndpointPolicy) =>
  e.entries.map((x) => [x.identity, x.dport, x.proto, x.direction, x.action]).sort((a, b) => String(a).localeCompare(String(b)));

test("no policy: every endpoint is open both ways with an empty map", () => {
  const r = run([]);
  expect(r.endpoints.map((e) => [e.endpointId, e.flags, e.entries.length])).toEqual([[1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 0]]);
});

test("the selected endpoint enforces both directions; unselected endpoints stay open; selectors resolve to every matching identity", () => {
  const r = run([apiFromWeb]);
  expect(ep(r, 2).flags).toBe(F.ENFORCE_INGRESS | F.ENFORCE_EGRESS);
  expect(ep(r, 2).policies).toEqual(["api-from-web"]);
  for (const id of [1, 3, 4]) expect(ep(r, id)).toMatchObject({ flags: 0, entries: [], policies: [] });
  expect(rows(ep(r, 2)).sort()).toEqual(
    [
      [WEB, 8080, PROTO.TCP, DIRECTION.ingress, ACTION.allow],
      [CANARY, 8080, PROTO.TCP, DIRECTION.ingress, ACTION.allow], // {app: web} also selects the canary
      [1, 0, 0, DIRECTION.ingress, ACTION.allow], // host
      [DB, 5432, PROTO.TCP, DIRECTION.egress, ACTION.allow],
    ].sort(),
  );
  expect(ep(r, 2).entries.every((e) => e.endpointId === 2 && e.proxyPort === 0)).toBe(true);
});

test("a policy with only ingress leaves egress open; an empty rule list denies everything in its direction", () => {
  const r = run([policy({ policyName: "db-closed", endpointSelector: { app: "db" }, ingress: [] })]);
  expect(ep(r, 3)).toMatchObject({ flags: F.ENFORCE_INGRESS, entries: [] });
});

test("rules of all policies selecting an endpoint add up; a duplicate row keeps the lowest rule id", () => {
  const a = policy({ policyName: "a", endpointSelector: { app: "db" }, ingress: [{ fromEndpoints: [{ app: "api" }], toPorts: [{ port: 5432, protocol: "TCP" }] }] });
  const b = policy({ policyName: "b", endpointSelector: {}, ingress: [{ fromEndpoints: [{ app: "api" }], toPorts: [{ port: 5432, protocol: "TCP" }] }, { fromEntities: ["host"] }] });
  const r = run([b, a]);
  expect(rows(ep(r, 3))).toEqual([
    [1, 0, 0, 1, ACTION.allow],
    [API, 5432, 6, 1, ACTION.allow],
  ]);
  const dup = ep(r, 3).entries.find((e) => e.identity === API)!;
  expect(r.rules.find((x) => x.ruleId === dup.ruleId)).toEqual({ ruleId: dup.ruleId, policy: "a", direction: "ingress", index: 0 });
  // b's {} selector selects every endpoint, the unlabelled one too.
  expect(ep(r, 4).flags).toBe(F.ENFORCE_INGRESS);
  expect(r.rules.map((x) => `${x.policy}.${x.direction}[${x.index}]=${x.ruleId}`)).toEqual(["a.ingress[0]=1", "b.ingress[0]=2", "b.ingress[1]=3"]);
});

test("ports: TCP/UDP with and without a port, ICMP, ANY with a port (TCP and UDP), no toPorts (everything)", () => {
  const r = run([
    policy({
      policyName: "ports",
      endpointSelector: { app: "web" },
      egress: [
        { toEndpoints: [{ app: "api" }], toPorts: [{ port: 8080, protocol: "TCP" }, { protocol: "UDP" }, { protocol: "ICMP" }, { port: 53 }] },
        { toEndpoints: [{ app: "db" }] },
      ],
    }),
  ]);
  expect(rows(ep(r, 1))).toEqual(
    [
      [API, 8080, PROTO.TCP, 2, 1],
      [API, 0, PROTO.UDP, 2, 1],
      [API, 0, PROTO.ICMP, 2, 1],
      [API, 53, PROTO.TCP, 2, 1],
      [API, 53, PROTO.UDP, 2, 1],
      [DB, 0, PROTO.ANY, 2, 1],
    ].sort((a, b) => String(a).localeCompare(String(b))),
  );
});

test("entities map to reserved identities; all is the wildcard; cluster is every member; a rule with only ports allows any peer", () => {
  const r = run([
    policy({
      policyName: "ent",
      endpointSelector: { app: "db" },
      ingress: [{ fromEntities: ["remote-node", "health"] }, { fromEntities: ["cluster"], toPorts: [{ port: 9, protocol: "UDP" }] }, { toPorts: [{ port: 22, protocol: "TCP" }] }],
      egress: [{ toEntities: ["all"] }],
    }),
  ]);
  const ids = (dir: number, port: number) => ep(r, 3).entries.filter((e) => e.direction === dir && e.dport === port).map((e) => e.identity).sort((a, b) => a - b);
  expect(ids(1, 0)).toEqual([4, 6]);
  expect(ids(1, 9)).toEqual([1, 4, 6, WEB, API, DB, CANARY, INTRUDER]);
  expect(ids(1, 22)).toEqual([0]);
  expect(rows(ep(r, 3)).filter((x) => x[3] === 2)).toEqual([[0, 0, 0, 2, 1]]);
});

test("a selector matching no identity allows nothing (never 'any'); a new identity joins the selection on recompute", () => {
  const p = policy({ policyName: "p", endpointSelector: { app: "db" }, ingress: [{ fromEndpoints: [{ app: "batch" }] }] });
  expect(ep(run([p]), 3)).toMatchObject({ flags: F.ENFORCE_INGRESS, entries: [] });
  const more = new Map(identities).set(300, { app: "batch", team: "x" });
  expect(rows(ep(run([p], { identities: more }), 3))).toEqual([[300, 0, 0, 1, 1]]);
});

test("a {} peer selector means every endpoint of the network, not the world", () => {
  const r = run([policy({ policyName: "p", endpointSelector: { app: "db" }, ingress: [{ fromEndpoints: [{}] }] })]);
  expect(ep(r, 3).entries.map((e) => e.identity).sort((a, b) => a - b)).toEqual([WEB, API, DB, CANARY, INTRUDER]);
});

test("CIDR rules get agent-local identities; a rule for C matches every CIDR identity inside C; world includes them all", () => {
  const r = run([
    policy({ policyName: "out", endpointSelector: { app: "web" }, egress: [{ toCidrs: ["10.0.0.0/8"] }, { toCidrs: ["10.1.0.0/16"], toPorts: [{ port: 443, protocol: "TCP" }] }] }),
    policy({ policyName: "world", endpointSelector: { app: "db" }, egress: [{ toEntities: ["world"] }] }),
  ]);
  expect([...r.cidrIdentities]).toEqual([
    ["10.0.0.0/8", CIDR_IDENTITY_BASE],
    ["10.1.0.0/16", CIDR_IDENTITY_BASE + 1],
  ]);
  expect(rows(ep(r, 1))).toEqual(
    [
      [CIDR_IDENTITY_BASE, 0, 0, 2, 1],
      [CIDR_IDENTITY_BASE + 1, 0, 0, 2, 1], // 10.1/16 lies inside 10/8
      [CIDR_IDENTITY_BASE + 1, 443, 6, 2, 1],
    ].sort((a, b) => String(a).localeCompare(String(b))),
  );
  expect(ep(r, 3).entries.map((e) => e.identity).sort((a, b) => a - b)).toEqual([2, CIDR_IDENTITY_BASE, CIDR_IDENTITY_BASE + 1]);
});

test("CIDR identities are stable: adding a CIDR never renumbers the ones in use; freed numbers are reused", () => {
  const pol = (cidrs: string[]) => [policy({ policyName: "c", endpointSelector: {}, egress: cidrs.map((c) => ({ toCidrs: [c] })) })];
  const first = run(pol(["10.5.0.0/16"])).cidrIdentities;
  const second = run(pol(["10.0.0.0/16", "10.5.0.0/16"]), { previousCidrIdentities: first }).cidrIdentities;
  expect(second.get("10.5.0.0/16")).toBe(first.get("10.5.0.0/16"));
  expect(second.get("10.0.0.0/16")).toBe(CIDR_IDENTITY_BASE + 1);
  const third = run(pol(["10.0.0.0/16", "10.9.0.0/16"]), { previousCidrIdentities: second }).cidrIdentities;
  expect(third.get("10.0.0.0/16")).toBe(CIDR_IDENTITY_BASE + 1);
  expect(third.get("10.9.0.0/16")).toBe(CIDR_IDENTITY_BASE);
});

test("audit: all selecting policies in audit → enforce + audit bits; one enforcing policy → enforced", () => {
  const audit = policy({ policyName: "aud", endpointSelector: { app: "db" }, ingress: [{ fromEndpoints: [{ app: "api" }] }], audit: true });
  expect(ep(run([audit]), 3).flags).toBe(F.ENFORCE_INGRESS | F.AUDIT_INGRESS);
  const strict = policy({ policyName: "strict", endpointSelector: { app: "db" }, ingress: [{ fromEntities: ["host"] }] });
  const r = run([audit, strict]);
  expect(ep(r, 3).flags).toBe(F.ENFORCE_INGRESS);
  // The audit policy's allows still count: switching it to enforce would allow them.
  expect(ep(r, 3).entries.map((e) => e.identity).sort((a, b) => a - b)).toEqual([1, API]);
  const auditEgress = policy({ policyName: "ae", endpointSelector: { app: "db" }, egress: [], audit: true });
  expect(ep(run([auditEgress, strict]), 3).flags).toBe(F.ENFORCE_INGRESS | F.ENFORCE_EGRESS | F.AUDIT_EGRESS);
});

test("HTTP rules: redirect to the proxy port when the agent runs one, else allow the port at L4 with a warning; a plain allow beats a redirect", () => {
  const l7 = policy({
    policyName: "l7",
    endpointSelector: { app: "api" },
    ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP", http: [{ method: "GET", path: "/v1/.*" }] }] }],
  });
  const withProxy = run([l7], { proxyPort: 15001 });
  expect(ep(withProxy, 2).entries.find((e) => e.identity === WEB)).toMatchObject({ action: ACTION.redirect, proxyPort: 15001, dport: 8080, proto: 6 });
  expect(withProxy.warnings).toEqual([]);
  const noProxy = run([l7]);
  expect(ep(noProxy, 2).entries.find((e) => e.identity === WEB)).toMatchObject({ action: ACTION.allow, proxyPort: 0 });
  expect(noProxy.warnings).toEqual(["l7.ingress[0]: HTTP rules on port 8080 are enforced at L4 only (no L7 proxy on this agent): the port is allowed whole"]);
  const plain = policy({ policyName: "plain", endpointSelector: { app: "api" }, ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP" }] }] });
  expect(ep(run([l7, plain], { proxyPort: 15001 }), 2).entries.find((e) => e.identity === WEB)).toMatchObject({ action: ACTION.allow, proxyPort: 0 });
});

test("the result does not depend on the order policies, endpoints or identities arrive in", () => {
  const ps = [apiFromWeb, policy({ policyName: "db", endpointSelector: { app: "db" }, ingress: [{ fromEndpoints: [{ app: "api" }] }] })];
  const a = run(ps);
  const b = computePolicy({ policies: [...ps].reverse(), endpoints: [...endpoints].reverse(), identities: new Map([...identities].reverse()) });
  const norm = (r: typeof a) => JSON.stringify(r.endpoints.map((e) => ({ ...e, entries: rows(e) })));
  expect(norm(b)).toBe(norm(a));
  expect(b.rules).toEqual(a.rules);
});

test("ipcache: endpoints (local and remote), host addresses (local 1, remote 6), CIDR prefixes; a member's /32 beats a CIDR rule row", () => {
  const ipcache = new IpcacheRows();
  ipcache.setLocalEndpoints([{ ip: "10.178.1.5", identity: WEB }]);
  ipcache.setRecord("/bpfnet/dev/state/endpoints/v1/h2/api", { ip: "10.178.2.5", identity: API }, 7);
  ipcache.setHostAddresses(["10.178.1.1", "192.168.0.1"], ["10.178.2.1", "192.168.0.2"]);
  ipcache.setCidrIdentities(new Map([["10.178.2.5/32", CIDR_IDENTITY_BASE], ["0.0.0.0/0", CIDR_IDENTITY_BASE + 1]]));
  const rows = ipcache.rows();
  expect(Object.fromEntries(rows)).toEqual({
    "10.178.1.5/32": WEB,
    "10.178.2.5/32": API,
    "10.178.1.1/32": 1,
    "192.168.0.1/32": 1,
    "10.178.2.1/32": 6,
    "192.168.0.2/32": 6,
    "0.0.0.0/0": CIDR_IDENTITY_BASE + 1,
  });
});

describe("apply order (no gap)", () => {
  const entry = (identity: number, dport = 0): PolicyEntry => ({ endpointId: 2, identity, dport, proto: 6, direction: 1, action: 1, proxyPort: 0, ruleId: 1 });

  test("turning enforcement on writes the allows first, then the flags", () => {
    const plan = planEndpoint(0, [], { endpointId: 2, flags: F.ENFORCE_INGRESS, entries: [entry(WEB)], policies: ["p"] });
    expect(plan).toEqual({ endpointId: 2, upserts: [entry(WEB)], flags: F.ENFORCE_INGRESS, deletes: [] });
  });

  test("turning it off clears the flags, then deletes the rows; changing a rule upserts before it deletes", () => {
    expect(planEndpoint(F.ENFORCE_INGRESS, [entry(WEB)], { endpointId: 2, flags: 0, entries: [], policies: [] })).toEqual({ endpointId: 2, upserts: [], flags: 0, deletes: [entry(WEB)] });
    const moved = planEndpoint(F.ENFORCE_INGRESS, [entry(WEB, 80)], { endpointId: 2, flags: F.ENFORCE_INGRESS, entries: [entry(WEB, 8080)], policies: ["p"] });
    expect(moved).toEqual({ endpointId: 2, upserts: [entry(WEB, 8080)], deletes: [entry(WEB, 80)] });
    expect(moved.flags).toBeUndefined();
  });

  test("an unchanged endpoint plans nothing; a changed value (rule id) is rewritten in place", () => {
    expect(isEmptyPlan(planEndpoint(1, [entry(WEB)], { endpointId: 2, flags: 1, entries: [entry(WEB)], policies: [] }))).toBe(true);
    const p = planEndpoint(1, [entry(WEB)], { endpointId: 2, flags: 1, entries: [{ ...entry(WEB), ruleId: 7 }], policies: [] });
    expect(p).toEqual({ endpointId: 2, upserts: [{ ...entry(WEB), ruleId: 7 }], deletes: [] });
  });

  test("diffRows: new, changed, removed", () => {
    expect(diffRows(new Map([["a", 1], ["b", 2]]), new Map([["b", 3], ["c", 4]]))).toEqual({ upserts: [["b", 3], ["c", 4]], deletes: ["a"] });
  });
});

describe("labels", () => {
  test("a label set's key is canonical (order-free), one key segment, and round-trips", () => {
    const a = labelsKey({ tier: "x", app: "web", "example.com/team": "" });
    expect(a).toBe(labelsKey({ "example.com/team": "", app: "web", tier: "x" }));
    expect(a).not.toContain("/");
    expect(labelsFromKey(a)).toEqual({ tier: "x", app: "web", "example.com/team": "" });
    expect(labelsKey({})).toBe("");
    expect(labelsFromKey("")).toEqual({});
  });

  test.each(["a/b=c", "a=b=c", "%zz=1", "b=1,a=2", "a=1,a=2", "../x=1"])("a forged label key %j is refused", (text) => {
    expect(labelsFromKey(text)).toBeUndefined();
  });

  test("selects: every pair must match; {} matches all; a missing key does not equal an empty value", () => {
    expect(selects({ app: "web" }, { app: "web", track: "canary" })).toBe(true);
    expect(selects({ app: "web", track: "stable" }, { app: "web", track: "canary" })).toBe(false);
    expect(selects({}, {})).toBe(true);
    expect(selects({ team: "" }, {})).toBe(false);
    expect(selects({ toString: "x" }, {})).toBe(false);
  });
});
