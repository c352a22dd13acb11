// The lab for real: namespaces, sshd per host, FRR on the router, and nothing left behind.
import * as fs from "fs";
import { sshConnectionFor } from "../../lab/inventory";
import { labUp } from "../../lab/lab";
import { tryRun } from "../../lab/sh";
import { withSsh } from "../../provider/host/ssh";
import { shellWords } from "../../provider/common/shell";
import { startTestLab, TestLab } from "../support/lab";

function leftovers(lab: string, stateDir: string) {
  return {
    netns: tryRun("ip", ["netns", "list"]).stdout.split("\n").filter((l) => l.startsWith(`${lab}-`)),
    links: tryRun("ip", ["-o", "link"]).stdout.split("\n").filter((l) => l.includes(` ${lab}-`)),
    processes: tryRun("pgrep", ["-af", stateDir]).stdout.split("\n").filter((l) => l && !l.includes("pgrep")),
    mounts: fs.readFileSync("/proc/self/mounts", "utf8").split("\n").filter((l) => l.includes(stateDir)),
    files: fs.existsSync(stateDir),
  };
}
const nothing = { netns: [], links: [], processes: [], mounts: [], files: false };

describe("lab, vxlan topology", () => {
  let lab: TestLab;
  beforeAll(async () => {
    lab = await startTestLab("tlabv", 221, "vxlan", 3);
  });
  afterAll(() => lab?.down());

  test("every host answers SSH with its own verified host key, inside its own namespace", async () => {
    const seen = await Promise.all(
      lab.inventory.hosts.map((h) =>
        withSsh(sshConnectionFor(h.ssh), async (s) => ({
          addr: (await s.run("ip -4 -o addr show dev eth0")).trim(),
          bpffs: (await s.run(shellWords(["stat", "-f", "-c", "%T", h.bpffsDir]))).trim(),
        })),
      ),
    );
    lab.inventory.hosts.forEach((h, i) => {
      expect(seen[i].addr).toContain(`${h.underlayIp}/24`);
      expect(seen[i].bpffs).toBe("bpf_fs");
    });
    expect(new Set(lab.inventory.hosts.map((h) => h.ssh.hostKeyFingerprint)).size).toBe(3);
  });

  test("a wrong host key is refused with a clear error", async () => {
    const h = lab.inventory.hosts[0];
    const other = lab.inventory.hosts[1].ssh.hostKeyFingerprint;
    await expect(withSsh({ ...sshConnectionFor(h.ssh), hostKeyFingerprint: other }, (s) => s.run("true"))).rejects.toThrow(
      /host key SHA256:\S+ does not match the expected SHA256:\S+; refusing to connect/,
    );
  });

  test("hosts reach each other on the underlay and nothing outside the lab", async () => {
    const [h1, h2] = lab.inventory.hosts;
    await withSsh(sshConnectionFor(h1.ssh), async (s) => {
      await s.run(shellWords(["ping", "-c", 1, "-W", 2, h2.underlayIp]));
      // No default route: an address outside the lab has no way out (no packet is sent).
      const r = await s.exec("ip route get 192.0.2.1");
      expect(r.code).not.toBe(0);
    });
  });

  test("lab up again with the same options keeps the running lab", async () => {
    const again = await labUp(JSON.parse(fs.readFileSync(`${lab.stateDir}/lab.json`, "utf8")).options);
    expect(again.hosts.map((h) => h.ssh.hostKeyFingerprint)).toEqual(lab.inventory.hosts.map((h) => h.ssh.hostKeyFingerprint));
  });
});

describe("lab, l3 topology", () => {
  let lab: TestLab;
  beforeAll(async () => {
    lab = await startTestLab("tlabr", 222, "l3", 2);
  });
  afterAll(() => lab?.down());

  test("hosts in separate subnets reach each other only through the router", async () => {
    const [h1, h2] = lab.inventory.hosts;
    expect(h1.underlayIp.split(".")[2]).not.toBe(h2.underlayIp.split(".")[2]);
    await withSsh(sshConnectionFor(h1.ssh), async (s) => {
      const route = await s.run(shellWords(["ip", "route", "get", h2.underlayIp]));
      expect(route).toContain(`via ${lab.inventory.router!.hostGateways.h1}`);
      await s.run(shellWords(["ping", "-c", 1, "-W", 2, h2.underlayIp]));
    });
  });

  test("the router runs FRR that vtysh programs over SSH, and routes nothing out of the lab", async () => {
    const r = lab.inventory.router!;
    await withSsh(sshConnectionFor(r.ssh), async (s) => {
      await s.run(shellWords(["vtysh", ...r.vtyshArgs, "-c", "configure terminal", "-c", `ip route 10.99.0.0/24 ${lab.inventory.hosts[0].underlayIp}`]));
      let kernel = "";
      for (let i = 0; i < 50 && !kernel.includes("10.99.0.0/24"); i++) {
        kernel = await s.run("ip route show 10.99.0.0/24");
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(kernel).toContain(`10.99.0.0/24 nhid`);
      expect((await s.exec("ip route get 192.0.2.1")).code).not.toBe(0);
    });
  });
});

describe("lab down", () => {
  test("removes every namespace, link, process, mount and file the lab made", async () => {
    const lab = await startTestLab("tlabd", 223, "l3", 2);
    const before = leftovers("tlabd", lab.stateDir);
    expect(before.netns).toHaveLength(3);
    expect(before.processes.length).toBeGreaterThanOrEqual(5); // 3 sshd + zebra + staticd
    expect(before.mounts).toHaveLength(2);
    lab.down();
    expect(leftovers("tlabd", lab.stateDir)).toEqual(nothing);
    lab.down(); // idempotent
  });
});
