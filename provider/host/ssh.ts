// SSH I/O over npm ssh2 with host-key verification, for dynamic providers.
// ssh2 is required inside the functions: dynamic providers are serialized, and a module-scope
// client or handle cannot be.
import type { Client, ClientChannel, ConnectConfig, SFTPWrapper } from "ssh2";
import type { SshConnection } from "./sshConnection";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface SshSession {
  /** Runs a command; resolves with its exit code and output whatever the code. */
  exec(command: string, stdin?: string | Buffer): Promise<ExecResult>;
  /** Runs a command; rejects, naming the host and the command, unless it exits 0. */
  run(command: string, stdin?: string | Buffer): Promise<string>;
  writeFile(path: string, data: string | Buffer, mode?: number): Promise<void>;
  /**
   * Runs a long-lived command, handing its stdout to onStdout as it arrives (nothing buffered);
   * resolves with its exit code and stderr when it ends, or when `signal` aborts. The command
   * runs on a pseudo-terminal (no echo, no CR/LF translation; stderr arrives on stdout) so that
   * closing the channel hangs it up: a command that only writes now and then would otherwise
   * outlive the session until its next write.
   */
  stream(command: string, onStdout: (chunk: Buffer) => void, signal?: AbortSignal): Promise<{ code: number; stderr: string }>;
}

/** SHA256 fingerprint of an SSH public key blob, in ssh-keygen's format. */
export function sshFingerprint(keyBlob: Buffer): string {
  const crypto = require("crypto") as typeof import("crypto");
  return "SHA256:" + crypto.createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "");
}

/** Opens a session (through the jump host when given), runs fn, and always closes. */
export async function withSsh<T>(conn: SshConnection, fn: (s: SshSession) => Promise<T>): Promise<T> {
  const clients: Client[] = [];
  try {
    const client = await connect(conn, clients);
    return await fn(session(client, conn));
  } finally {
    for (const c of clients.reverse()) c.end();
  }
}

async function connect(conn: SshConnection, opened: Client[]): Promise<Client> {
  const ssh2 = require("ssh2") as typeof import("ssh2");
  const port = conn.port ?? 22;
  let sock: ClientChannel | undefined;
  if (conn.jump) {
    const jump = await connect(conn.jump, opened);
    sock = await new Promise<ClientChannel>((resolve, reject) =>
      jump.forwardOut("127.0.0.1", 0, conn.host, port, (err, stream) =>
        err ? reject(new Error(`ssh: jump host ${conn.jump!.host} cannot reach ${conn.host}:${port}: ${err.message}`)) : resolve(stream),
      ),
    );
  }
  const client = new ssh2.Client();
  opened.push(client);
  let seen: string | undefined;
  const config: ConnectConfig = {
    host: conn.host,
    port,
    username: conn.user,
    privateKey: conn.privateKey,
    readyTimeout: conn.readyTimeoutMs ?? 30_000, // generous: a loaded 2-CPU host (or CI) can take >10 s to finish a handshake
    hostVerifier: (key: Buffer) => {
      seen = sshFingerprint(key);
      return seen === conn.hostKeyFingerprint;
    },
    ...(sock ? { sock } : {}),
  };
  await new Promise<void>((resolve, reject) => {
    client.once("ready", () => resolve());
    client.once("error", (err: Error) => {
      if (seen !== undefined && seen !== conn.hostKeyFingerprint) {
        reject(new Error(`ssh ${conn.user}@${conn.host}:${port}: host key ${seen} does not match the expected ${conn.hostKeyFingerprint}; refusing to connect`));
      } else {
        reject(new Error(`ssh ${conn.user}@${conn.host}:${port}: ${err.message}`));
      }
    });
    client.connect(config);
  });
  return client;
}

function session(client: Client, conn: SshConnection): SshSession {
  const where = `${conn.user}@${conn.host}`;
  const exec = (command: string, stdin?: string | Buffer) =>
    new Promise<ExecResult>((resolve, reject) => {
      client.exec(command, (err, stream) => {
        if (err) return reject(new Error(`ssh ${where}: cannot run \`${command}\`: ${err.message}`));
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let code = -1;
        stream.on("data", (d: Buffer) => out.push(d));
        stream.stderr.on("data", (d: Buffer) => errOut.push(d));
        stream.on("exit", (c: number | null) => (code = c ?? -1));
        stream.on("close", () => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(errOut).toString() }));
        stream.end(stdin);
      });
    });
  const stream = (command: string, onStdout: (chunk: Buffer) => void, signal?: AbortSignal) =>
    new Promise<{ code: number; stderr: string }>((resolve, reject) => {
      if (signal?.aborted) return resolve({ code: -1, stderr: "" });
      client.exec(command, { pty: { modes: { ECHO: 0, ONLCR: 0 } } }, (err, channel) => {
        if (err) return reject(new Error(`ssh ${where}: cannot run \`${command}\`: ${err.message}`));
        const errOut: Buffer[] = [];
        let code = -1;
        const abort = () => channel.close();
        signal?.addEventListener("abort", abort, { once: true });
        channel.on("data", onStdout);
        channel.stderr.on("data", (d: Buffer) => errOut.push(d));
        channel.on("exit", (c: number | null) => (code = c ?? -1));
        channel.on("close", () => {
          signal?.removeEventListener("abort", abort);
          resolve({ code, stderr: Buffer.concat(errOut).toString() });
        });
        channel.end();
      });
    });
  return {
    exec,
    stream,
    async run(command, stdin) {
      const r = await exec(command, stdin);
      if (r.code !== 0) throw new Error(`ssh ${where}: \`${command}\` exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
      return r.stdout;
    },
    writeFile: (path, data, mode = 0o644) =>
      new Promise<void>((resolve, reject) => {
        client.sftp((err: Error | undefined, sftp: SFTPWrapper) => {
          if (err) return reject(new Error(`ssh ${where}: sftp: ${err.message}`));
          // The mode given to open() only applies to a new file: chmod so an existing file
          // (a key rewritten by an update, one loosened by hand) gets it too.
          sftp.writeFile(path, data, { mode }, (werr) => {
            if (werr) {
              sftp.end();
              return reject(new Error(`ssh ${where}: writing ${path}: ${werr.message}`));
            }
            sftp.chmod(path, mode, (cerr) => {
              sftp.end();
              if (cerr) reject(new Error(`ssh ${where}: chmod ${mode.toString(8)} ${path}: ${cerr.message}`));
              else resolve();
            });
          });
        });
      }),
  };
}
