// The etcd PKI: a CA, one certificate per member (server and peer: etcd peers authenticate both
// ways), the admin client certificate and one client certificate per host, made with node-forge.
// Pure apart from key generation and the clock.
//
// With etcd's auth on and client-cert-auth, etcd takes a client certificate's Common Name as the
// user name. The admin certificate and the member certificates are "root": members use theirs
// for MemberAdd/MemberRemove, which need root once auth is on (a member host holds the data
// anyway). A host's certificate names that host's own user (see hostAccessSpec.ts).
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
const DAY_MS = 24 * 3600 * 1000;

/** etcd's superuser: the admin identity of the Pulumi side, and the CN of member certificates. */
export const ETCD_ROOT_USER = "root";

const forgeLib = () => require("node-forge") as typeof Forge;

export function generateCa(clusterName: string): CertAndKey {
  return makeCert(forgeLib(), { cn: `${clusterName} etcd CA`, isCa: true });
}

/** A member's certificate serves clients and authenticates to peers (etcd uses it both ways). */
export function issueMemberCert(ca: CertAndKey, clusterName: string, m: MemberIdentity): CertAndKey {
  return makeCert(forgeLib(), {
    cn: ETCD_ROOT_USER,
    org: `${clusterName} etcd ${m.name}`,
    issuer: ca,
    serverAuth: true,
    clientAuth: true,
    ips: [...new Set([...m.ips, "127.0.0.1"])],
    dns: [m.name, "localhost"],
  });
}

/** The admin client certificate (CN root): what the Pulumi side talks to etcd with. */
export function issueClientCert(ca: CertAndKey, clusterName: string): CertAndKey {
  return makeCert(forgeLib(), { cn: ETCD_ROOT_USER, org: `${clusterName} bpfnet admin`, issuer: ca, clientAuth: true });
}

/** A host's client certificate: CN = its etcd user, valid `validDays` from now. */
export function issueHostCert(ca: CertAndKey, user: string, validDays: number): CertAndKey {
  return makeCert(forgeLib(), { cn: user, issuer: ca, clientAuth: true, validDays });
}

/** What a certificate says about itself: its subject's CN, its expiry, and whether `ca` signed it. */
export function certFacts(certPem: string, ca?: CertAndKey): { commonName: string; notAfter: Date; signedByCa: boolean } {
  const forge = forgeLib();
  const c = forge.pki.certificateFromPem(certPem);
  const cn = c.subject.getField("CN") as { value?: string } | null;
  let signedByCa = false;
  if (ca) {
    try {
      signedByCa = forge.pki.certificateFromPem(ca.certPem).verify(c);
    } catch {
      signedByCa = false; // a different issuer: forge throws instead of returning false
    }
  }
  return { commonName: String(cn?.value ?? ""), notAfter: c.validity.notAfter, signedByCa };
}

/** True when a certificate expires within `renewBeforeDays` of `now` (or already has). */
export function nearsExpiry(notAfter: Date, renewBeforeDays: number, now: Date): boolean {
  return notAfter.getTime() - now.getTime() <= renewBeforeDays * DAY_MS;
}

/** Whether a member certificate was signed by this CA, is root's (see above), and names exactly these addresses. */
export function certMatches(ca: CertAndKey, cert: CertAndKey, m: MemberIdentity): boolean {
  const facts = certFacts(cert.certPem, ca);
  if (!facts.signedByCa || facts.commonName !== ETCD_ROOT_USER) return false;
  const forge = forgeLib();
  const c = forge.pki.certificateFromPem(cert.certPem);
  const san = c.getExtension("subjectAltName") as { altNames?: { type: number; ip?: string }[] } | null;
  const ips = new Set((san?.altNames ?? []).filter((a) => a.type === 7).map((a) => a.ip));
  return [...new Set([...m.ips, "127.0.0.1"])].every((ip) => ips.has(ip)) && ips.size === new Set([...m.ips, "127.0.0.1"]).size;
}

/** Any certificate from a spec: for other PKIs built on the same issuer (e.g. the lab's Kubernetes CA). */
export function issueCertificate(spec: CertSpec): CertAndKey {
  return makeCert(forgeLib(), spec);
}

export interface CertSpec {
  cn: string;
  /** Organization: says what the certificate is for when the CN is a shared user name. */
  org?: string;
  /** Validity from now (default VALID_YEARS years). */
  validDays?: number;
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
  // 16 random bytes, the first in 0x40-0x7f: positive and minimally DER-encoded, as Go's x509 (etcd,
  // Kubernetes) and OpenSSL 3 require ("0" + hex made an odd-length string, and forge's padding could
  // give a leading 0x00 before a byte below 0x80: "x509: malformed serial number", now and then).
  const serial = forge.random.getBytesSync(16);
  cert.serialNumber = forge.util.bytesToHex(String.fromCharCode((serial.charCodeAt(0) & 0x3f) | 0x40) + serial.slice(1));
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + (spec.validDays ?? VALID_YEARS * 365) * DAY_MS);
  const subject = [{ name: "commonName", value: spec.cn }, { name: "organizationName", value: spec.org ?? "bpfnet" }];
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
