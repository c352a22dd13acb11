// Secret files on a host (issue 8 §1): an etcd member's key and config are 0600 after a deploy,
// also when the file was already there with a looser mode (SFTP's open() mode only applies to a
// new file: the provider chmods after writing and then reads every mode back). Real EtcdMember
// on a lab host (tsec2), provider calls as the engine makes them.
import * as fs from "fs";
import { sshConnectionFor } from "../../lab/inventory";
import { etcdMemberProvider } from "../../provider/etcd/etcdMember";
import { memberFiles } from "../../provider/etcd/etcdMemberSpec";
import { endpointOf, keysOf } from "../../provider/host/sshConnection";
import { generateCa, issueMemberCert } from "../../provider/etcd/pki";
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";

let lab: TestLab;
let inputs: Record<string, unknown>;
let dir: string;
let created: { id: string; outs: Record<string, unknown> } | undefined;

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);

beforeAll(async () => {
  lab = await startTestLab("tsec2", 151, "vxlan", 1);
  const h = lab.inventory.hosts[0];
  dir = `${h.stateDir}/etcd`;
  const ca = generateCa("tsec2");
  const member = issueMemberCert(ca, "tsec2", { name: h.name, ips: [h.ssh.host] });
  const conn = sshConnectionFor(h.ssh);
  inputs = {
    connection: endpointOf(conn),
    privateKeys: keysOf(conn),
    spec: { name: h.name, address: h.ssh.host, clientPort: 2379, peerPort: 2380, peers: [{ name: h.name, address: h.ssh.host }], clusterToken: "tsec2-etcd", dir, binary: "/usr/bin/etcd", flags: {} },
    caPem: ca.certPem,
    certPem: member.certPem,
    keyPem: member.keyPem,
  };
}, 180_000);

afterAll(
  () =>
    cleanupAll([
      async () => {
        if (created) await etcdMemberProvider.delete!(created.id, created.outs);
      },
      () => lab?.down(),
    ]),
  120_000,
);

test("check passes the lab's values; create leaves the key and the config 0600, the certificates 0644", async () => {
  expect((await etcdMemberProvider.check!({}, inputs)).failures).toEqual([]);
  const c = await etcdMemberProvider.create!(inputs);
  created = { id: c.id, outs: c.outs as Record<string, unknown> };
  const f = memberFiles(dir);
  expect({ key: mode(f.key), config: mode(f.config), cert: mode(f.cert), ca: mode(f.ca), dir: mode(dir) }).toEqual({ key: "600", config: "600", cert: "644", ca: "644", dir: "700" });
}, 120_000);

test("a key loosened by hand is private again after the next deploy", async () => {
  const f = memberFiles(dir);
  fs.chmodSync(f.key, 0o644);
  fs.chmodSync(f.config, 0o666);
  // What refresh records for a stopped member: update reinstalls (the path every later deploy takes).
  const olds = { ...created!.outs, running: false };
  const updated = await etcdMemberProvider.update!(created!.id, olds, inputs);
  created = { id: created!.id, outs: updated.outs! };
  expect({ key: mode(f.key), config: mode(f.config) }).toEqual({ key: "600", config: "600" });
}, 120_000);

test("delete removes the member's directory and nothing beside it", async () => {
  const parent = lab.inventory.hosts[0].stateDir;
  const siblings = fs.readdirSync(parent).filter((n) => n !== "etcd");
  await etcdMemberProvider.delete!(created!.id, created!.outs);
  created = undefined;
  expect(fs.existsSync(dir)).toBe(false);
  expect(fs.readdirSync(parent).sort()).toEqual(siblings.sort());
}, 120_000);
