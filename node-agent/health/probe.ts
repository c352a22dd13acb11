// The two probes of a health path, from the agent's (host) namespace: so a probe to a peer's
// health endpoint goes through bpf_host and the tunnel or the routed underlay, as containers'
// traffic does.
import * as http from "http";
import { tryExec } from "../daemon/exec";
import { HEALTH_HTTP_PORT, ProbeOutcome } from "./view";

/** One ICMP echo (iputils ping: no raw socket needed in Node). */
export async function icmpProbe(ip: string, timeoutMs: number): Promise<ProbeOutcome> {
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  const r = await tryExec("ping", ["-n", "-q", "-c", "1", "-W", String(seconds), ip], timeoutMs + 2000);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  if (r.ok && rtt) return { ok: true, latencyMs: Number(rtt[1]) };
  return { ok: false, error: /0 received/.test(r.stdout) ? `no ICMP echo reply within ${seconds} s` : (r.stderr.trim() || r.stdout.trim() || "ping failed").split("\n")[0] };
}

/** GET /hello on the health responder; ok on a 200. */
export function httpProbe(ip: string, timeoutMs: number, port = HEALTH_HTTP_PORT): Promise<ProbeOutcome> {
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    const req = http.get({ host: ip, port, path: "/hello", agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on("end", () => {
        const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
        resolve(res.statusCode === 200 ? { ok: true, latencyMs } : { ok: false, error: `HTTP ${res.statusCode} from ${ip}:${port}` });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no HTTP answer from ${ip}:${port} within ${timeoutMs} ms`)));
    req.on("error", (e) => resolve({ ok: false, error: e.message }));
  });
}

/** The health endpoint's path: ICMP, then HTTP; the latency is the ICMP round trip. */
export async function endpointProbe(ip: string | undefined, timeoutMs: number): Promise<ProbeOutcome> {
  if (!ip) return { ok: false, error: "the peer has published no health endpoint yet" };
  const icmp = await icmpProbe(ip, timeoutMs);
  if (!icmp.ok) return icmp;
  const web = await httpProbe(ip, timeoutMs);
  return web.ok ? icmp : web;
}
