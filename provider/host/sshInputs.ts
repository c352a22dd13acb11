// How SSH-backed resources carry a connection in state: the endpoint in plain view, the private
// keys as a separate input that is always secret (even when the program passed them plainly).
import * as pulumi from "@pulumi/pulumi";
import { SshConnection, SshEndpoint, endpointOf, keysOf } from "./sshConnection";

export interface SshResourceInputs {
  connection: pulumi.Output<SshEndpoint>;
  privateKeys: pulumi.Output<string[]>;
}

export function sshResourceInputs(connection: pulumi.Input<SshConnection>): SshResourceInputs {
  const c = pulumi.output(connection);
  return { connection: c.apply(endpointOf), privateKeys: pulumi.secret(c.apply(keysOf)) };
}

/** Resource options that keep the keys secret in outputs too. */
export const SSH_SECRET_OUTPUTS = ["privateKeys"];
