// The pure validators every host-side field goes through at preview, fed hostile values: each
// is refused with a message that names the field and the value; sane values pass.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { addressProblem, hostPathProblem, interfaceNameProblem, sha256Problem, singleLineProblem } from "../../provider/common/validate";
import { etcdFlagProblems } from "../../provider/etcd/etcdFlags";
import { shellQuote, shellWords } from "../../provider/common/shell";
import { systemdUnit, systemdWords } from "../../provider/host/supervisor";
import { modeProblems, parseModes } from "../../provider/host/fileModes";
import { readInventory } from "../../lab/inventory";

/** The hostile values of issue 8: spaces, ";", $(…), backticks, newlines, "..", quotes. */
export const HOSTILE = ["/opt/bp fnet", "/opt/bpfnet;touch /tmp/x", "/opt/$(touch /tmp/x)", "/opt/`touch /tmp/x`", "/opt/bpfnet\ntouch /tmp/x", "/opt/../etc", "/opt/'q'", '/opt/"q"'];

describe("host paths", () => {
  test.each(HOSTILE)("refuses %j, naming the field and the value", (v) => {
    expect(hostPathProblem("spec.installDir", v)).toMatch(/^spec\.installDir must be an absolute, normalized path/);
    expect(hostPathProblem("spec.installDir", v)).toContain(JSON.stringify(v));
  });
  test.each(["relative/dir", "/", "/a//b", "/a/./b", "/a/b/", "/a/%i", "", "/a\u0000b"])("refuses the malformed %j", (v) => {
    expect(hostPathProblem("dir", v)).toContain(`got ${JSON.stringify(v)}`);
  });
  test("refuses non-strings", () => {
    expect(hostPathProblem("dir", 42)).toBe(`dir must be an absolute, normalized path of letters, digits and "._+@:=,-" (not a string), got 42`);
  });
  test.each(["/opt/bpfnet", "/run/bpfnet/lab/tsec1/h1/state", "/usr/bin/node", "/sys/fs/bpf/bpfnet-h1", "/var/lib/bpfnet@2/x_y.z+w"])("accepts %j", (v) => {
    expect(hostPathProblem("dir", v)).toBeUndefined();
  });
});

describe("interface names", () => {
  test.each(["eth0;touch /tmp/x", "eth 0", "$(id)", "`id`", "eth0\n", "..", "a'b", 'a"b', "sixteen-chars-xx", "", "-eth0", "a/b", "a:1"])("refuses %j", (v) => {
    expect(interfaceNameProblem("spec.underlayInterface", v)).toBe(
      `spec.underlayInterface must be a Linux interface name (1-15 characters of letters, digits, "_", ".", "-", starting with a letter or digit), got ${JSON.stringify(v)}`,
    );
  });
  test.each(["eth0", "ens3f0.100", "br_lab-1", "fifteen-chars-x"])("accepts %j", (v) => expect(interfaceNameProblem("f", v)).toBeUndefined());
});

describe("etcd flags", () => {
  test("keys come from etcd's own list", () => {
    expect(etcdFlagProblems("flags", { "auto-compaction-retention": "1", "quota-backend-bytes": "8589934592", "listen-metrics-urls": "http://127.0.0.1:2381" })).toEqual([]);
    expect(etcdFlagProblems("flags", { "no-such-flag": "1" })).toEqual([`flags: "no-such-flag" is not one of etcd's flags (see \`etcd --help\`), e.g. "auto-compaction-retention"`]);
    expect(etcdFlagProblems("flags", { "x\ny": "1" })[0]).toContain(JSON.stringify("x\ny"));
  });
  test("keys bpfnet writes itself are refused", () => {
    expect(etcdFlagProblems("flags", { "data-dir": "/tmp" })).toEqual([`flags: bpfnet sets etcd's "data-dir" itself; remove it from flags`]);
    expect(etcdFlagProblems("flags", { "client-transport-security": "x" })).toHaveLength(1);
  });
  test.each(["1\ndata-dir: /tmp/evil", "/var/../etc", "1 # c", "$(touch /tmp/x)", "`id`", "a b", "'1'", '"1"', "1;x", ""])("refuses the value %j", (v) => {
    expect(etcdFlagProblems("flags", { "auto-compaction-retention": v })).toEqual([
      `flags.auto-compaction-retention must be one word of letters, digits and "_.,:/=+-" (no space, newline, quote, "#" or ".." segment), got ${JSON.stringify(v)}`,
    ]);
  });
  test("every key we allow or own is a flag of the etcd on this machine", () => {
    const help = execFileSync("etcd", ["--help"], { encoding: "utf8" });
    const flags = new Set([...help.matchAll(/^\s+--([a-z0-9-]+)/gm)].map((m) => m[1]));
    const { ETCD_USER_FLAGS, ETCD_BPFNET_FLAGS } = require("../../provider/etcd/etcdFlags") as typeof import("../../provider/etcd/etcdFlags");
    const sections = ["client-transport-security", "peer-transport-security"]; // config-file sections, not flags
    expect([...ETCD_USER_FLAGS, ...ETCD_BPFNET_FLAGS].filter((k) => !flags.has(k) && !sections.includes(k))).toEqual([]);
  });
});

