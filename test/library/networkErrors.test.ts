// Network's errors in the user's terms: each names the component, the field as the user wrote it
// (hosts[i] ("name").field) and the value, for hostile and plain-wrong input alike; an SSH key is
// parsed (with ssh2, for real) at preview. The last test runs a real `pulumi preview` of the
// repository's stack program on such input: it fails before anything is written.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { NetworkArgs, NetworkHostArgs } from "../../components/network";
import { networkArgsProblems, privateKeyProblem, validateNetworkArgs } from "../../components/networkValidation";
import { compatibilityProblems } from "../../components/compat";
import { etcdClusterArgsProblems, validateEtcdClusterArgs } from "../../components/etcdCluster";
import type { Inventory } from "../../lab/inventory";
import { removeStack, rootProjectStack } from "../support/pulumi";

jest.setTimeout(180_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tlib-errors-"));
execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "tlib", "-f", path.join(tmp, "id")]);
const KEY = fs.readFileSync(path.join(tmp, "id"), "utf8");
const PUBLIC_KEY = fs.readFileSync(path.join(tmp, "id.pub"), "utf8");
const FP = `SHA256:${"A".repeat(43)}`;
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const host = (name: string, octet: number, extra: Partial<NetworkHostArgs> = {}): NetworkHostArgs => ({
  name,
  underlayIp: `10.175.1.${octet}`,
  connection: { host: `10.175.0.${octet}`, user: "root", privateKey: KEY, hostKeyFingerprint: FP },
  ...extra,
});
const args = (hosts: NetworkHostArgs[], extra: Partial<NetworkArgs> = {}): NetworkArgs => ({
  hosts,
  mode: "vxlan",
  clusterCidr: "10.244.0.0/16",
  etcd: { members: [{ name: hosts[0].name, connection: hosts[0].connection, address: "10.175.0.1" }] },
  ...extra,
});
const problems = (a: NetworkArgs) => networkArgsProblems("prod", a);

