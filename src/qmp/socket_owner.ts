/**
 * Which VMM a QMP socket found by `--collector.qmp.socket-glob` belongs to,
 * from evidence the process listening on it cannot forge: the kernel's table
 * of unix sockets says which socket inode listens on the path
 * (`<procfs>/net/unix`), and the VMM holding that inode has a
 * `<procfs>/PID/fd/N` link `socket:[INODE]`. Nothing the peer says is used.
 *
 * @module
 */

import { indexListeners, parseUnixSockets, socketInodeOfLink } from "./unix_sockets.ts";

/** Why a socket found by glob was not queried. */
export type SkipReason = "not_socket" | "not_listening" | "ambiguous" | "no_owner";

/** Every {@linkcode SkipReason}, for the metric. */
export const SKIP_REASONS: readonly SkipReason[] = [
  "not_socket",
  "not_listening",
  "ambiguous",
  "no_owner",
];

/** Whose a socket is: a VMM's pid, or why that could not be established. */
export type SocketOwnership = { pid: number } | { skipped: SkipReason; detail: string };

/** Largest `<procfs>/net/unix` read: 16 MiB, some 150,000 sockets. */
export const MAX_NET_UNIX_BYTES = 16 * 1024 * 1024;
/** Most fd links read per process. */
export const MAX_FDS_PER_PROCESS = 1024;
/** Most processes whose fds are read per call (the rest wait for the next scrape). */
export const MAX_PROCESSES_PER_CALL = 64;

const NO_OWNER: SocketOwnership = {
  skipped: "no_owner",
  detail: "no VMM of an exported VM holds its listening socket",
};

/** Where a listener was found: re-checked with one readlink on the next call. */
interface Found {
  inode: number;
  pid: number;
  fd: string;
}

/**
 * Finds the owners of sockets among given VMM processes, remembering what it
 * found: a known owner is confirmed with one readlink, and a socket no VMM
 * held is looked for again only when the set of VMMs changes.
 */
export class SocketOwners {
  #procfs: string;
  #found = new Map<string, Found>();
  #notFound = new Map<string, string>();
  #cursor = 0;

  /**
   * Creates an empty cache.
   *
   * @param procfs procfs mount point.
   */
  constructor(procfs: string) {
    this.#procfs = procfs;
  }

  /**
   * Establishes the owner of each socket among `pids`.
   *
   * @param sockets Socket paths found by glob.
   * @param pids The VMMs that may own them (VMs without a socket yet).
   * @returns The owner or the reason to skip, for each socket.
   */
  async resolve(
    sockets: readonly string[],
    pids: readonly number[],
  ): Promise<Map<string, SocketOwnership>> {
    const result = new Map<string, SocketOwnership>();
    const files = await Promise.all(sockets.map((path) => socketFileProblem(path)));
    const candidates = sockets.filter((path, i) => {
      const problem = files[i];
      if (problem !== undefined) result.set(path, { skipped: "not_socket", detail: problem });
      return problem === undefined;
    });
    const current = new Set(candidates);
    for (const path of this.#found.keys()) if (!current.has(path)) this.#found.delete(path);
    for (const path of this.#notFound.keys()) if (!current.has(path)) this.#notFound.delete(path);
    if (candidates.length === 0) return result;
    const wanted = await this.#listeners(candidates, result);
    await this.#confirmKnown(wanted, pids, result);
    await this.#scan(wanted, pids, result);
    return result;
  }

  /** The listening inode of each candidate, from the kernel's table. */
  async #listeners(
    candidates: readonly string[],
    result: Map<string, SocketOwnership>,
  ): Promise<Map<number, string>> {
    const wanted = new Map<number, string>();
    const table = `${this.#procfs}/net/unix`;
    let index;
    try {
      index = indexListeners(parseUnixSockets(await readCapped(table, MAX_NET_UNIX_BYTES)));
    } catch (error) {
      const detail = `cannot read ${table}: ${(error as Error).message}`;
      for (const path of candidates) result.set(path, { skipped: "no_owner", detail });
      return wanted;
    }
    for (const path of candidates) {
      const listener = index.get(path);
      if (listener === undefined) {
        result.set(path, { skipped: "not_listening", detail: `nothing listens on it (${table})` });
      } else if (listener.kind === "ambiguous") {
        const detail = `several sockets are listed for it, or its inode twice (${table})`;
        result.set(path, { skipped: "ambiguous", detail });
      } else {
        wanted.set(listener.inode, path);
      }
    }
    return wanted;
  }

  /** Confirms last call's owners with one readlink each. */
  async #confirmKnown(
    wanted: Map<number, string>,
    pids: readonly number[],
    result: Map<string, SocketOwnership>,
  ): Promise<void> {
    for (const [inode, path] of wanted) {
      const found = this.#found.get(path);
      if (found === undefined || found.inode !== inode || !pids.includes(found.pid)) continue;
      const link = await Deno.readLink(`${this.#procfs}/${found.pid}/fd/${found.fd}`).catch(
        () => "",
      );
      if (socketInodeOfLink(link) !== inode) continue;
      result.set(path, { pid: found.pid });
      wanted.delete(inode);
    }
  }

