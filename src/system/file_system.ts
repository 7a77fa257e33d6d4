/**
 * The file operations the collectors use, gathered in one interface so that
 * tests can reproduce what a real host does only by chance (a VM dir that
 * vanishes between listing and reading, EPERM under kernel lockdown).
 *
 * @module
 */

import {
  NotRegularError,
  PROC_FILE_MAX_BYTES,
  readBoundedText,
  readBoundedTextNonBlocking,
  readBoundedTextSync,
  TooLargeError,
} from "./bounded_read.ts";
import { type KeptFile, openKeptFile } from "./kept_file.ts";

/** Options of {@linkcode FileSystem.readTextFile}. */
export interface ReadOptions {
  /** The size cap; default {@linkcode PROC_FILE_MAX_BYTES}. */
  maxBytes?: number;
  /**
   * Open without waiting on a peer (`O_NONBLOCK`): a FIFO, socket or device is a
   * {@linkcode NotRegularError} at once, never a blocked read. For stat files not listed as
   * regular files; procfs reads keep the blocking open.
   */
  nonBlocking?: boolean;
}

/**
 * The subset of Deno's file API the exporter reads through. A seam implements every operation:
 * which of them a caller uses is the caller's explicit choice, never a guess from what is there.
 */
export interface FileSystem {
  /** Lists a directory. */
  readDir(path: string): AsyncIterable<Deno.DirEntry>;
  /** Lists a directory that a listing showed as a directory in debugfs, synchronously. */
  readDirSync(path: string): Iterable<Deno.DirEntry>;
  /** Reads a whole regular file up to a cap; opened and closed within the call. */
  readTextFile(path: string, options?: ReadOptions): Promise<string>;
  /**
   * Reads a file listed as regular in debugfs synchronously, up to `maxBytes`; opened and closed
   * within the call.
   */
  readRegularSync(path: string, maxBytes: number): string;
  /** The permission bits of a file (not following symlinks); undefined if unknown. */
  mode(path: string): Promise<number | undefined>;
  /** The target of a symlink (a procfs `fd/N` or `ns/net`). */
  readLink(path: string): Promise<string>;
  /**
   * Which directory a path names, synchronously (a stat, not following symlinks): its inode
   * number. A dir removed and made again under the same name (a VM recreated with the same
   * `PID-FD`) has another: debugfs numbers each inode it makes afresh (`get_next_ino`, 32 bits,
   * so a number comes back only after four billion inodes), tmpfs too. Not the change time: a
   * tmpfs dir's changes with every file made in it.
   */
  identitySync(path: string): string;
  /**
   * Opens a regular file to keep open and read again from its start, synchronously, never
   * waiting on what the path is ({@linkcode openKeptFile}).
   */
  openKept(path: string): KeptFile;
}

/**
 * The real file system. `readRegularSync` is for debugfs files listed as
 * regular: that costs well under half the CPU of Deno's async file op (deno
 * task bench: 214 ms against 513 ms per scrape of 7,660 files), and callers
 * yield to the event loop between batches (see Limiter). `readTextFile` is
 * always the async op (a FIFO, a symlink, a procfs file whose read takes the
 * process's memory lock), so that a read that blocks holds one worker thread,
 * not the exporter. Either way only a regular file is read, and never past
 * its cap.
 */
export const denoFileSystem: FileSystem = {
  readDir: (path) => Deno.readDir(path),
  readDirSync: (path) => Deno.readDirSync(path),
  readTextFile: (path, options) => {
    const maxBytes = options?.maxBytes ?? PROC_FILE_MAX_BYTES;
    return options?.nonBlocking
      ? readBoundedTextNonBlocking(path, maxBytes)
      : readBoundedText(path, maxBytes);
  },
  readRegularSync: readBoundedTextSync,
  mode: (path) => Deno.lstat(path).then((info) => info.mode ?? undefined, () => undefined),
  readLink: (path) => Deno.readLink(path),
  identitySync: (path) => {
    const info = Deno.lstatSync(path);
    return `${info.dev}:${info.ino}`;
  },
  openKept: openKeptFile,
};

/** Why a stat could not be read, as `kvm_exporter_stat_read_errors` reports it. */
export type ReadErrorReason =
  | "permission"
  | "vanished"
  | "malformed"
  | "too_large"
  | "not_regular"
  | "blocked"
  | "other";

/**
 * A read not started because an earlier read of the same path has not
 * returned, or because too many reads are blocked already.
 */
export class BlockedReadError extends Error {
  /** The error's name. */
  override name = "BlockedReadError";
}

/** ENXIO as `Deno.open` reports it (no `code`): a unix socket, or a device without a driver. */
const NO_DEVICE = /\(os error 6\)/;

/**
 * Classifies a read error: EPERM/EACCES (kernel lockdown) and a Deno
 * permission refusal are "permission", ENOENT (the VM exited) is "vanished";
 * a file over its cap and a read skipped because the path's earlier read is
 * still blocked have reasons of their own. Anything that is not a regular file
 * is "not_regular", however it showed: the type check on the open file, a
 * directory's read (EISDIR), or a unix socket's open (ENXIO), so that the
 * synchronous and reader Worker paths, which open without checking the type,
 * agree with the checked one.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifyReadError } from "./file_system.ts";
 * assert.equal(classifyReadError(new Deno.errors.PermissionDenied("EPERM")), "permission");
 * assert.equal(classifyReadError(new Error("No such device or address (os error 6)")), "not_regular");
 * ```
 *
 * @param error What the read threw.
 * @returns The reason.
 */
export function classifyReadError(error: unknown): ReadErrorReason {
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    return "permission";
  }
  if (error instanceof Deno.errors.NotFound) return "vanished";
  if (error instanceof TooLargeError) return "too_large";
  if (error instanceof NotRegularError || error instanceof Deno.errors.IsADirectory) {
    return "not_regular";
  }
  if (error instanceof Error && NO_DEVICE.test(error.message)) return "not_regular";
  if (error instanceof BlockedReadError) return "blocked";
  return "other";
}

/**
 * Lists a directory into an array (the listing is closed when this returns).
 *
 * @param fs The file system.
 * @param path The directory.
 * @returns Its entries.
 */
export async function listDir(fs: FileSystem, path: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  for await (const entry of fs.readDir(path)) entries.push(entry);
  return entries;
}

/**
 * Says in one line why a path could not be read and what to do about it.
 *
 * @param path The path.
 * @param error What the read threw.
 * @returns The explanation.
 */
export function describeReadError(path: string, error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) {
    if (/^\/(proc|sys|dev)(\/|$)/.test(path)) {
      return `Deno refuses "${path}" without --allow-all, as it does everything under /proc, /sys and /dev: bind-mount it elsewhere and point the flag there (docs/deployment.md, "Permissions")`;
    }
    return `Deno permission missing: add --allow-read=${path}`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `The kernel refuses "${path}" (kernel lockdown, or not running as root): ${
      (error as Error).message
    }`;
  }
  return `Cannot read "${path}": ${(error as Error).message}`;
}
