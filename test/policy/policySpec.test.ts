// The NetworkPolicy spec's validation: every bad field is named with its value, hostile input
// never becomes a spec, and good input comes back in its normal form.
import { checkPolicySpec, parseStoredPolicy, toStoredPolicy, PolicySpecInputs } from "../../provider/policy/policySpec";
import { UNKNOWN } from "../../provider/common/unknown";

const base: PolicySpecInputs = { policyName: "api-from-web", endpointSelector: { app: "api" }, ingress: [] };

function failuresOf(extra: Record<string, unknown>): { property: string; reason: string }[] {
  const r = checkPolicySpec({ ...base, ...extra } as PolicySpecInputs);
  if (r.failures.length) expect(r.spec).toBeUndefined();
  return r.failures;
}

test("the issue's example validates and comes back in normal form", () => {
  const { spec, failures } = checkPolicySpec({
    policyName: "api-from-web",
    endpointSelector: { app: "api" },
    ingress: [
      {
        fromEndpoints: [{ app: "web" }],
        toPorts: [{ port: 8080, protocol: "TCP", http: [{ method: "GET", path: "/v1/.*" }, { method: "POST", path: "/v1/orders" }] }],
      },
      { fromEntities: ["host"] },
    ],
    egress: [{ toEndpoints: [{ app: "db" }], toPorts: [{ port: 5432, protocol: "TCP" }] }, { toCidrs: ["10.213.0.0/24"] }],
  });
  expect(failures).toEqual([]);
  expect(spec).toEqual({
    policyName: "api-from-web",
    endpointSelector: { app: "api" },
    audit: false,
    ingress: [
      {
        fromEndpoints: [{ app: "web" }],
        toPorts: [{ port: 8080, protocol: "TCP", http: [{ method: "GET", path: "/v1/.*" }, { method: "POST", path: "/v1/orders" }] }],
      },
      { fromEntities: ["host"] },
    ],
    egress: [{ toEndpoints: [{ app: "db" }], toPorts: [{ port: 5432, protocol: "TCP" }] }, { toCidrs: ["10.213.0.0/24"] }],
  });
});

test("defaults: protocol ANY, audit false; an empty ingress list is kept (deny all), an absent egress stays absent", () => {
  const { spec } = checkPolicySpec({ ...base, ingress: [{ toPorts: [{ port: 53 }] }] });
  expect(spec!.ingress).toEqual([{ toPorts: [{ port: 53, protocol: "ANY" }] }]);
  expect(spec!.egress).toBeUndefined();
  expect(spec!.audit).toBe(false);
  expect(checkPolicySpec(base).spec!.ingress).toEqual([]);
});

test.each([
  ["port 0", { ingress: [{ toPorts: [{ port: 0, protocol: "TCP" }] }] }, "ingress[0].toPorts[0].port", "got 0"],
  ["port 70000", { egress: [{ toPorts: [{ port: 70000, protocol: "TCP" }] }] }, "egress[0].toPorts[0].port", "got 70000"],
  ["port 1.5", { ingress: [{ toPorts: [{ port: 1.5 }] }] }, "ingress[0].toPorts[0].port", "got 1.5"],
  ["port as text", { ingress: [{ toPorts: [{ port: "80" }] }] }, "ingress[0].toPorts[0].port", 'got "80"'],
  ["unknown protocol", { ingress: [{ toPorts: [{ port: 80, protocol: "SCTP" }] }] }, "ingress[0].toPorts[0].protocol", 'got "SCTP"'],
  ["lower-case protocol", { ingress: [{ toPorts: [{ port: 80, protocol: "tcp" }] }] }, "ingress[0].toPorts[0].protocol", 'got "tcp"'],
  ["a port with ICMP", { ingress: [{ toPorts: [{ port: 8, protocol: "ICMP" }] }] }, "ingress[0].toPorts[0].port", "ICMP has no ports"],
  ["HTTP rule on UDP", { ingress: [{ toPorts: [{ port: 80, protocol: "UDP", http: [{ path: "/" }] }] }] }, "ingress[0].toPorts[0].http", 'got protocol "UDP"'],
  ["HTTP rule on ANY", { ingress: [{ toPorts: [{ port: 80, http: [{ path: "/" }] }] }] }, "ingress[0].toPorts[0].http", 'got protocol "ANY"'],
  ["HTTP rule without a port", { ingress: [{ toPorts: [{ protocol: "TCP", http: [{ path: "/" }] }] }] }, "ingress[0].toPorts[0].http", "needs a port"],
  ["invalid path regex", { ingress: [{ toPorts: [{ port: 80, protocol: "TCP", http: [{ path: "/v1/(" }] }] }] }, "ingress[0].toPorts[0].http[0].path", '"/v1/("'],
  ["invalid method regex", { ingress: [{ toPorts: [{ port: 80, protocol: "TCP", http: [{ method: "*GET" }] }] }] }, "ingress[0].toPorts[0].http[0].method", '"*GET"'],
  ["bad selector key", { endpointSelector: { "app name": "api" } }, "endpointSelector", '"app name"'],
  ["bad selector value", { endpointSelector: { app: "a b" } }, "endpointSelector", '"a b"'],
  ["selector value not text", { endpointSelector: { app: 3 } }, "endpointSelector", "got 3"],
  ["selector not a map", { endpointSelector: ["app"] }, "endpointSelector", '["app"]'],
  ["bad peer selector", { ingress: [{ fromEndpoints: [{ "-app": "web" }] }] }, "ingress[0].fromEndpoints[0]", '"-app"'],
  ["unknown entity", { ingress: [{ fromEntities: ["internet"] }] }, "ingress[0].fromEntities[0]", '"internet"'],
  ["bad CIDR", { egress: [{ toCidrs: ["10.0.0.0/33"] }] }, "egress[0].toCidrs[0]", '"10.0.0.0/33"'],
  ["misaligned CIDR", { egress: [{ toCidrs: ["10.0.0.1/24"] }] }, "egress[0].toCidrs[0]", "not aligned"],
  ["from-field in egress", { egress: [{ fromEndpoints: [{ app: "x" }] }] }, "egress[0]", '"fromEndpoints"'],
  ["misspelt field", { ingress: [{ fromEndpoint: [{ app: "x" }] }] }, "ingress[0]", '"fromEndpoint"'],
  ["rules not a list", { ingress: { fromEntities: ["host"] } }, "ingress", "must be a list"],
  ["audit not a boolean", { audit: "yes" }, "audit", '"yes"'],
  ["bad policy name", { policyName: "../other" }, "policyName", '"../other"'],
])("%s is refused, naming the field and the value", (_what, extra, property, valueText) => {
  const failures = failuresOf(extra);
  expect(failures.length).toBeGreaterThan(0);
  const f = failures.find((x) => x.property === property);
  expect(f).toBeDefined();
  expect(f!.reason).toContain(property);
  expect(f!.reason).toContain(valueText);
});