  /** Reads the fd links of up to MAX_PROCESSES_PER_CALL VMMs, taking turns across calls. */
  async #scan(
    wanted: Map<number, string>,
    pids: readonly number[],
    result: Map<string, SocketOwnership>,
  ): Promise<void> {
    const pidsKey = [...pids].sort((a, b) => a - b).join(",");
    for (const [inode, path] of wanted) {
      if (this.#notFound.get(path) === `${inode}/${pidsKey}`) {
        result.set(path, NO_OWNER);
        wanted.delete(inode);
      }
    }
    if (wanted.size === 0 || pids.length === 0) {
      for (const path of wanted.values()) result.set(path, NO_OWNER);
      return;
    }
    const start = this.#cursor % pids.length;
    const order = [...pids.slice(start), ...pids.slice(0, start)].slice(0, MAX_PROCESSES_PER_CALL);
    this.#cursor = start + order.length;
    const all = order.length === pids.length;
    for (const pid of order) {
      for (const { fd, inode } of await socketFds(`${this.#procfs}/${pid}/fd`)) {
        const path = wanted.get(inode);
        if (path === undefined) continue;
        this.#found.set(path, { inode, pid, fd });
        this.#notFound.delete(path);
        result.set(path, { pid });
        wanted.delete(inode);
      }
      if (wanted.size === 0) return;
    }
    for (const [inode, path] of wanted) {
      // Every VMM was looked at: do not look again until the VMMs or the socket change.
      if (all) this.#notFound.set(path, `${inode}/${pidsKey}`);
      result.set(path, NO_OWNER);
    }
  }
}

/** Why the glob found something that is not a socket of its own, or undefined when it is one. */
async function socketFileProblem(path: string): Promise<string | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    return `cannot stat it: ${(error as Error).message}`;
  }
  // A link would be connected to the socket it points at, which the table lists by its own path.
  if (info.isSymlink) return "it is a symbolic link";
  if (info.isSocket !== true) return "it is not a socket";
  if ((info.nlink ?? 1) > 1) return "it has several hard links";
  return undefined;
}

/** The socket fds of a process, at most MAX_FDS_PER_PROCESS looked at; none when unreadable. */
async function socketFds(dir: string): Promise<{ fd: string; inode: number }[]> {
  const sockets: { fd: string; inode: number }[] = [];
  try {
    let seen = 0;
    for await (const entry of Deno.readDir(dir)) {
      if (++seen > MAX_FDS_PER_PROCESS) break;
      const inode = socketInodeOfLink(await Deno.readLink(`${dir}/${entry.name}`).catch(() => ""));
      if (inode !== undefined) sockets.push({ fd: entry.name, inode });
    }
  } catch {
    // The process exited, or its fds are not ours to read: it owns nothing we can prove.
  }
  return sockets;
}

/** Reads at most `cap` bytes; a longer file is cut at its last full line within the cap. */
async function readCapped(path: string, cap: number): Promise<string> {
  using file = await Deno.open(path, { read: true });
  const chunks: Uint8Array[] = [];
  let length = 0;
  while (length < cap) {
    const chunk = new Uint8Array(Math.min(64 * 1024, cap - length));
    const n = await file.read(chunk);
    if (n === null) break;
    chunks.push(chunk.subarray(0, n));
    length += n;
  }
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  const end = length >= cap ? bytes.lastIndexOf(0x0a) + 1 : length;
  return new TextDecoder().decode(bytes.subarray(0, end));
}
