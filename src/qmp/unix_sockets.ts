/**
 * Parses the kernel's table of unix sockets, `/proc/net/unix`: which socket
 * inode listens on which path. Pure: the caller reads the file.
 *
 * @module
 */

/** One line of `/proc/net/unix`. */
export interface UnixSocketLine {
  /** The socket's inode, as `/proc/PID/fd/N` links name it (`socket:[INODE]`). */
  inode: number;
  /** The path it is bound to; abstract names start with `@`; undefined when unbound. */
  path: string | undefined;
  /** Whether it listens: the `__SO_ACCEPTCON` flag (0x10000) and state 01 (unconnected). */
  listening: boolean;
}

/** `Num: RefCount Protocol Flags Type St Inode [Path]`; the path is the rest of the line. */
const LINE =
  /^[0-9a-f]+: [0-9A-F]{8} [0-9A-F]{8} ([0-9A-F]{8}) [0-9A-F]{4} ([0-9A-F]{2}) +(\d+)(?: (.*))?$/;
const SO_ACCEPTCON = 0x10000;
const SS_UNCONNECTED = 1;

/**
 * Parses `/proc/net/unix`. The header and lines that do not have the kernel's
 * form are skipped.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseUnixSockets } from "./unix_sockets.ts";
 * const text = "Num       RefCount Protocol Flags    Type St Inode Path\n" +
 *   "0000000000000000: 00000002 00000000 00010000 0001 01 97245 /run/qemu/a.qmp\n";
 * assert.deepEqual(parseUnixSockets(text), [
 *   { inode: 97245, path: "/run/qemu/a.qmp", listening: true },
 * ]);
 * ```
 *
 * @param text The file's content.
 * @returns Its lines, in order.
 */
export function parseUnixSockets(text: string): UnixSocketLine[] {
  const sockets: UnixSocketLine[] = [];
  for (const line of text.split("\n")) {
    const match = LINE.exec(line);
    if (match === null) continue;
    const flags = parseInt(match[1]!, 16);
    const state = parseInt(match[2]!, 16);
    sockets.push({
      inode: Number(match[3]),
      path: match[4] === undefined || match[4] === "" ? undefined : match[4],
      listening: (flags & SO_ACCEPTCON) !== 0 && state === SS_UNCONNECTED,
    });
  }
  return sockets;
}

/** What the table says about the listener on one path. */
export type ListenerOfPath = { kind: "one"; inode: number } | { kind: "ambiguous" };

/**
 * Indexes the listeners by path, in one pass. The kernel prints a path as it
 * was bound, newlines included, so a local user can forge a line by binding a
 * socket to a path that contains one: a path whose listener's inode is listed
 * twice, or that has several listeners (a file replaced while its old socket
 * still listens), is ambiguous and trusted for nothing.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { indexListeners } from "./unix_sockets.ts";
 * const index = indexListeners([
 *   { inode: 7, path: "/run/a.qmp", listening: true },
 *   { inode: 8, path: "/run/a.qmp", listening: false },
 * ]);
 * assert.deepEqual(index.get("/run/a.qmp"), { kind: "one", inode: 7 });
 * ```
 *
 * @param lines The parsed table.
 * @returns For each path something listens on, its one listener or "ambiguous".
 */
export function indexListeners(lines: readonly UnixSocketLine[]): Map<string, ListenerOfPath> {
  const timesListed = new Map<number, number>();
  const listeners = new Map<string, number[]>();
  for (const line of lines) {
    timesListed.set(line.inode, (timesListed.get(line.inode) ?? 0) + 1);
    if (!line.listening || line.path === undefined) continue;
    const inodes = listeners.get(line.path) ?? [];
    inodes.push(line.inode);
    listeners.set(line.path, inodes);
  }
  const index = new Map<string, ListenerOfPath>();
  for (const [path, inodes] of listeners) {
    const [inode] = inodes;
    const one = inodes.length === 1 && inode !== undefined && timesListed.get(inode) === 1;
    index.set(path, one ? { kind: "one", inode } : { kind: "ambiguous" });
  }
  return index;
}

/**
 * The inode in a `/proc/PID/fd/N` link that names a socket.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { socketInodeOfLink } from "./unix_sockets.ts";
 * assert.equal(socketInodeOfLink("socket:[97245]"), 97245);
 * assert.equal(socketInodeOfLink("/dev/kvm"), undefined);
 * ```
 *
 * @param target What readlink returned.
 * @returns The inode, or undefined for anything but a socket.
 */
export function socketInodeOfLink(target: string): number | undefined {
  const match = /^socket:\[(\d+)\]$/.exec(target);
  return match === null ? undefined : Number(match[1]);
}
