// A policy update through `pulumi up` takes effect on every host: the project
// test/projects/policy (ContainerNetwork, HostAllocations, NetworkPolicy) through the real CLI
// onto the etcd of a 2-host vxlan lab (tpol5) whose real agents enforce it. `pulumi up` with a
// changed port moves every host's policy rows to it; `pulumi destroy` of the policy opens the
// endpoints again. Needs root and dist/ built.
import * as path from "path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { openDatapathMaps } from "../../bpf";
import type { DatapathMaps } from "../../bpf";
import { REPO, TOOLS, pulumiEnv, removeStack } from "../support/pulumi";
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "../agent/support/etcd";
import { addContainerNetns, checkBuilt, LabAgent, removeContainers, waitFor } from "../agent/support/agents";

const PROJECT = path.join(REPO, "test", "projects", "policy");
const LAB = "tpol5";
const OCTET = 182;
const CONTAINERS = ["tpolc182a", "tpolc182b", "tpolc182w"];
let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let stack: Stack | undefined;
let agents: LabAgent[] = [];
const maps: DatapathMaps[] = [];

const policy = (port: number) => ({
  endpointSelector: { app: "api" },
  ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port, protocol: "TCP" }] }],
});

beforeAll(async () => {
  checkBuilt();
  lab = await startTestLab(LAB, OCTET, "vxlan", 2);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  stack = await LocalWorkspace.createOrSelectStack({ stackName: `polag-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: pulumiEnv() });
  await stack.setAllConfig({
    "policytest:etcd": { value: etcd.connection.endpoints[0] },
    "policytest:networkName": { value: LAB },
    "policytest:hosts": { value: lab.inventory.hosts.map((h) => h.name).join(",") },
    "policytest:clusterCidr": { value: `10.${OCTET}.128.0/17` },
    "policytest:policy": { value: JSON.stringify(policy(8080)) },
  });
}, 180_000);

afterAll(async () => {
  await cleanupAll([
    () => stack && removeStack(stack),
    ...agents.map((a) => () => a.stop()),
    () => maps.forEach((m) => m.close()),
    () => removeContainers(CONTAINERS),
    () => etcd?.stop(),
    () => lab?.down(),
  ]);
}, 300_000);

/** The ports of the TCP ingress rows every host's policy map holds. */
const portsOn = (i: number) => [...new Set(maps[i].policy.entries().map((r) => r.dport))].sort();

test("pulumi up of a changed policy takes effect on every host; destroy opens the endpoints", async () => {
  const up = await stack!.up();
  expect(up.summary.resourceChanges).toMatchObject({ create: 5 });
  agents = lab!.inventory.hosts.map((h) => new LabAgent(h, { prefix: `/bpfnet/${LAB}`, etcd: etcd!.connection }));
  await Promise.all(agents.map((a) => a.start()));
  for (const a of agents) maps.push(openDatapathMaps(a.host.bpffsDir));
  const place: [number, string, string, Record<string, string>][] = [[0, "api1", CONTAINERS[0], { app: "api" }], [1, "api2", CONTAINERS[1], { app: "api" }], [1, "web", CONTAINERS[2], { app: "web" }]];
  for (const [host, id, netns, labels] of place) {
    addContainerNetns(netns);
    await agents[host].client.addEndpoint({ id, netns: `/run/netns/${netns}`, labels });
  }
  await waitFor("both hosts enforce port 8080", async () => portsOn(0).join() === "8080" && portsOn(1).join() === "8080" && (await agents[0].client.getEndpoint("api1"))?.ingress === "enforced");

  await stack!.setConfig("policytest:policy", { value: JSON.stringify(policy(9090)) });
  const changed = await stack!.up();
  expect(changed.summary.resourceChanges).toMatchObject({ update: 1 });
  await waitFor("both hosts moved to port 9090", () => portsOn(0).join() === "9090" && portsOn(1).join() === "9090");
  expect((await waitFor("web's view", () => agents[1].client.getEndpoint("web")))!.ingress).toBe("open");

  await stack!.destroy();
  await waitFor("no policy rows left, api endpoints open", async () =>
    portsOn(0).length === 0 && portsOn(1).length === 0 && (await agents[1].client.getEndpoint("api2").catch(() => undefined))?.ingress === "open",
  );
}, 600_000);
