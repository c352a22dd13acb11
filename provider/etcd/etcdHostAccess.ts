// EtcdHostAccess: one host's own identity in etcd, least privilege (hostAccessSpec.ts). With the
// admin identity it creates the host's role (its grants) and user; the host authenticates as
// that user either by a client certificate (CN = user) issued here from the cluster's CA, or,
// for an etcd bpfnet did not provision (no CA key), by a random password. The outputs are the
// connection the host's agent uses (secret).
//
// Rotation: `pulumi up` re-issues the credentials when the certificate expires within
// `renewBeforeDays`, and whenever `rotation` changes (on demand), under a new user of the next
// generation; the previous user is deleted, so the old certificate or password is refused at
// once. The agent then gets its new config (NodeAgent redeploys it).
// Refresh finds a role or user changed or deleted by hand (drift); delete revokes: the user
// and the role are removed, so the host's certificate or password opens nothing any more, and
// the lease of its registration is revoked (etcd does not re-check a live lease's keepalives).
import * as pulumi from "@pulumi/pulumi";
import { EtcdConnection, connectionProblems, plainConnection, withEtcd } from "./etcdClient";
import { authEnabled, ensureRole, ensureUser, removeUserAndRole, revokeLeaseOf, roleGrants, userRoles } from "./etcdAuthOps";
import { grantDifference, hostAccessProblems, hostGrants, hostRoleName, hostUserName, toEtcdRange } from "./hostAccessSpec";
import { nodeKey } from "./keys";
import { CertAndKey, certFacts, issueHostCert, nearsExpiry } from "./pki";
import { isUnknown } from "../common/unknown";
import { lightProvider } from "../common/providerStub";

export const DEFAULT_VALIDITY_DAYS = 365;
export const DEFAULT_RENEW_BEFORE_DAYS = 30;

export interface EtcdHostAccessArgs {
  /** The admin connection (root): creates the role and user. */
  connection: pulumi.Input<EtcdConnection>;
  networkPrefix: pulumi.Input<string>;
  hostName: pulumi.Input<string>;
  /** The cluster's CA (EtcdPki): the host gets a client certificate. Without it, a password. */
  ca?: pulumi.Input<CertAndKey>;
  /** Password identity only: a TLS client certificate for the agent's transport, when etcd requires one (never the admin's). */
  transport?: pulumi.Input<CertAndKey>;
  /** Certificate lifetime (default 365 days). */
  validityDays?: pulumi.Input<number>;
  /** `pulumi up` re-issues the certificate when it expires within this many days (default 30). */
  renewBeforeDays?: pulumi.Input<number>;
  /** Any value; changing it re-issues the host's credentials now. */
  rotation?: pulumi.Input<string>;
}

interface AccessInputs {
  connection: EtcdConnection;
  networkPrefix: string;
  hostName: string;
  ca?: CertAndKey;
  transport?: CertAndKey;
  validityDays?: number;
  renewBeforeDays?: number;
  rotation?: string;
}

interface AccessOutputs extends AccessInputs {
  /** Counts issued credentials; part of the user name. */
  generation: number;
  userName: string;
  roleName: string;
  /** The connection the host's agent uses (secret). */
  agentConnection: EtcdConnection;
  /** Expiry of the host's certificate (ISO), "" for a password identity. */
  notAfter: string;
  /** What refresh found wrong in etcd ("" when the role and user are as granted). */
  drift: string;
}

const validity = (i: AccessInputs) => i.validityDays ?? DEFAULT_VALIDITY_DAYS;
const renewBefore = (i: AccessInputs) => i.renewBeforeDays ?? DEFAULT_RENEW_BEFORE_DAYS;

/** Why the credentials in `olds` cannot serve `news` (so new ones are issued), or undefined. */
export function reissueReason(olds: AccessOutputs, news: AccessInputs, now: Date): string | undefined {
  if ((olds.rotation ?? "") !== (news.rotation ?? "")) return "rotation requested";
  if (!!olds.ca !== !!news.ca) return "identity kind changed";
  if (news.ca) {
    const facts = certFacts(olds.agentConnection.certPem!, news.ca);
    if (!facts.signedByCa) return "the CA changed";
    if (facts.commonName !== hostUserName(news.networkPrefix, news.hostName, olds.generation)) return "the user name changed";
    if (nearsExpiry(facts.notAfter, renewBefore(news), now)) return `the certificate expires ${facts.notAfter.toISOString()}`;
  }
  return undefined;
}

