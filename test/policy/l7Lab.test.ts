/**
 * L7 HTTP policy end to end in a 2-host vxlan lab (tl7a) with real agents and BPF: web on h1
 * calls api on h2 through the overlay. Port 8080 has HTTP rules (GET /v1/.*, POST /v1/orders):
 * the datapath hands those connections to h2's agent proxy (bpf_sk_assign + the agent's policy
 * route), which judges every request, forwards allowed ones (its upstream mark passes api's
 * ingress) and answers 403 to the rest. Port 9090 is allowed at L4 and is not proxied. The
 * intruder gets nothing through. Needs root and a built tree (scripts/setup).
 */
import { addContainerNetns, removeContainers, waitFor } from "../agent/support/agents";
import { requestsFrom, startBackend } from "./support/http";
import { startWebApiLab, WebApiLab } from "./support/webApiLab";

let env: WebApiLab | undefined;
/** A second web endpoint, on api's host (h2): its calls reach the proxy from bpf_lxc, not through the tunnel. */
const NEIGHBOUR = "tpolc187v";

const requests = (from: "web" | "intruder", port: number, reqs: string[]) => requestsFrom(env!.netns[from], env!.ip.api, port, reqs);

beforeAll(async () => {
  env = await startWebApiLab("tl7a", 187, [
    { port: 8080, protocol: "TCP", http: [{ method: "GET", path: "/v1/.*" }, { method: "POST", path: "/v1/orders" }] },
    { port: 9090, protocol: "TCP" },
  ]);
  env.children.push(await startBackend(env.netns.api, [8080, 9090]));
  addContainerNetns(NEIGHBOUR);
  await env.agents[1].client.addEndpoint({ id: "web-h2", netns: `/run/netns/${NEIGHBOUR}`, labels: { app: "web" } });
  await waitFor("h2's proxy ready", async () => (await env!.agents[1].status()).l7?.port, 30_000);
}, 180_000);

afterAll(async () => {
  await env?.down([() => removeContainers([NEIGHBOUR])]);
}, 90_000);

test("GET /v1/items 200, DELETE /v1/items 403, POST /v1/orders 200, on one keep-alive connection; the backend sees the client's address", async () => {
  const before = (await env!.agents[1].status()).l7!;
  const r = requests("web", 8080, ["GET /v1/items", "DELETE /v1/items", 'POST /v1/orders {"item":7}', "GET /v1/../admin"]);
  expect(r.sockets).toBe(1);
  expect(r.out.map((o) => o.status)).toEqual([200, 403, 200, 403]);
  const got = r.out.filter((o) => o.status === 200).map((o) => JSON.parse(o.body));
  expect(got.map((g) => `${g.method} ${g.url} ${g.body}`)).toEqual(["GET /v1/items ", 'POST /v1/orders {"item":7}']);
  // The proxy connects from h2: the client's own address travels in X-Forwarded-For.
  expect(got.map((g) => g.xff)).toEqual([env!.ip.web, env!.ip.web]);
  const after = (await env!.agents[1].status()).l7!;
  expect([after.allowed - before.allowed, after.denied - before.denied]).toEqual([2, 2]);
});

test("a denied request and then an allowed one on the same connection: each judged on its own", () => {
  const r = requests("web", 8080, ["DELETE /v1/items", "GET /v1/items"]);
  expect([r.sockets, ...r.out.map((o) => o.status)]).toEqual([1, 403, 200]);
});

test("a port without HTTP rules is not proxied: any method passes, the backend sees the client itself", () => {
  const r = requests("web", 9090, ["DELETE /anything"]);
  expect(r.out[0].status).toBe(200);
  expect(JSON.parse(r.out[0].body)).toMatchObject({ port: 9090, method: "DELETE", remote: env!.ip.web, xff: null });
});

test("the intruder reaches neither port", () => {
  for (const port of [8080, 9090]) expect(requests("intruder", port, ["GET /v1/items"]).out[0].status).toBe(0);
});

test("from a web endpoint on api's own host: judged the same, per request", async () => {
  await waitFor("web-h2's GET allowed", () => requestsFrom(NEIGHBOUR, env!.ip.api, 8080, ["GET /v1/items"]).out[0].status === 200, 30_000);
  const r = requestsFrom(NEIGHBOUR, env!.ip.api, 8080, ["DELETE /v1/items", "GET /v1/items", 'POST /v1/orders {"n":1}']);
  expect([r.sockets, ...r.out.map((o) => o.status)]).toEqual([1, 403, 200, 200]);
});
