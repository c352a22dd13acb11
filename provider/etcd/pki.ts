// The etcd PKI: a CA, one certificate per member (server and peer: etcd peers authenticate both
// ways) and a client certificate, made with node-forge. Pure apart from key generation.
import type * as Forge from "node-forge";

export interface MemberIdentity {
  name: string;
  /** Every address clients or peers use to reach this member (put in the certificate's SANs). */
  ips: string[];
}

export interface CertAndKey {
  certPem: string;
  keyPem: string;
}

const VALID_YEARS = 10;

const forgeLib = () => require("node-forge") as typeof Forge;

export function generateCa(clusterName: string): CertAndKey {
  return makeCert(forgeLib(), { cn: `${clusterName} etcd CA`, isCa: true });
}

/** A member's certificate serves clients and authenticates to peers (etcd uses it both ways). */
export function issueMemberCert(ca: CertAndKey, clusterName: string, m: MemberIdentity): CertAndKey {
  return makeCert(forgeLib(), {
    cn: `${clusterName} etcd ${m.name}`,
    issuer: ca,
    serverAuth: true,
    clientAuth: true,
    ips: [...new Set([...m.ips, "127.0.0.1"])],
    dns: [m.name, "localhost"],
  });
}

export function issueClientCert(ca: CertAndKey, clusterName: string): CertAndKey {
  return makeCert(forgeLib(), { cn: `${clusterName} bpfnet client`, issuer: ca, clientAuth: true });
}

/** Whether a certificate was signed by this CA and names exactly these addresses. */
export function certMatches(ca: CertAndKey, cert: CertAndKey, m: MemberIdentity): boolean {
  const forge = forgeLib();
  const c = forge.pki.certificateFromPem(cert.certPem);
  if (!forge.pki.certificateFromPem(ca.certPem).verify(c)) return false;
  const san = c.getExtension("subjectAltName") as { altNames?: { type: number; ip?: string }[] } | null;
  const ips = new Set((san?.altNames ?? []).filter((a) => a.type === 7).map((a) => a.ip));
  return [...new Set([...m.ips, "127.0.0.1"])].every((ip) => ips.has(ip)) && ips.size === new Set([...m.ips, "127.0.0.1"]).size;
}

interface CertSpec {
  cn: string;
  isCa?: boolean;
  issuer?: CertAndKey;
  serverAuth?: boolean;
  clientAuth?: boolean;
  ips?: string[];
  dns?: string[];
}

function makeCert(forge: typeof Forge, spec: CertSpec): CertAndKey {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  // Positive random serial (high bit cleared).
  cert.serialNumber = "0" + forge.util.bytesToHex(forge.random.getBytesSync(15));
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + VALID_YEARS * 365 * 24 * 3600 * 1000);
  const subject = [{ name: "commonName", value: spec.cn }, { name: "organizationName", value: "bpfnet" }];
  cert.setSubject(subject);
  const issuerCert = spec.issuer ? forge.pki.certificateFromPem(spec.issuer.certPem) : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  const extensions: object[] = [{ name: "basicConstraints", cA: !!spec.isCa, critical: true }];
  if (spec.isCa) {
    extensions.push({ name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true });
  } else {
    extensions.push({ name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true });
    extensions.push({ name: "extKeyUsage", serverAuth: !!spec.serverAuth, clientAuth: !!spec.clientAuth });
  }
  const altNames = [...(spec.dns ?? []).map((value) => ({ type: 2, value })), ...(spec.ips ?? []).map((ip) => ({ type: 7, ip }))];
  if (altNames.length) extensions.push({ name: "subjectAltName", altNames });
  extensions.push({ name: "subjectKeyIdentifier" });
  cert.setExtensions(extensions);
  const signingKey = spec.issuer ? forge.pki.privateKeyFromPem(spec.issuer.keyPem) : keys.privateKey;
  cert.sign(signingKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}