test("a policy without ingress or egress and one without a selector are refused", () => {
  expect(checkPolicySpec({ policyName: "p", endpointSelector: {} }).failures.map((f) => f.property)).toEqual(["ingress"]);
  expect(checkPolicySpec({ policyName: "p", ingress: [] }).failures.map((f) => f.property)).toEqual(["endpointSelector"]);
});

const HOSTILE = ["a b", "a;rm -rf /", "$(reboot)", "`id`", "a\nb", "..", "../x", "a'b", 'a"b', "a/b/c", "", "a\u0000b", "x".repeat(300)];

test.each(HOSTILE)("hostile text %j never passes as a name, label key, label value, entity or CIDR", (bad) => {
  for (const extra of [
    { policyName: bad },
    { endpointSelector: { [bad]: "v" } },
    { endpointSelector: { app: bad === "" ? "x y" : bad } },
    { ingress: [{ fromEndpoints: [{ [bad]: "web" }] }] },
    { ingress: [{ fromEntities: [bad] }] },
    { egress: [{ toCidrs: [bad] }] },
  ]) {
    const failures = failuresOf(extra);
    expect(failures.length).toBeGreaterThan(0);
    // The message carries the value JSON-quoted: a newline or quote cannot break it.
    expect(failures.every((f) => !f.reason.includes("\n"))).toBe(true);
  }
});

test("regexes with control characters (a newline smuggled into a path) are refused; ordinary regex metacharacters pass", () => {
  const port = (path: string) => ({ ingress: [{ toPorts: [{ port: 80, protocol: "TCP", http: [{ path }] }] }] });
  expect(failuresOf(port("/v1\n/admin"))[0].property).toBe("ingress[0].toPorts[0].http[0].path");
  expect(failuresOf(port("/v1/$(id)`x`;'\"")).length).toBe(0);
  expect(failuresOf(port("")).length).toBe(1);
});

test("label keys with a DNS prefix pass; a value may be empty (k8s semantics)", () => {
  expect(failuresOf({ endpointSelector: { "example.com/tier": "", app: "api" } })).toEqual([]);
  expect(checkPolicySpec({ ...base, endpointSelector: { b: "2", a: "1" } }).spec!.endpointSelector).toEqual({ a: "1", b: "2" });
});

test("during preview, unknown values pass check but yield no spec", () => {
  const r = checkPolicySpec({ ...base, endpointSelector: { app: UNKNOWN }, ingress: [{ toPorts: [{ port: UNKNOWN as unknown as number }] }] });
  expect(r.failures).toEqual([]);
  expect(r.spec).toBeUndefined();
  expect(checkPolicySpec({ ...base, policyName: UNKNOWN }).failures).toEqual([]);
});

test("a stored record round-trips; a hand-edited invalid record or an unknown schema is reported, not trusted", () => {
  const spec = checkPolicySpec({ ...base, ingress: [{ fromEntities: ["world"], toPorts: [{ protocol: "ICMP" }] }], audit: true }).spec!;
  const stored = toStoredPolicy(spec, "id-1");
  expect(parseStoredPolicy(JSON.stringify(stored))).toEqual({ policy: stored, problems: [] });
  const broken = { ...stored, ingress: [{ toPorts: [{ port: 0 }] }] };
  const parsed = parseStoredPolicy(JSON.stringify(broken));
  expect(parsed.policy).toBeUndefined();
  expect(parsed.problems.join()).toContain("port");
  expect(parseStoredPolicy(JSON.stringify({ ...stored, schema: 2 })).problems).toEqual(["unknown schema 2"]);
  expect(parseStoredPolicy("{nope").problems).toEqual(["not JSON"]);
});
