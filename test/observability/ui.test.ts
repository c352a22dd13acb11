/**
 * `bpfnet ui` in a real headless browser (Debian's chromium driven by puppeteer-core) against a
 * 2-host vxlan lab with real agents (thl4): the page loads and shows every host, the health
 * matrix and every endpoint with its address and labels; a drop caused by the test (a container
 * sending from a spoofed source) appears on the page within 2 s, and the per-reason counters
 * count it; all without a reload. --listen is validated (loopback unless --allow-remote).
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as net from "net";
import puppeteer, { Browser, Page } from "puppeteer-core";
import type { EndpointView } from "../../node-agent/api/types";
import { uiListen } from "../../node-agent/ui/snapshot";
import { CLI, inNetns, waitFor } from "../agent/support/agents";
import { AgentLab, startAgentLab } from "./support/agentLab";

// The page's globals for the functions puppeteer runs in the browser (no DOM lib in this build).
interface PageElement {
  innerText: string;
  textContent: string | null;
  children: ArrayLike<PageElement>;
}
declare const document: { querySelector(s: string): PageElement | null; querySelectorAll(s: string): ArrayLike<PageElement> & Iterable<PageElement> };

const CONTAINERS = ["thlca", "thlcb"];
const SPOOFED = "10.85.250.250"; // inside the cluster CIDR, nobody's address
let L: AgentLab | undefined;
let ui: ChildProcess | undefined;
let browser: Browser | undefined;
let page: Page | undefined;
let url = "";
let web: EndpointView;
let api: EndpointView;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The page's text of one table, as the user sees it. */
const tableText = (id: string) => page!.$eval(`#${id}`, (t) => (t as unknown as PageElement).innerText);

beforeAll(async () => {
  L = await startAgentLab({ name: "thl4", octet: 118, topology: "vxlan", hosts: 2, clusterCidr: "10.85.0.0/16" });
  for (const c of CONTAINERS) {
    spawnSync("ip", ["netns", "del", c]);
    execFileSync("ip", ["netns", "add", c]);
  }
  web = (await L.agents[0].client.addEndpoint({ id: "web", netns: "/run/netns/thlca", labels: { app: "web", tier: "front" } })).endpoint;
  api = (await L.agents[1].client.addEndpoint({ id: "api", netns: "/run/netns/thlcb", labels: { app: "api" } })).endpoint;
  expect(inNetns("thlca", ["ip", "addr", "add", `${SPOOFED}/32`, "dev", "eth0"]).status).toBe(0);

  const port = await freePort();
  url = `http://127.0.0.1:${port}/`;
  ui = spawn(process.execPath, [CLI, "ui", "--inventory", L.inventoryFile, "--listen", `127.0.0.1:${port}`], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  ui.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  ui.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  await waitFor(`bpfnet ui listening (${out})`, () => out.includes(`bpfnet ui: ${url}`), 30_000);
  browser = await puppeteer.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  page = await browser.newPage();
}, 240_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  if (ui && ui.exitCode === null) {
    const exited = new Promise((r) => ui!.once("exit", r));
    ui.kill("SIGTERM");
    await exited;
  }
  for (const c of CONTAINERS) spawnSync("ip", ["netns", "del", c]);
  await L?.down();
}, 90_000);