/** Makes the role, the user and (when needed) new credentials; returns the outputs. */
async function apply(inputs: AccessInputs, prior?: AccessOutputs): Promise<AccessOutputs> {
  const reissue = !prior || reissueReason(prior, inputs, new Date()) !== undefined;
  const generation = prior ? prior.generation + (reissue ? 1 : 0) : 1;
  const userName = hostUserName(inputs.networkPrefix, inputs.hostName, generation);
  const roleName = hostRoleName(inputs.networkPrefix, inputs.hostName);
  const base = { endpoints: inputs.connection.endpoints, ...(inputs.connection.caPem ? { caPem: inputs.connection.caPem } : {}) };
  let agentConnection: EtcdConnection;
  let notAfter = "";
  if (inputs.ca) {
    const cert = reissue ? issueHostCert(inputs.ca, userName, validity(inputs)) : { certPem: prior!.agentConnection.certPem!, keyPem: prior!.agentConnection.keyPem! };
    agentConnection = { ...base, certPem: cert.certPem, keyPem: cert.keyPem };
    notAfter = certFacts(cert.certPem).notAfter.toISOString();
  } else {
    const password = reissue ? (require("crypto") as typeof import("crypto")).randomBytes(24).toString("base64url") : prior!.agentConnection.password!;
    agentConnection = { ...base, ...(inputs.transport ? { certPem: inputs.transport.certPem, keyPem: inputs.transport.keyPem } : {}), username: userName, password };
  }
  await withEtcd(inputs.connection, async (c) => {
    // A role means nothing while auth is off: say so instead of pretending.
    if (!(await authEnabled(c))) {
      throw new Error(
        `etcd at ${inputs.connection.endpoints.join(", ")} has authentication off, so a per-host user would not limit host ${inputs.hostName}: ` +
          `turn auth on (a root user, then \`etcdctl auth enable\`) and give its credentials, or set etcd.hostCredentials: "shared"`,
      );
    }
    await ensureRole(c, roleName, hostGrants(inputs.networkPrefix, inputs.hostName).map(toEtcdRange));
    await ensureUser(c, userName, [roleName], agentConnection.password);
    // The previous generation's credentials are revoked now, not when they expire.
    if (prior && prior.userName !== userName) await removeUserAndRole(c, prior.userName, undefined);
  });
  return {
    ...inputs,
    generation,
    userName,
    roleName,
    agentConnection: plainConnection(agentConnection),
    notAfter,
    drift: "",
  };
}

/** What is wrong with the host's role and user in etcd ("" when nothing). */
async function observeDrift(props: AccessOutputs): Promise<string> {
  return withEtcd(props.connection, async (c) => {
    const problems: string[] = [];
    const roles = await userRoles(c, props.userName);
    if (roles === undefined) problems.push(`user ${props.userName} is missing`);
    else if (roles.length !== 1 || roles[0] !== props.roleName) problems.push(`user ${props.userName} has roles [${roles.join(", ")}], expected [${props.roleName}]`);
    const grants = await roleGrants(c, props.roleName);
    if (grants === undefined) problems.push(`role ${props.roleName} is missing`);
    else {
      const d = grantDifference(hostGrants(props.networkPrefix, props.hostName).map(toEtcdRange), grants);
      if (d.grant.length || d.revoke.length) problems.push(`role ${props.roleName} lacks ${d.grant.length} and has ${d.revoke.length} extra grant(s)`);
    }
    return problems.join("; ");
  });
}

