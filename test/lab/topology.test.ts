import { planLab, planNamespaces, planRootLinks, validateLabOptions } from "../../lab/topology";

const base = { name: "lab", hosts: 3, topology: "vxlan" as const, subnet: "10.213.0.0/16", stateDir: "/run/x" };

describe("lab topology plan", () => {
  test("vxlan: hosts share one underlay /24, management on .0.x, no router", () => {
    const p = planLab(base);
    expect(p.hosts.map((h) => h.underlayIp)).toEqual(["10.213.1.1", "10.213.1.2", "10.213.1.3"]);
    expect(p.hosts.map((h) => h.mgmtIp)).toEqual(["10.213.0.1", "10.213.0.2", "10.213.0.3"]);
    expect(p.rootMgmtIp).toBe("10.213.0.254");
    expect(p.router).toBeUndefined();
    expect(p.underlayBridge).toBe("lab-ul");
    expect(planNamespaces(p)).toEqual(["lab-h1", "lab-h2", "lab-h3"]);
  });

  test("l3: each host alone in its own /24 behind the router", () => {
    const p = planLab({ ...base, topology: "l3" });
    expect(p.hosts.map((h) => [h.underlayIp, h.gateway])).toEqual([
      ["10.213.11.1", "10.213.11.254"],
      ["10.213.12.1", "10.213.12.254"],
      ["10.213.13.1", "10.213.13.254"],
    ]);
    expect(p.router?.netns).toBe("lab-rt");
    expect(planNamespaces(p)).toContain("lab-rt");
    expect(p.underlayBridge).toBeUndefined();
  });

  test("every root-namespace link name fits the kernel's 15 characters", () => {
    const p = planLab({ ...base, name: "abcdefgh", hosts: 50, topology: "l3" });
    for (const l of planRootLinks(p)) expect(l.length).toBeLessThanOrEqual(15);
    expect(new Set(planRootLinks(p)).size).toBe(planRootLinks(p).length);
  });

  test.each([
    [{ name: "Bad_Name" }, /lab name "Bad_Name"/],
    [{ name: "toolongname" }, /lab name "toolongname"/],
    [{ hosts: 0 }, /lab hosts 0/],
    [{ hosts: 51 }, /lab hosts 51/],
    [{ topology: "mesh" }, /lab topology "mesh"/],
    [{ subnet: "192.168.0.0/16" }, /lab subnet "192.168.0.0\/16"/],
    [{ subnet: "10.300.0.0/16" }, /lab subnet "10.300.0.0\/16"/],
  ])("rejects %j", (override, message) => {
    expect(() => validateLabOptions({ ...base, ...(override as object) } as never)).toThrow(message);
  });
});
