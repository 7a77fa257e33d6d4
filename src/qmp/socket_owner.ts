/**
 * Which VMM a QMP socket belongs to, from evidence the process listening on
 * it cannot forge: the kernel's table of unix sockets says which socket inode
 * listens on the path (`<procfs>/net/unix`), and the VMM holding that inode
 * has a `<procfs>/PID/fd/N` link `socket:[INODE]`. Nothing the peer says is
 * used, and neither is what a VMM's command line says (whoever starts a VM
 * writes its argv): a socket found by `--collector.qmp.socket-glob` is given
 * to the VMM that holds it, and one a command line names only to that VMM, if
 * it holds it.
 *
 * @module
 */

import { readBoundedText } from "../system/bounded_read.ts";
import { indexListeners, parseUnixSockets, socketInodeOfLink } from "./unix_sockets.ts";

/** Why a socket found by glob or named on a command line was not queried. */
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

/** A socket a VMM's command line names as its monitor. */
export interface SocketClaim {
  /** The socket's path. */
  path: string;
  /** The VMM's pid. */
  pid: number;
}

/** What {@linkcode SocketOwners.resolve} is asked. */
export interface OwnershipQuery {
  /** Sockets found by glob. */
  found: readonly string[];
  /** The VMMs that may own them (VMs without a socket yet). */
  pids: readonly number[];
  /** Sockets named on command lines, each to be proven its VMM's. */
  claims?: readonly SocketClaim[];
}

/** What {@linkcode SocketOwners.resolve} established. */
export interface Ownerships {
  /** For each socket found by glob, its owner or the reason to skip it. */
  found: Map<string, SocketOwnership>;
  /** For each claim, in order: `{ pid }` when its VMM holds it, else the reason to skip it. */
  claims: SocketOwnership[];
}

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
  /** Claims (`pid\npath`) whose VMM did not hold the socket, by the inode it did not hold. */
  #notHeld = new Map<string, number>();
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
   * Establishes the owner of each socket found by glob among `pids`, and
   * whether each claimed socket is its VMM's. A claim is checked against its
   * own VMM only: one process's fds the first time, one readlink after, and
   * nothing while the refused inode and VMM stay the same. The VMMs whose
   * claim holds are not scanned for glob-found sockets, and a glob-found socket
   * that such a claim names is that VMM's.
   *
   * @param query The sockets, the candidate VMMs and the claims.
   * @returns The owner or the reason to skip, for each socket and each claim.
   */
  async resolve(query: OwnershipQuery): Promise<Ownerships> {
    const claims = query.claims ?? [];
    const paths = [...new Set([...query.found, ...claims.map((c) => c.path)])];
    const result = new Map<string, SocketOwnership>();
    const files = await Promise.all(paths.map((path) => socketFileProblem(path)));
    const candidates = paths.filter((path, i) => {
      const problem = files[i];
      if (problem !== undefined) result.set(path, { skipped: "not_socket", detail: problem });
      return problem === undefined;
    });
    this.#forgetAllBut(candidates, claims);
    const wanted = candidates.length === 0 ? new Map() : await this.#listeners(candidates, result);
    const inodeOf = new Map([...wanted].map(([inode, path]) => [path, inode]));
    const claimed: SocketOwnership[] = [];
    // One VMM at a time: each reads at most MAX_FDS_PER_PROCESS links, once in its life.
    for (const claim of claims) {
      claimed.push(result.get(claim.path) ?? await this.#checkClaim(claim, inodeOf));
    }
    const held = claims.filter((_, i) => "pid" in claimed[i]!);
    const heldPids = new Set(held.map((c) => c.pid));
    const pids = query.pids.filter((pid) => !heldPids.has(pid));
    // A claimed path the glob also finds is taken: its owner was just proven, and it is no other
    // VMM's (the claimant is left out of `pids`, so a scan would wrongly find no owner).
    for (const { path, pid } of held) result.set(path, { pid });
    const globbed = new Set(query.found);
    for (const [inode, path] of wanted) {
      if (!globbed.has(path) || result.has(path)) wanted.delete(inode);
    }
    await this.#confirmKnown(wanted, pids, result);
    await this.#scan(wanted, pids, result);
    const found = new Map<string, SocketOwnership>();
    for (const path of query.found) {
      const ownership = result.get(path);
      if (ownership !== undefined) found.set(path, ownership);
    }
    return { found, claims: claimed };
  }

  /** Forgets what was learnt about sockets and claims not asked about any more. */
  #forgetAllBut(paths: readonly string[], claims: readonly SocketClaim[]): void {
    const current = new Set(paths);
    for (const path of this.#found.keys()) if (!current.has(path)) this.#found.delete(path);
    for (const path of this.#notFound.keys()) if (!current.has(path)) this.#notFound.delete(path);
    const keys = new Set(claims.map((c) => `${c.pid}\n${c.path}`));
    for (const key of this.#notHeld.keys()) if (!keys.has(key)) this.#notHeld.delete(key);
  }

  /** Whether a claim's VMM holds the socket that listens on its path. */
  async #checkClaim(
    claim: SocketClaim,
    inodeOf: ReadonlyMap<string, number>,
  ): Promise<SocketOwnership> {
    const { path, pid } = claim;
    const inode = inodeOf.get(path)!; // Every candidate has a listener or a result already.
    const refused: SocketOwnership = {
      skipped: "no_owner",
      detail: `the VMM whose command line names it (pid ${pid}) does not hold its listening socket`,
    };
    const key = `${pid}\n${path}`;
    if (this.#notHeld.get(key) === inode) return refused;
    const known = this.#found.get(path);
    if (known !== undefined && known.pid === pid && known.inode === inode) {
      const link = await Deno.readLink(`${this.#procfs}/${pid}/fd/${known.fd}`).catch(() => "");
      if (socketInodeOfLink(link) === inode) return { pid };
    }
    const dir = `${this.#procfs}/${pid}/fd`;
    let fds;
    try {
      fds = await readSocketFds(dir);
    } catch (error) {
      // Not remembered: a passing error (EMFILE) must not refuse the socket for good.
      return { skipped: "no_owner", detail: `cannot read ${dir}: ${(error as Error).message}` };
    }
    const fd = fds.find((s) => s.inode === inode);
    if (fd === undefined) {
      this.#notHeld.set(key, inode);
      return refused;
    }
    this.#found.set(path, { inode, pid, fd: fd.fd });
    this.#notFound.delete(path);
    return { pid };
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
      const text = await readBoundedText(table, MAX_NET_UNIX_BYTES, { overflow: "last-line" });
      index = indexListeners(parseUnixSockets(text));
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
  // The process exited, or its fds are not ours to read: it owns nothing we can prove.
  return await readSocketFds(dir).catch(() => []);
}

/** The socket fds of a process, at most MAX_FDS_PER_PROCESS looked at. */
async function readSocketFds(dir: string): Promise<{ fd: string; inode: number }[]> {
  const sockets: { fd: string; inode: number }[] = [];
  let seen = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (++seen > MAX_FDS_PER_PROCESS) break;
    const inode = socketInodeOfLink(await Deno.readLink(`${dir}/${entry.name}`).catch(() => ""));
    if (inode !== undefined) sockets.push({ fd: entry.name, inode });
  }
  return sockets;
}