describe("Network's argument errors name the user's field and value", () => {
  test("good arguments have no problems", () => {
    expect(problems(args([host("h1", 1), host("h2", 2)]))).toEqual([]);
  });

  test("a relative stateDir: the issue's example, word for word where it matters", () => {
    expect(() => validateNetworkArgs("prod", args([host("h1", 1, { stateDir: "var/lib/bpfnet" })]))).toThrow(
      /^Network "prod": hosts\[0\] \("h1"\)\.stateDir must be an absolute, .*got "var\/lib\/bpfnet"$/,
    );
  });

  test("an invalid underlayIp is named as the host's underlayIp, not ContainerNetwork's hostAddresses", () => {
    const p = problems(args([host("h1", 1), host("h2", 2, { underlayIp: "10.175.1.300" })]));
    expect(p).toEqual([`hosts[1] ("h2").underlayIp must be an IPv4 address like "192.168.1.10", got "10.175.1.300"`]);
  });

  test("an underlayIp inside the cluster CIDR names both", () => {
    expect(problems(args([host("h1", 1, { underlayIp: "10.244.3.3" })]))).toEqual([`clusterCidr "10.244.0.0/16" contains hosts[0] ("h1").underlayIp "10.244.3.3"`]);
  });

  test("the network spec's own checks run at construction, in the user's field names", () => {
    expect(problems(args([host("h1", 1)], { clusterCidr: "10.244.0.1/16" }))).toEqual([expect.stringMatching(/^clusterCidr .*"10\.244\.0\.1\/16"/)]);
    expect(problems(args([host("h1", 1)], { vni: 0 }))).toEqual([expect.stringMatching(/^vni .*0/)]);
  });

  const HOSTILE = ["/var/lib/bpf net", "/var/lib/x;reboot", "/var/lib/$(id)", "/var/lib/`id`", "/var/lib/a\nb", "/var/lib/../etc", "/var/lib/'q'", '/var/lib/"q"'];
  test.each(HOSTILE)("hostile path %j in installDir, stateDir, bpffsDir and agents.nodePath is refused, naming each field", (bad) => {
    const p = problems(args([host("h1", 1, { installDir: bad, stateDir: bad, bpffsDir: bad })], { agents: { nodePath: bad } }));
    for (const field of ['hosts[0] ("h1").installDir', 'hosts[0] ("h1").stateDir', 'hosts[0] ("h1").bpffsDir', "agents.nodePath"]) {
      expect(p).toContainEqual(expect.stringContaining(`${field} must be an absolute, normalized path`));
    }
    expect(p.every((m) => m.endsWith(`got ${JSON.stringify(bad)}`))).toBe(true);
  });

  test.each(["eth 0", "eth0;id", "$(id)", "`id`", "a\nb", "..", "'q'", '"q"'])("hostile underlayInterface %j is refused", (bad) => {
    expect(problems(args([host("h1", 1, { underlayInterface: bad })]))).toEqual([expect.stringMatching(/^hosts\[0\] \("h1"\)\.underlayInterface must be a Linux interface name/)]);
  });

  test.each(["h 1", "h1;id", "$(id)", "`id`", "h\n1", "..", "'q'", '"q"'])("hostile host name %j is refused", (bad) => {
    const p = problems(args([host(bad, 1)]));
    expect(p).toContainEqual(`hosts[0] (${JSON.stringify(bad)}).name must be a host name of letters, digits, "_", ".", "-" (at most 63 characters), got ${JSON.stringify(bad)}`);
  });

  test.each(["1.2.3.4;id", "$(id)", "`id`", "a b", "x\ny", "..", "'q'"])("hostile controlAddress %j is refused", (bad) => {
    expect(problems(args([host("h1", 1, { controlAddress: bad })]))).toEqual([expect.stringMatching(/^hosts\[0\] \("h1"\)\.controlAddress must be an IPv4 address or a DNS name/)]);
  });

  test.each(["true", "yes", 1, "h2;id", "$(id)", "`id`", "a\nb", "..", "'q'", '"q"', null, {}])("hostile unreachable %j is refused: true or false only", (bad) => {
    expect(problems(args([host("h1", 1), host("h2", 2, { unreachable: bad as never })]))).toEqual([`hosts[1] ("h2").unreachable must be true or false, got ${JSON.stringify(bad)}`]);
    expect(problems(args([host("h1", 1), host("h2", 2, { unreachable: true })]))).toEqual([]);
  });

  test("a garbage SSH key fails at preview naming the host, a public key too; a real key passes", () => {
    expect(privateKeyProblem("k", KEY)).toBeUndefined();
    const garbage = { host: "10.175.0.2", user: "root", privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n", hostKeyFingerprint: FP };
    expect(problems(args([host("h1", 1), host("h2", 2, { connection: garbage })]))).toEqual([expect.stringMatching(/^hosts\[1\] \("h2"\)\.connection\.privateKey is not a usable SSH private key \(.+\)/)]);
    expect(problems(args([host("h1", 1), host("h2", 2, { connection: { ...garbage, privateKey: PUBLIC_KEY } })]))).toEqual([`hosts[1] ("h2").connection.privateKey is a public key; give the private key's text`]);
  });

  test("connection fields keep the providers' messages under the user's path", () => {
    const conn = { host: "10.175.0.1", user: "root", privateKey: KEY, hostKeyFingerprint: "SHA256:nope" };
    expect(problems(args([host("h1", 1, { connection: conn })]))).toEqual([expect.stringMatching(/^hosts\[0\] \("h1"\)\.connection\.hostKeyFingerprint must look like .*"SHA256:nope"/)]);
  });

  test("structure: duplicates, mode/router, etcd", () => {
    expect(problems(args([host("h1", 1), host("h1", 2)]))).toContain(`hosts: host "h1" is listed twice`);
    expect(problems(args([host("h1", 1)], { mode: "l3" }))).toContain("mode l3 needs router: the router between the hosts must route each pod CIDR to its host");
    expect(problems(args([host("h1", 1)], { etcd: {} }))).toContain("etcd needs exactly one of members (provision etcd on these hosts) or existing (a running etcd)");
  });

  test("several problems: one line each, each naming the component", () => {
    const a = args([host("h1", 1, { stateDir: "rel", bpffsDir: "also/rel" })]);
    const lines = (() => {
      try {
        validateNetworkArgs("prod", a);
        return [];
      } catch (e) {
        return (e as Error).message.split("\n");
      }
    })();
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.startsWith(`Network "prod": hosts[0] ("h1").`))).toBe(true);
  });
});

