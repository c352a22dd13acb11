// EtcdPki: the cluster's CA and certificates, made once and kept in state (keys as secrets).
// The CA outlives membership changes: adding or re-addressing a member issues only its own
// certificate, so a rolling update never mixes two CAs.
import * as pulumi from "@pulumi/pulumi";
import { CertAndKey, ETCD_ROOT_USER, MemberIdentity, certFacts, certMatches, generateCa, issueClientCert, issueMemberCert } from "./pki";
import { isUnknown } from "../common/unknown";
import { lightProvider } from "../common/providerStub";

/** EtcdPki's arguments: the cluster's name and each member's name and addresses (put in its certificate). */
export interface EtcdPkiArgs {
  clusterName: pulumi.Input<string>;
  members: pulumi.Input<pulumi.Input<MemberIdentity>[]>;
}

interface PkiInputs {
  clusterName: string;
  members: MemberIdentity[];
}

interface PkiOutputs extends PkiInputs {
  caPem: string;
  caKeyPem: string;
  memberCerts: Record<string, string>;
  memberKeys: Record<string, string>;
  clientCertPem: string;
  clientKeyPem: string;
}

/** The admin certificate is kept while it is root's (one from before etcd auth was on is re-issued). */
const adminCertCurrent = (prior: PkiOutputs) => certFacts(prior.clientCertPem).commonName === ETCD_ROOT_USER;

function issue(inputs: PkiInputs, prior?: PkiOutputs): PkiOutputs {
  const ca: CertAndKey = prior ? { certPem: prior.caPem, keyPem: prior.caKeyPem } : generateCa(inputs.clusterName);
  const client = prior && adminCertCurrent(prior) ? { certPem: prior.clientCertPem, keyPem: prior.clientKeyPem } : issueClientCert(ca, inputs.clusterName);
  const memberCerts: Record<string, string> = {};
  const memberKeys: Record<string, string> = {};
  for (const m of inputs.members) {
    const old = prior?.memberCerts[m.name] ? { certPem: prior.memberCerts[m.name], keyPem: prior.memberKeys[m.name] } : undefined;
    const cert = old && certMatches(ca, old, m) ? old : issueMemberCert(ca, inputs.clusterName, m);
    memberCerts[m.name] = cert.certPem;
    memberKeys[m.name] = cert.keyPem;
  }
  return { ...inputs, caPem: ca.certPem, caKeyPem: ca.keyPem, memberCerts, memberKeys, clientCertPem: client.certPem, clientKeyPem: client.keyPem };
}

export const etcdPkiProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds: PkiInputs, news: PkiInputs) {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    if (!isUnknown(news.members)) {
      const names = (news.members ?? []).map((m) => m.name);
      if (names.length === 0) failures.push({ property: "members", reason: "members must list at least one etcd member" });
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup) failures.push({ property: "members", reason: `members has "${dup}" twice` });
    }
    return { inputs: news, failures };
  },
  async diff(_id: string, olds: PkiOutputs, news: PkiInputs) {
    const replaces = olds.clusterName !== news.clusterName ? ["clusterName"] : [];
    const ca = { certPem: olds.caPem, keyPem: olds.caKeyPem };
    const stale = !adminCertCurrent(olds) || olds.members.some((m) => !olds.memberCerts[m.name] || !certMatches(ca, { certPem: olds.memberCerts[m.name], keyPem: "" }, m));
    return { changes: replaces.length > 0 || stale || JSON.stringify(olds.members) !== JSON.stringify(news.members), replaces };
  },
  async create(inputs: PkiInputs) {
    return { id: `${inputs.clusterName}-pki`, outs: issue(inputs) };
  },
  async update(_id: string, olds: PkiOutputs, news: PkiInputs) {
    return { outs: issue(news, olds) };
  },
  async read(id: string, props: PkiOutputs) {
    return { id, props }; // lives only in state
  },
};

/** The etcd cluster's CA, member certificates and client certificate, made by the program; keys are secret outputs. */
export class EtcdPki extends pulumi.dynamic.Resource {
  declare public readonly caPem: pulumi.Output<string>;
  /** Secret: signs the per-host client certificates (EtcdHostAccess). */
  declare public readonly caKeyPem: pulumi.Output<string>;
  declare public readonly memberCerts: pulumi.Output<Record<string, string>>;
  declare public readonly memberKeys: pulumi.Output<Record<string, string>>;
  declare public readonly clientCertPem: pulumi.Output<string>;
  declare public readonly clientKeyPem: pulumi.Output<string>;

  constructor(name: string, args: EtcdPkiArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      lightProvider(etcdPkiProvider, __filename, "etcdPkiProvider"),
      name,
      { ...args, caPem: undefined, caKeyPem: undefined, memberCerts: undefined, memberKeys: undefined, clientCertPem: undefined, clientKeyPem: undefined },
      { ...opts, additionalSecretOutputs: ["caKeyPem", "memberKeys", "clientKeyPem"] },
      "bpfnet",
      "EtcdPki",
    );
  }
}
