// L7 HTTP policy through the real Pulumi CLI: the project test/projects/policy with the issue's
// example (web may GET /v1/.* and POST /v1/orders on api's port 8080, the host anything) onto
// the etcd of a 2-host vxlan lab (tl7b) whose real agents enforce it: web on h1 calls api on h2
// on one keep-alive connection, GET /v1/items 200, DELETE /v1/items 403, POST /v1/orders 200.
// A `pulumi up` dropping the HTTP rules allows the port whole (DELETE passes, not proxied).
// Needs root and dist/ built.
import * as path from "path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { REPO, TOOLS, pulumiEnv, removeStack } from "../support/pulumi";
import { startTestLab, TestLab } from "../support/lab";
import { cleanupAll } from "../support/cleanup";
import { LabEtcd, startEtcdOn } from "../agent/support/etcd";
import { addContainerNetns, checkBuilt, LabAgent, removeContainers, waitFor } from "../agent/support/agents";
import { requestsFrom, startBackend } from "../policy/support/http";
import type { ChildProcess } from "child_process";

const PROJECT = path.join(REPO, "test", "projects", "policy");
const LAB = "tl7b";
const OCTET = 188;
const [WEB_NS, API_NS] = ["tpolc188w", "tpolc188a"];
let lab: TestLab | undefined;
let etcd: LabEtcd | undefined;
let stack: Stack | undefined;
let agents: LabAgent[] = [];
let backend: ChildProcess | undefined;

const issueExample = {
  endpointSelector: { app: "api" },
  ingress: [
    { fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP", http: [{ method: "GET", path: "/v1/.*" }, { method: "POST", path: "/v1/orders" }] }] },
    { fromEntities: ["host"] },
  ],
};

beforeAll(async () => {
  checkBuilt();
  lab = await startTestLab(LAB, OCTET, "vxlan", 2);
  etcd = await startEtcdOn(`10.${OCTET}.0.254`);
  const pulumiCommand = await PulumiCommand.get({ root: TOOLS });
  stack = await LocalWorkspace.createOrSelectStack({ stackName: `l7-${process.pid}`, workDir: PROJECT }, { pulumiCommand, envVars: pulumiEnv() });
  await stack.setAllConfig({
    "policytest:etcd": { value: etcd.connection.endpoints[0] },
    "policytest:networkName": { value: LAB },
    "policytest:hosts": { value: lab.inventory.hosts.map((h) => h.name).join(",") },
    "policytest:clusterCidr": { value: `10.${OCTET}.128.0/17` },
    "policytest:policy": { value: JSON.stringify(issueExample) },
  });
}, 180_000);

afterAll(async () => {
  await cleanupAll([
    () => backend?.kill(),
    () => stack && removeStack(stack),
    ...agents.map((a) => () => a.stop()),
    () => removeContainers([WEB_NS, API_NS]),
    () => etcd?.stop(),
    () => lab?.down(),
  ]);
}, 300_000);

test("pulumi up of the issue's policy: GET 200, DELETE 403, POST 200 on one keep-alive connection; an update without HTTP rules stops proxying", async () => {
  const up = await stack!.up();
  expect(up.summary.resourceChanges).toMatchObject({ create: 5 });
  agents = lab!.inventory.hosts.map((h) => new LabAgent(h, { prefix: `/bpfnet/${LAB}`, etcd: etcd!.connection }));
  await Promise.all(agents.map((a) => a.start()));
  addContainerNetns(WEB_NS);
  addContainerNetns(API_NS);
  await agents[0].client.addEndpoint({ id: "web", netns: `/run/netns/${WEB_NS}`, labels: { app: "web" } });
  const api = (await agents[1].client.addEndpoint({ id: "api", netns: `/run/netns/${API_NS}`, labels: { app: "api" } })).endpoint.ip;
  backend = await startBackend(API_NS, [8080]);
  await waitFor("api enforcing with h2's proxy", async () => (await agents[1].client.getEndpoint("api"))?.ingress === "enforced" && (await agents[1].status()).l7?.port !== undefined, 60_000);

  // The first request may race web's identity reaching h2's ipcache: wait for GET to pass.
  await waitFor("web's GET allowed", () => requestsFrom(WEB_NS, api, 8080, ["GET /v1/items"]).out[0].status === 200, 60_000);
  const r = requestsFrom(WEB_NS, api, 8080, ["GET /v1/items", "DELETE /v1/items", 'POST /v1/orders {"item":7}', "GET /v1/items"]);
  expect([r.sockets, ...r.out.map((o) => o.status)]).toEqual([1, 200, 403, 200, 200]);
  expect(JSON.parse(r.out[2].body)).toMatchObject({ method: "POST", url: "/v1/orders", body: '{"item":7}' });

  // The same rule without HTTP rules, through `pulumi up`: the port is allowed whole, not proxied.
  await stack!.setConfig("policytest:policy", { value: JSON.stringify({ ...issueExample, ingress: [{ fromEndpoints: [{ app: "web" }], toPorts: [{ port: 8080, protocol: "TCP" }] }] }) });
  expect((await stack!.up()).summary.resourceChanges).toMatchObject({ update: 1 });
  await waitFor("DELETE passes, straight to the backend", () => {
    const o = requestsFrom(WEB_NS, api, 8080, ["DELETE /v1/items"]).out[0];
    return o.status === 200 && JSON.parse(o.body).xff === null;
  }, 60_000);
}, 600_000);
