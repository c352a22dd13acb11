// The CNI deletion queue (Cilium's "deletion-queue"): a DEL that cannot reach the agent is
// recorded here and succeeds (CNI: DEL must succeed when the container is gone, or a kubelet
// retries forever); the agent drains the queue when it starts, before it adopts endpoints.
//
// One file per endpoint id, `<id>.del`, written to a temporary name and renamed in (a reader
// never sees half an entry). No lock file: the agent drains once before restore and once more
// after its API listens, and the plugin, after queueing, tries the API once more and removes the
// entry itself when the agent answers. Whichever order a starting agent and a plugin take, the
// entry is consumed (deletes are idempotent). Names and contents are checked as strictly as the
// API checks ids: nothing from an entry reaches a shell or a path outside the queue.
import * as fs from "fs";
import * as path from "path";
import { ENDPOINT_ID } from "../api/ids";

/** The queue's directory next to the agent's API socket (both under the agent's state dir). */
export function deletionQueueDir(agentSocket: string): string {
  return path.join(path.dirname(agentSocket), "cni-delete-queue");
}

/** At most this many entries: a runaway caller cannot fill the disk. */
export const MAX_QUEUE_ENTRIES = 4096;
/** Largest entry file read. */
export const MAX_ENTRY_BYTES = 1024;
const SUFFIX = ".del";

export interface DeletionEntry {
  id: string;
  queuedAt: string;
}

/** Pure: the entry file's name for an endpoint id; throws on an id the API would refuse. */
export function entryFileName(id: string): string {
  if (!ENDPOINT_ID.test(id)) throw new RangeError(`endpoint id must be 1-253 characters of letters, digits, ".", "_" or "-", starting with a letter or digit, got ${JSON.stringify(id)}`);
  return id + SUFFIX;
}

/** Pure: the entry in a queue file, or a reason it is refused. */
export function parseEntry(fileName: string, text: string): DeletionEntry | string {
  if (!fileName.endsWith(SUFFIX)) return "not an entry name";
  const id = fileName.slice(0, -SUFFIX.length);
  if (!ENDPOINT_ID.test(id)) return `invalid endpoint id ${JSON.stringify(id)}`;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return "not JSON";
  }
  const r = raw as Partial<DeletionEntry> | null;
  if (!r || typeof r !== "object" || r.id !== id) return "its id differs from its name";
  return { id, queuedAt: typeof r.queuedAt === "string" ? r.queuedAt : "" };
}

/** Creates the queue directory root-only (0700, this user's); refuses a symlink or another owner's directory. */
export function ensureQueueDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) throw new Error(`${dir} belongs to uid ${st.uid}, not to this user`);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}

/** Records a deletion (idempotent: a second DEL of the same id rewrites the same entry). */
export function queueDeletion(dir: string, id: string, now = new Date()): string {
  const name = entryFileName(id);
  ensureQueueDir(dir);
  const file = path.join(dir, name);
  const names = fs.readdirSync(dir);
  if (!names.includes(name) && names.filter((n) => n.endsWith(SUFFIX)).length >= MAX_QUEUE_ENTRIES) {
    throw new Error(`the deletion queue ${dir} is full (${MAX_QUEUE_ENTRIES} entries): is the agent ever started?`);
  }
  const tmp = path.join(dir, `.tmp-${process.pid}-${Date.now()}`);
  fs.writeFileSync(tmp, JSON.stringify({ id, queuedAt: now.toISOString() } satisfies DeletionEntry), { mode: 0o600, flag: "wx" });
  fs.renameSync(tmp, file);
  return file;
}

/** Removes an entry (absent is fine). */
export function removeEntry(dir: string, id: string): void {
  fs.rmSync(path.join(dir, entryFileName(id)), { force: true });
}

/** The valid entries, oldest first; refused files are reported and removed (never followed: O_NOFOLLOW). */
export function readQueue(dir: string, refused: (file: string, why: string) => void = () => {}): DeletionEntry[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  const out: DeletionEntry[] = [];
  for (const name of names.slice(0, MAX_QUEUE_ENTRIES * 2)) {
    if (name.startsWith(".tmp-")) continue; // a plugin mid-write
    const file = path.join(dir, name);
    let text = "";
    let why: string | undefined;
    try {
      const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      try {
        const st = fs.fstatSync(fd);
        if (!st.isFile()) why = "not a regular file";
        else if (st.size > MAX_ENTRY_BYTES) why = `larger than ${MAX_ENTRY_BYTES} bytes`;
        else text = fs.readFileSync(fd, "utf8");
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      why = (e as NodeJS.ErrnoException).code === "ELOOP" ? "a symlink" : (e as Error).message;
    }
    const entry = why ?? parseEntry(name, text);
    if (typeof entry === "string") {
      refused(name, entry);
      try {
        fs.rmSync(file, { force: true });
      } catch {
        /* a directory: left alone, never entered */
      }
      continue;
    }
    out.push(entry);
  }
  return out.sort((a, b) => a.queuedAt.localeCompare(b.queuedAt));
}

/** Applies every queued deletion through `del`; an entry goes only once its delete succeeded. */
export async function drainDeletionQueue(
  dir: string,
  del: (id: string) => Promise<unknown>,
  log: { info: (msg: string, f?: Record<string, unknown>) => void; warn: (msg: string, f?: Record<string, unknown>) => void },
): Promise<{ deleted: number; failed: number }> {
  let deleted = 0;
  let failed = 0;
  for (const e of readQueue(dir, (file, why) => log.warn("deletion queue: entry refused (removed, a directory excepted)", { file, why }))) {
    try {
      await del(e.id);
      removeEntry(dir, e.id);
      deleted++;
      log.info("deletion queue: endpoint deleted (the CNI DEL came while the agent was down)", { id: e.id, queuedAt: e.queuedAt });
    } catch (err) {
      failed++;
      log.warn("deletion queue: delete failed; kept for the next start", { id: e.id, error: (err as Error).message });
    }
  }
  return { deleted, failed };
}