describe("etcd members, through Network and through EtcdCluster directly", () => {
  test("Network: an even number of members, a duplicate and hostile member fields name etcd.members[i]", () => {
    const [h1, h2] = [host("h1", 1), host("h2", 2)];
    const member = (h: NetworkHostArgs, extra = {}) => ({ name: h.name, connection: h.connection, address: `10.175.0.${h.name.slice(1)}`, ...extra });
    expect(problems(args([h1, h2], { etcd: { members: [member(h1), member(h2)] } }))).toEqual(["etcd.members must be an odd number of hosts (1, 3, 5) for a quorum, got 2"]);
    expect(problems(args([h1], { etcd: { members: [member(h1, { stateDir: "/x/$(id)", address: "1.2.3.4;id" })] } }))).toEqual([
      expect.stringMatching(/^etcd\.members\[0\] \("h1"\)\.stateDir must be an absolute, normalized path .*got "\/x\/\$\(id\)"$/),
      `etcd.members[0] ("h1").address must be an IPv4 address or a DNS name, got "1.2.3.4;id"`,
    ]);
  });

  test("EtcdCluster: hosts[i] (\"name\") paths, its own connection's key, and the component's name in the error", () => {
    const conn = { host: "10.175.0.1", user: "root", privateKey: "garbage", hostKeyFingerprint: FP };
    expect(etcdClusterArgsProblems({ hosts: [{ name: "e1", connection: conn, address: "10.175.0.1", stateDir: "rel/dir" }] })).toEqual([
      expect.stringMatching(/^hosts\[0\] \("e1"\)\.stateDir must be an absolute, normalized path .*got "rel\/dir"$/),
      expect.stringMatching(/^hosts\[0\] \("e1"\)\.connection\.privateKey is not a usable SSH private key/),
    ]);
    expect(() => validateEtcdClusterArgs("store", { hosts: [] })).toThrow(/^EtcdCluster "store": hosts must be an odd number of members \(1, 3, 5\) for a quorum, got 0$/);
  });
});

describe("runtime compatibility", () => {
  test("supported: Node 20+, @pulumi/pulumi 3.248+ below 4", () => {
    expect(compatibilityProblems("v20.11.0", "3.248.0")).toEqual([]);
    expect(compatibilityProblems("v22.1.0", "3.250.1")).toEqual([]);
  });
  test("unsupported versions are named with what was found", () => {
    expect(compatibilityProblems("v18.19.0", "3.248.0")).toEqual(["bpfnet needs Node.js >= 20, this program runs on v18.19.0"]);
    expect(compatibilityProblems("v20.0.0", "3.100.0")).toEqual([expect.stringContaining("@pulumi/pulumi >=3.248.0 <4, this program has 3.100.0")]);
    expect(compatibilityProblems("v20.0.0", "4.0.0")).toEqual([expect.stringContaining("this program has 4.0.0")]);
    expect(compatibilityProblems("v20.0.0", undefined)).toEqual([expect.stringContaining("this program has none")]);
  });
});

describe("through the real CLI: pulumi preview of the stack program fails at construction, naming the host", () => {
  let stack: Stack | undefined;
  afterAll(async () => {
    if (stack) await removeStack(stack);
  });

  const writeInventory = (h2StateDir: string): string => {
    fs.writeFileSync(path.join(tmp, "garbage"), "this is not a key\n");
    const entry = (i: number, keyPath: string, stateDir: string) => ({
      name: `h${i}`,
      ssh: { host: `10.175.0.${i}`, port: 22, user: "root", privateKeyPath: keyPath, hostKeyFingerprint: FP },
      underlayIp: `10.175.1.${i}`,
      underlayInterface: "eth0",
      installDir: `/run/bpfnet/lab/tlib3/hosts/h${i}/opt`,
      stateDir,
      bpffsDir: `/run/bpfnet/lab/tlib3/hosts/h${i}/bpf`,
    });
    const inventory: Inventory = {
      lab: "tlib3",
      topology: "vxlan",
      subnet: "10.175.0.0/16",
      hosts: [entry(1, path.join(tmp, "id"), "/run/bpfnet/lab/tlib3/hosts/h1/state"), entry(2, path.join(tmp, "garbage"), h2StateDir)],
    };
    const file = path.join(tmp, "inventory.json");
    fs.writeFileSync(file, JSON.stringify(inventory));
    return file;
  };
  const previewError = async (inventoryFile: string): Promise<string | undefined> => {
    stack ??= await rootProjectStack(`ci-lib-errors-${process.pid}`, { "bpfnet:agents": "false" });
    await stack.setConfig("bpfnet:inventory", { value: inventoryFile });
    return stack.preview().then(
      () => undefined,
      (e: Error) => e.message,
    );
  };

  test("a garbage key on h2 fails preview in the Network with the user's field names, the key's text never echoed", async () => {
    const err = await previewError(writeInventory("/run/bpfnet/lab/tlib3/hosts/h2/state"));
    expect(err).toMatch(/Network "net": hosts\[1\] \("h2"\)\.connection\.privateKey is not a usable SSH private key/);
    expect(err).not.toMatch(/this is not a key/);
  });

  test("a relative stateDir in the inventory is refused when the stack program reads it, naming the file, host, field and value", async () => {
    const file = writeInventory("var/lib/bpfnet");
    const err = await previewError(file);
    expect(err).toContain(`inventory ${file}: hosts[1] ("h2").stateDir must be an absolute, normalized path`);
    expect(err).toMatch(/got "var\/lib\/bpfnet"/);
  });
});
