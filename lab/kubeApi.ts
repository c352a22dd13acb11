// A minimal Kubernetes API client over HTTPS with a client certificate: enough for the lab
// (readiness, Node objects) and for tests that check objects through the real API server.
// No dependency: @kubernetes/client-node is not needed for a handful of GET/POST/DELETE calls.
import * as https from "https";

/** How to reach an API server as one identity (the lab's admin kubeconfig holds the same). */
export interface KubeAccess {
  /** e.g. "https://10.125.0.11:16443" */
  server: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface KubeResponse {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of the API, checked by callers
}

/** One API call; `body` is sent as JSON (or as a merge patch for PATCH). Never throws on HTTP status. */
export function kubeRequest(access: KubeAccess, method: string, path: string, body?: unknown, timeoutMs = 15_000): Promise<KubeResponse> {
  const url = new URL(path, access.server);
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        ca: access.caPem,
        // No certificate: the request is anonymous (what an outsider gets).
        ...(access.certPem ? { cert: access.certPem, key: access.keyPem } : {}),
        agent: false,
        timeout: timeoutMs,
        headers: {
          accept: "application/json",
          ...(data ? { "content-type": method === "PATCH" ? "application/merge-patch+json" : "application/json", "content-length": data.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* plain text (e.g. /readyz) */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${url.href}: no answer in ${timeoutMs} ms`)));
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

/** GET that returns undefined on 404 and throws on any other failure. */
export async function kubeGet(access: KubeAccess, path: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await kubeRequest(access, "GET", path);
  if (r.status === 404) return undefined;
  if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  return r.body;
}

/** A kubeconfig for one identity (certificate data inline, so the file alone is enough). */
export function kubeconfigYaml(name: string, access: KubeAccess, user: string): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  // JSON is valid YAML: no YAML library needed, no quoting pitfalls.
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name, cluster: { server: access.server, "certificate-authority-data": b64(access.caPem) } }],
      users: [{ name: user, user: { "client-certificate-data": b64(access.certPem), "client-key-data": b64(access.keyPem) } }],
      contexts: [{ name, context: { cluster: name, user } }],
      "current-context": name,
    },
    null,
    2,
  );
}