export const etcdHostAccessProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds: AccessInputs, news: AccessInputs) {
    const failures: pulumi.dynamic.CheckFailure[] = connectionProblems(news.connection);
    const known = (v: unknown) => v !== undefined && !isUnknown(v);
    if (known(news.networkPrefix) && known(news.hostName)) {
      failures.push(...hostAccessProblems(news.networkPrefix, news.hostName));
    }
    const days = (field: "validityDays" | "renewBeforeDays", min: number) => {
      const v = news[field];
      if (known(v) && !(Number.isInteger(v) && (v as number) >= min && (v as number) <= 3650)) {
        failures.push({ property: field, reason: `${field} must be a whole number of days from ${min} to 3650, got ${JSON.stringify(v)}` });
      }
    };
    days("validityDays", 1);
    days("renewBeforeDays", 0);
    if (known(news.validityDays) && known(news.renewBeforeDays) && news.renewBeforeDays! >= news.validityDays!) {
      failures.push({ property: "renewBeforeDays", reason: `renewBeforeDays (${news.renewBeforeDays}) must be less than validityDays (${news.validityDays}), or every pulumi up would re-issue` });
    }
    if (known(news.transport)) {
      const t = news.transport as Partial<CertAndKey>;
      for (const k of ["certPem", "keyPem"] as const) {
        const v = t?.[k];
        if (known(v) && !(typeof v === "string" && /^-----BEGIN [A-Z ]+-----\r?\n[A-Za-z0-9+/=\r\n]+-----END [A-Z ]+-----\s*$/.test(v))) {
          failures.push({ property: "transport", reason: `transport.${k} must be one PEM block, got ${JSON.stringify(String(v)).slice(0, 80)}` });
        }
      }
    }
    if (known(news.rotation) && (typeof news.rotation !== "string" || news.rotation.length > 256)) {
      failures.push({ property: "rotation", reason: `rotation must be a string of at most 256 characters, got ${JSON.stringify(news.rotation).slice(0, 80)}` });
    }
    return { inputs: news, failures };
  },

  async diff(_id: string, olds: AccessOutputs, news: AccessInputs) {
    const replaces = olds.networkPrefix !== news.networkPrefix || olds.hostName !== news.hostName ? ["hostName"] : [];
    const same = (k: keyof AccessInputs) => JSON.stringify(olds[k] ?? null) === JSON.stringify(news[k] ?? null);
    const changed = !(["connection", "ca", "transport", "validityDays", "renewBeforeDays", "rotation"] as const).every(same);
    const due = reissueReason(olds, news, new Date()) !== undefined;
    return { changes: changed || due || olds.drift !== "" || replaces.length > 0, replaces, deleteBeforeReplace: true };
  },

  async create(inputs: AccessInputs) {
    const outs = await apply(inputs);
    return { id: outs.roleName, outs };
  },

  async update(_id: string, olds: AccessOutputs, news: AccessInputs) {
    return { outs: await apply(news, olds) };
  },

  async read(id: string, props: AccessOutputs) {
    return { id, props: { ...props, drift: await observeDrift(props) } };
  },

  async delete(_id: string, props: AccessOutputs) {
    await withEtcd(props.connection, async (c) => {
      await removeUserAndRole(c, props.userName, props.roleName);
      // A registration still kept alive (an agent that could not be stopped) goes now.
      await revokeLeaseOf(c, nodeKey(props.networkPrefix, props.hostName));
    });
  },
};

export class EtcdHostAccess extends pulumi.dynamic.Resource {
  declare public readonly userName: pulumi.Output<string>;
  /** Secret: what the host's agent connects with (its own certificate or password). */
  declare public readonly agentConnection: pulumi.Output<EtcdConnection>;
  declare public readonly notAfter: pulumi.Output<string>;
  declare public readonly drift: pulumi.Output<string>;

  constructor(name: string, args: EtcdHostAccessArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      lightProvider(etcdHostAccessProvider, __filename, "etcdHostAccessProvider"),
      name,
      {
        connection: pulumi.secret(args.connection),
        networkPrefix: args.networkPrefix,
        hostName: args.hostName,
        ca: args.ca === undefined ? undefined : pulumi.secret(args.ca),
        transport: args.transport === undefined ? undefined : pulumi.secret(args.transport),
        validityDays: args.validityDays,
        renewBeforeDays: args.renewBeforeDays,
        rotation: args.rotation,
        userName: undefined,
        roleName: undefined,
        agentConnection: undefined,
        notAfter: undefined,
        drift: undefined,
      },
      { ...opts, additionalSecretOutputs: ["connection", "ca", "transport", "agentConnection"] },
      "bpfnet",
      "EtcdHostAccess",
    );
  }
}
