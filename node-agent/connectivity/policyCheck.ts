// `bpfnet connectivity test`'s policy denial check, the pure part. With admin etcd credentials
// given explicitly (`--etcd-connection FILE`: the Network's `etcdConnection` output, never
// guessed), the test writes a temporary NetworkPolicy that selects only this run's "b"
// endpoints (a per-run label value, so it can never select a user's workload) and lets in only
// this run's "a" endpoints; then a denied pair must be refused and an allowed pair still pass.
import * as fs from "fs";
import { connectionProblems, EtcdConnection } from "../../provider/etcd/etcdClient";
import { checkPolicySpec, PolicySpec } from "../../provider/policy/policySpec";
import { Check, pingCommand, TestHost } from "./plan";

/** The label every temporary endpoint carries, valued with the run's own id. */
export const RUN_LABEL = "bpfnet.io/connectivity-test";
/** Which of a host's two temporary endpoints: "a" or "b". */
export const ROLE_LABEL = "bpfnet.io/connectivity-role";

/** The temporary endpoints' labels. */
export function testLabels(runId: string, role: "a" | "b"): Record<string, string> {
  return { [RUN_LABEL]: runId, [ROLE_LABEL]: role };
}

/** The temporary policy: this run's b endpoints accept only this run's a endpoints. */
export function testPolicy(runId: string): PolicySpec {
  const checked = checkPolicySpec({
    policyName: runId,
    endpointSelector: testLabels(runId, "b"),
    ingress: [{ fromEndpoints: [testLabels(runId, "a")] }],
  });
  if (!checked.spec) throw new Error(`the connectivity test's policy does not validate: ${checked.failures.map((f) => f.reason).join("; ")}`);
  return checked.spec;
}

/**
 * The checks with the policy in place: an allowed pair (a → another host's b, or the same
 * host's without a second host) must pass; b → another host's b and the host → its b must be
 * refused (the policy does not let the host entity in).
 */
export function planPolicyChecks(hosts: readonly TestHost[]): Check[] {
  const [first] = hosts;
  const other = hosts[1] ?? first;
  const checks: Check[] = [
    { name: `policy allows ${first.name} a→${other.name} b`, on: first.name, command: pingCommand(first.a.netns, other.b.ip), expect: "pass" },
    { name: `policy denies host→container b (${first.name})`, on: first.name, command: pingCommand(undefined, first.b.ip), expect: "refused" },
  ];
  if (hosts.length > 1) checks.push({ name: `policy denies ${first.name} b→${other.name} b`, on: first.name, command: pingCommand(first.b.netns, other.b.ip), expect: "refused" });
  return checks;
}

/**
 * The admin etcd connection from `--etcd-connection FILE`: a JSON EtcdConnection, or an object
 * holding one as `etcdConnection` (`pulumi stack output --json --show-secrets` of a stack that
 * exports a Network's etcdConnection). Throws naming the flag, the file and the field.
 */
export function readAdminConnection(file: string): EtcdConnection {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`--etcd-connection ${JSON.stringify(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`--etcd-connection ${JSON.stringify(file)} is not JSON: ${(e as Error).message}`);
  }
  const conn = raw && typeof raw === "object" && "etcdConnection" in raw ? (raw as { etcdConnection: unknown }).etcdConnection : raw;
  const problems = connectionProblems(conn, "etcdConnection");
  if (problems.length) throw new Error(`--etcd-connection ${JSON.stringify(file)}: ${problems.map((p) => p.reason).join("; ")}`);
  return conn as EtcdConnection;
}
