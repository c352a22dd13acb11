// NodeAgent's `unreachable` mark without a host: check refuses anything but a boolean (naming the
// field and value) and a mark without the admin connection; diff and update only record the mark
// (no SSH: the endpoint below is an address nothing listens on); the removal record lists what
// stays on the host from the deployed spec. The removal itself runs for real in
// test/reliability/unreachableRemoval.test.ts.
import { nodeAgentProvider } from "../../provider/agent/nodeAgent";
import { leftOnHost, removalRecord } from "../../provider/agent/removalRecord";

const spec = {
  hostName: "h2", networkPrefix: "/bpfnet/net", installDir: "/opt/bpfnet", stateDir: "/var/lib/bpfnet", bpffsDir: "/sys/fs/bpf/bpfnet",
  underlayInterface: "eth0", underlayIp: "10.184.1.12", nodePath: "/usr/bin/node",
};
const etcd = { endpoints: ["https://127.0.0.1:1"] };
const sha = "a".repeat(64);
const base = { connection: { host: "127.0.0.1", port: 1, user: "root", hostKeyFingerprint: `SHA256:${"A".repeat(43)}` }, privateKeys: ["k"], spec, etcd, bundlePath: __filename, bundleSha256: sha };
const deployed = { ...base, supervisor: "process" as const, nodeVersion: "v20.0.0", running: true, release: `/opt/bpfnet/releases/${"a".repeat(16)}`, incarnation: "i1" };
const p = nodeAgentProvider as Required<typeof nodeAgentProvider>;

test.each(["true", "yes", 1, "h2;id", "$(id)", "`id`", "a\nb", "..", "'q'", '"q"', null])("check refuses unreachable %j, naming the field and value", async (bad) => {
  const { failures } = await p.check({}, { ...base, unreachable: bad, adminEtcd: etcd });
  expect(failures).toEqual([{ property: "unreachable", reason: `unreachable must be true or false, got ${JSON.stringify(bad)}` }]);
});

test("check: the mark needs the admin connection; false or absent needs nothing", async () => {
  expect((await p.check({}, { ...base, unreachable: true })).failures).toEqual([{ property: "adminEtcd", reason: expect.stringContaining("unreachable: true needs adminEtcd") }]);
  expect((await p.check({}, { ...base, unreachable: true, adminEtcd: etcd })).failures).toEqual([]);
  expect((await p.check({}, { ...base, unreachable: false })).failures).toEqual([]);
});

test("marking is a state-only update: no replace even with a new address, and the state keeps what is deployed", async () => {
  const news = { ...base, connection: { ...base.connection, host: "127.0.0.2" }, bundleSha256: "b".repeat(64), unreachable: true, adminEtcd: etcd };
  expect(await p.diff("agent@h2", deployed, news)).toEqual({ changes: true, replaces: [] });
  const { outs } = await p.update!("agent@h2", deployed, news);
  expect(outs).toMatchObject({ ...deployed, unreachable: true, adminEtcd: etcd, leftOnHost: leftOnHost(spec, sha, "process") });
  // Marked again with nothing new: no change. Unmarked: the agent is deployed again.
  expect((await p.diff("agent@h2", outs, news)).changes).toBe(false);
  expect((await p.diff("agent@h2", outs, base)).changes).toBe(true);
  // Refresh of a marked host does not contact it.
  expect(await p.read!("agent@h2", outs)).toEqual({ id: "agent@h2", props: outs });
});

test("the record lists the deployed release, the agent's files and pins, its devices and the commands that remove them", () => {
  const left = leftOnHost(spec, sha, "systemd");
  expect(left.paths).toEqual([
    `/opt/bpfnet/releases/${"a".repeat(16)}`, "/opt/bpfnet/current", "/opt/bpfnet/bundles", "/var/lib/bpfnet/agent", "/var/lib/bpfnet/agent/agent.json",
    "/etc/systemd/system/bpfnet-agent.service", "/sys/fs/bpf/bpfnet/bpfnet_*",
  ]);
  expect(left.cleanup).toEqual([
    "systemctl disable --now bpfnet-agent.service >/dev/null 2>&1; true",
    "/usr/bin/node /opt/bpfnet/current/bin/bpfnet agent teardown --config /var/lib/bpfnet/agent/agent.json",
    "rm -f /etc/systemd/system/bpfnet-agent.service && systemctl daemon-reload",
    "rm -rf /opt/bpfnet/releases /opt/bpfnet/bundles /opt/bpfnet/current /var/lib/bpfnet/agent",
  ]);
  expect(leftOnHost(spec, sha, "process").paths).not.toContain("/etc/systemd/system/bpfnet-agent.service");
  const r = removalRecord(spec, left, ["role r"], "root@m", new Date("2026-01-02T03:04:05Z"));
  expect(r).toEqual({ schema: 1, host: "h2", removedAt: "2026-01-02T03:04:05.000Z", removedBy: "root@m", reason: expect.stringContaining("no SSH"), revoked: ["role r"], leftOnHost: left });
});