test("the page shows every host, the health matrix and every endpoint with address and labels", async () => {
  const res = await page!.goto(url, { waitUntil: "domcontentloaded" });
  expect(res!.status()).toBe(200);
  expect(res!.headers()["content-security-policy"]).toBe("default-src 'self'");
  await page!.waitForFunction(() => [...document.querySelectorAll("#hosts tbody tr")].filter((r) => r.innerText.includes("ready")).length === 2, { timeout: 30_000 });
  const hosts = await tableText("hosts");
  for (const a of L!.agents) expect(hosts).toMatch(new RegExp(`${a.host.name}\\s+ready\\s+vxlan\\s+${a.host.underlayIp.replace(/\./g, "\\.")}\\s+${L!.cidrs[a.host.name].replace(/\./g, "\\.")}`));
  // Every endpoint, the health endpoints too, with its address and labels.
  await page!.waitForFunction(() => document.querySelectorAll("#endpoints tbody tr").length === 4, { timeout: 30_000 });
  const eps = await tableText("endpoints");
  expect(eps).toMatch(new RegExp(`h1\\s+web\\s+${web.ip.replace(/\./g, "\\.")}\\s+app=web, tier=front`));
  expect(eps).toMatch(new RegExp(`h2\\s+api\\s+${api.ip.replace(/\./g, "\\.")}\\s+app=api`));
  expect(eps.match(/bpfnet-health\s+10\.85\.\d+\.\d+\s+bpfnet\.io\/entity=health/g)).toHaveLength(2);
  // The matrix fills in as the agents probe (every 2 s here): both paths ok, without a reload.
  await page!.waitForFunction(() => document.querySelector("#matrix-summary")?.textContent === "all paths ok", { timeout: 60_000 });
  expect(await page!.$eval('#matrix td[data-path="h1→h2"]', (td) => td.textContent)).toBe("ok");
  expect(await page!.$eval("#conn", (e) => e.textContent)).toBe("live");
}, 120_000);

test("a drop caused now appears on the page within 2 s, counted by reason", async () => {
  const spoof = () => inNetns("thlca", ["ping", "-c", "1", "-W", "1", "-I", SPOOFED, api.ip], 10_000);
  const dropRows = () => page!.$$eval("#flows tbody tr.drop", (rows) => rows.map((r) => (r as unknown as PageElement).innerText));
  // Until every host's monitor stream is subscribed, an event reaches no one: send until one shows.
  await waitFor("a first spoofed drop on the page", async () => {
    spoof();
    return (await dropRows()).some((r) => r.includes(SPOOFED));
  }, 60_000, 500);
  const seen = (await dropRows()).filter((r) => r.includes(SPOOFED)).length;
  // Now the measured one: the page must show it within 2 s of the packet.
  const sentAt = Date.now();
  spoof();
  await page!.waitForFunction(
    (ip, n) => [...document.querySelectorAll("#flows tbody tr.drop")].filter((r) => r.innerText.includes(ip)).length > n,
    { timeout: 2000, polling: 50 },
    SPOOFED,
    seen,
  );
  console.log(`ui: the spoofed packet's drop on the page ${Date.now() - sentAt} ms after it was sent (the ping itself waits up to 1 s)`);
  const row = (await dropRows()).find((r) => r.includes(SPOOFED))!;
  expect(row).toMatch(new RegExp(`h1\\s+drop\\s+spoofed-source\\s+${SPOOFED.replace(/\./g, "\\.")}\\s+${api.ip.replace(/\./g, "\\.")}\\s+1\\b`));
  // Live count and the datapath's counter (next snapshot) for the reason.
  await page!.waitForFunction(() => {
    const tr = document.querySelector('#counters tr[data-reason="spoofed-source"]');
    return tr !== null && Number(tr.children[1].textContent) >= 2 && Number(tr.children[2].textContent) >= 2;
  }, { timeout: 10_000 });
}, 120_000);

test("--listen: HOST:PORT, loopback unless --allow-remote; anything else refused naming the value", () => {
  expect(uiListen(new Map())).toEqual({ host: "127.0.0.1", port: 8490 });
  expect(uiListen(new Map([["listen", "127.0.0.2:9000"]]))).toEqual({ host: "127.0.0.2", port: 9000 });
  expect(uiListen(new Map([["listen", "10.0.0.1:9000"], ["allow-remote", ""]]))).toEqual({ host: "10.0.0.1", port: 9000 });
  expect(() => uiListen(new Map([["listen", "0.0.0.0:9000"]]))).toThrow('--listen "0.0.0.0:9000" is not a loopback address');
  for (const bad of ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:80; rm -rf /", "$(id):80", "`id`:80", "127.0.0.1:80\n", "..:80", "'a':80", "a b:80", ""]) {
    expect(() => uiListen(new Map([["listen", bad]]))).toThrow(`--listen must be "HOST:PORT" (an IPv4 address or a DNS name, and a port from 1 to 65535), got ${JSON.stringify(bad)}`);
  }
});