describe("other fields", () => {
  test("addresses", () => {
    expect(addressProblem("address", "10.0.0.1")).toBeUndefined();
    expect(addressProblem("address", "etcd-1.example.org")).toBeUndefined();
    for (const v of ["10.0.0.1;id", "a b", "$(id)", "10.0.0.256", "a..b", "\n"]) expect(addressProblem("address", v)).toBe(`address must be an IPv4 address or a DNS name, got ${JSON.stringify(v)}`);
  });
  test("digests and single lines", () => {
    expect(sha256Problem("bundleSha256", "a".repeat(64))).toBeUndefined();
    expect(sha256Problem("bundleSha256", "../../etc")).toContain(`got "../../etc"`);
    expect(singleLineProblem("d", "a b; c")).toBeUndefined();
    expect(singleLineProblem("d", "a\nExecStartPre=/bin/evil")).toContain("d must be one line");
  });
});

describe("quoting keeps a hostile word one inert word", () => {
  test.each(HOSTILE)("sh sees %j as exactly one argument", (v) => {
    const out = execFileSync("sh", ["-c", `printf '%s\\0' ${shellWords([v, "next"])}`]);
    expect(out.toString().split("\0").slice(0, 2)).toEqual([v, "next"]);
    expect(shellQuote(v) === v).toBe(/^[A-Za-z0-9_@%+=:,./-]+$/.test(v)); // only safe words stay bare
  });
  test("systemd accepts the unit of a service whose words and description are hostile", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-tsec-unit-"));
    try {
      const unit = systemdUnit({ name: "bpfnet-tsec", dir, argv: ["/bin/sh", "-c", "exit 0", ...HOSTILE], description: "d\nExecStartPre=/bin/false" });
      fs.writeFileSync(path.join(dir, "bpfnet-tsec.service"), unit);
      const r = spawnSync("systemd-analyze", ["verify", path.join(dir, "bpfnet-tsec.service")], { encoding: "utf8" });
      expect({ code: r.status, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      expect(unit.split("\n").filter((l) => /^Exec/.test(l))).toHaveLength(1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  test("systemd words escape quotes, specifiers and variables", () => {
    expect(systemdWords(["/usr/bin/node", 'a"b', "50%", "$HOME", "x\\y", "l1\nl2"])).toBe('"/usr/bin/node" "a\\"b" "50%%" "$$HOME" "x\\\\y" "l1\\nl2"');
  });
});

describe("file modes", () => {
  test("a key readable by others, or missing, is named", () => {
    const modes = parseModes("600 /s/etcd/pki/member.key\n644 /s/etcd/etcd.conf.yml\n");
    expect(modeProblems(["/s/etcd/pki/member.key", "/s/etcd/etcd.conf.yml", "/s/agent/agent.json"], modes, "600")).toEqual([
      "/s/etcd/etcd.conf.yml has mode 644, expected 600",
      "/s/agent/agent.json is missing",
    ]);
  });
});

describe("inventory files (`bpfnet health` builds host commands from them)", () => {
  const good = {
    name: "h1",
    ssh: { host: "10.1.0.1", port: 22, user: "root", privateKeyPath: "/k", hostKeyFingerprint: "SHA256:x" },
    underlayIp: "10.1.1.1",
    underlayInterface: "eth0",
    installDir: "/opt/bpfnet",
    stateDir: "/var/lib/bpfnet",
    bpffsDir: "/sys/fs/bpf/bpfnet",
  };
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "bpfnet-inv-"))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  /** Writes an inventory with this one host; returns the read, for expect(…).toThrow. */
  const read = (host: Record<string, unknown>) => {
    const file = path.join(dir, "inventory.json");
    fs.writeFileSync(file, JSON.stringify({ lab: "x", topology: "vxlan", subnet: "10.1.0.0/16", hosts: [host] }));
    return () => readInventory(file);
  };
  test("a sane inventory is read", () => {
    expect(read(good)().hosts[0].name).toBe("h1");
  });
  test.each(["installDir", "stateDir", "bpffsDir"])("every hostile %s is refused, naming the host, field and value", (field) => {
    for (const v of HOSTILE) {
      expect(read({ ...good, [field]: v })).toThrow(`hosts[0] ("h1").${field} must be an absolute, normalized path`);
      expect(read({ ...good, [field]: v })).toThrow(JSON.stringify(v));
    }
  });
  test.each([
    ["name", "h1;touch /tmp/x"],
    ["name", "$(id)"],
    ["underlayInterface", "eth0;touch /tmp/x"],
    ["underlayIp", "10.0.0.1 && id"],
  ])("a hostile %s (%j) is refused", (field, v) => {
    expect(read({ ...good, [field]: v })).toThrow(`.${field} must be`);
    expect(read({ ...good, [field]: v })).toThrow(JSON.stringify(v));
  });
});
