// The test etcd served over mutual TLS on an address other than 127.0.0.1 (bench/peers.ts puts it
// on a lab's management bridge for bpfnet's agents and flanneld alike): the server certificate
// must name that address, or every client's hostname check refuses it.
import { X509Certificate } from "crypto";
import { withEtcd } from "../../provider/etcd/etcdClient";
import { makeTls, startEtcd } from "../support/etcd";

// Another loopback address: nothing leaves the machine.
const HOST = "127.0.0.2";

test("the server certificate names the address served on; a client with the certificate reads and writes", async () => {
  const etcd = await startEtcd({ tls: true, host: HOST });
  try {
    expect(etcd.endpoints[0]).toMatch(/^https:\/\/127\.0\.0\.2:\d+$/);
    expect(new X509Certificate(etcd.tls!.serverCertPem).subjectAltName).toContain(`IP Address:${HOST}`);
    await withEtcd(etcd.connection, async (c) => {
      await c.put("/peers/k").value("v");
      expect(await c.get("/peers/k").string()).toBe("v");
    });
  } finally {
    await etcd.stop();
  }
});

test("a certificate that does not name the address is refused by the client's hostname check", async () => {
  expect(new X509Certificate(makeTls().serverCertPem).subjectAltName).not.toContain(HOST);
  const etcd = await startEtcd({ tls: true, host: HOST, tlsMaterial: makeTls() });
  try {
    await expect(withEtcd(etcd.connection, (c) => c.get("/peers/k").string())).rejects.toThrow();
  } finally {
    await etcd.stop();
  }
});
