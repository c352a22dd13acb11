// The connectivity test's policy denial check (pure): the temporary policy selects only this
// run's "b" endpoints and admits only its "a" endpoints, the checks around it, and the admin
// credentials read from --etcd-connection FILE (hostile paths and contents refused, naming them).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { checkPassed, TestHost } from "../../node-agent/connectivity/plan";
import { planPolicyChecks, readAdminConnection, ROLE_LABEL, RUN_LABEL, testLabels, testPolicy } from "../../node-agent/connectivity/policyCheck";
import { toStoredPolicy } from "../../provider/policy/policySpec";

const host = (n: number): TestHost => ({
  name: `h${n}`,
  underlayIp: `10.1.1.${n}`,
  a: { netns: `bpfnet-ct-7-${n}a`, ip: `10.244.${n}.2` },
  b: { netns: `bpfnet-ct-7-${n}b`, ip: `10.244.${n}.3` },
  mtu: 1450,
});

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-ctpol-"))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test("the temporary policy selects only this run's b endpoints and lets in only this run's a endpoints", () => {
  const run = "bpfnet-ct-42-0a1b2c3d";
  const p = testPolicy(run);
  expect(p).toEqual({
    policyName: run,
    endpointSelector: { [RUN_LABEL]: run, [ROLE_LABEL]: "b" },
    ingress: [{ fromEndpoints: [{ [RUN_LABEL]: run, [ROLE_LABEL]: "a" }] }],
    audit: false,
  });
  expect(p.egress).toBeUndefined(); // egress left alone: the b endpoints still send anywhere
  expect(testLabels(run, "a")).toEqual({ "bpfnet.io/connectivity-test": run, "bpfnet.io/connectivity-role": "a" });
  // Written by the one encoder the NetworkPolicy resource uses.
  expect(toStoredPolicy(p, "id-1")).toMatchObject({ policyId: "id-1", policyName: run, endpointSelector: p.endpointSelector });
  // Another run's policy selects none of this run's endpoints.
  expect(testPolicy("bpfnet-ct-42-ffffffff").endpointSelector[RUN_LABEL]).not.toBe(run);
});

test("checks: an allowed pair across hosts, and denied ones (another b, the host); one host: no b→b pair", () => {
  const two = planPolicyChecks([host(1), host(2), host(3)]);
  expect(two.map((c) => [c.name, c.on, c.expect, c.command])).toEqual([
    ["policy allows h1 a→h2 b", "h1", "pass", "ip netns exec bpfnet-ct-7-1a ping -n -q -c 2 -i 0.2 -W 2 10.244.2.3"],
    ["policy denies host→container b (h1)", "h1", "refused", "ping -n -q -c 2 -i 0.2 -W 2 10.244.1.3"],
    ["policy denies h1 b→h2 b", "h1", "refused", "ip netns exec bpfnet-ct-7-1b ping -n -q -c 2 -i 0.2 -W 2 10.244.2.3"],
  ]);
  expect(planPolicyChecks([host(1)]).map((c) => c.name)).toEqual(["policy allows h1 a→h1 b", "policy denies host→container b (h1)"]);
  const refused = two[1];
  expect(checkPassed(refused, 1, "")).toBe(true);
  expect(checkPassed(refused, 0, "")).toBe(false); // it got through: the policy did not hold
  expect(checkPassed(two[0], 0, "")).toBe(true);
});

test("admin credentials: a bare EtcdConnection or a stack's outputs holding etcdConnection", () => {
  const conn = { endpoints: ["https://10.0.0.5:2379"], caPem: "CA", certPem: "CERT", keyPem: "KEY" };
  const bare = path.join(dir, "conn.json");
  fs.writeFileSync(bare, JSON.stringify(conn));
  expect(readAdminConnection(bare)).toEqual(conn);
  const outputs = path.join(dir, "outputs.json");
  fs.writeFileSync(outputs, JSON.stringify({ etcdConnection: conn, prefix: "/bpfnet/x" }));
  expect(readAdminConnection(outputs)).toEqual(conn);
});

test.each(["x; rm -rf /", "$(reboot)", "`id`", "a\nb", "../../etc/nothing", "it's", "a b"])("a missing file %j is named, nothing else happens", (bad) => {
  const file = path.join(dir, bad);
  expect(() => readAdminConnection(file)).toThrow(`--etcd-connection ${JSON.stringify(file)}: ENOENT`);
});

test.each([
  ["not JSON", "{", "is not JSON"],
  ["no endpoints", "{}", "etcdConnection.endpoints must be a non-empty list"],
  ["hostile endpoint", JSON.stringify({ endpoints: ["https://x;rm -rf /:2379"] }), 'etcdConnection.endpoints[0] must look like "https://host:2379" or "host:2379", got "https://x;rm -rf /:2379"'],
  ["command substitution", JSON.stringify({ endpoints: ["$(id):2379"] }), 'got "$(id):2379"'],
  ["newline", JSON.stringify({ endpoints: ["a\nb:2379"] }), 'got "a\\nb:2379"'],
  ["cert without key", JSON.stringify({ endpoints: ["h:2379"], certPem: "C" }), "etcdConnection.certPem and etcdConnection.keyPem must be given together"],
  ["a list", "[]", "etcdConnection is required"],
])("contents: %s are refused naming the field", (_what, text, message) => {
  const file = path.join(dir, "conn.json");
  fs.writeFileSync(file, text);
  expect(() => readAdminConnection(file)).toThrow(`--etcd-connection ${JSON.stringify(file)}`);
  expect(() => readAdminConnection(file)).toThrow(message);
});
