/**
 * The synchronous read of one debugfs stat file, on the main thread and in
 * reader Workers alike: it never waits on what the path turns out to be.
 * A listing is only a moment's look (and a vCPU dir's is kept for the VM's
 * lifetime), so a FIFO, a device or a directory may stand where a regular
 * file was listed; a blocking open of a FIFO would hold the thread until a
 * writer came, for good.
 *
 * This module is also run inside reader Workers from its source text
 * (`Function.prototype.toString`): its functions use nothing but their
 * arguments, each other and globals.
 *
 * @module
 */

/** The part of `node:fs` that {@linkcode readStatInto} uses. */
export interface SyncFileOps {
  /** Opens a file with `open(2)` flags. */
  openSync(path: string, flags: number): number;
  /** Reads into `buffer` at the file's position. */
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: null): number;
  /** The open file's type. */
  fstatSync(fd: number): FileKind;
  /** Closes the file. */
  closeSync(fd: number): void;
  /** The open flags. */
  constants: { O_RDONLY: number; O_NONBLOCK: number; O_NOCTTY: number };
}

/** The type tests of a `node:fs` stat. */
export interface FileKind {
  /** A regular file. */
  isFile(): boolean;
  /** A directory. */
  isDirectory(): boolean;
  /** A FIFO. */
  isFIFO(): boolean;
  /** A character device. */
  isCharacterDevice(): boolean;
  /** A block device. */
  isBlockDevice(): boolean;
  /** A unix socket. */
  isSocket(): boolean;
}

/** The `name` of the error {@linkcode readStatInto} throws for what is not a regular file. */
export const NOT_REGULAR = "NotRegularError";

/**
 * Reads a stat file into `buffer` with one read, opened with `O_NONBLOCK`: a FIFO or a device
 * opens at once instead of waiting. No `fstat` on the way of a stat's text (a third more CPU per
 * file): only a read that is empty, fills the buffer or fails (what a FIFO, a device or a
 * directory gives; a debugfs stat is never empty and fits) is checked, and is then an error named
 * {@linkcode NOT_REGULAR} unless the file is regular. Three syscalls per file: open, read, close.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import * as fs from "node:fs";
 * import { readStatInto } from "./nonblocking_read.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/exits`, "42\n");
 * assert.equal(readStatInto(fs, `${dir}/exits`, new Uint8Array(8)), 3);
 * assert.throws(() => readStatInto(fs, dir, new Uint8Array(8)), { name: "NotRegularError" });
 * Deno.removeSync(dir, { recursive: true });
 * ```
 *
 * @param fs `node:fs`.
 * @param path The file.
 * @param buffer Where its bytes go: the cap plus one byte, so that a full buffer means too large.
 * @returns The bytes read.
 * @throws {Error} Named {@linkcode NOT_REGULAR} when the path is not a regular file; else what
 *   {@linkcode denoFsError} makes of the open's or read's error.
 */
export function readStatInto(fs: SyncFileOps, path: string, buffer: Uint8Array): number {
  const { O_RDONLY, O_NONBLOCK, O_NOCTTY } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  } catch (error) {
    throw denoFsError(error, { syscall: "open", path });
  }
  try {
    let used: number;
    try {
      used = fs.readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      // EISDIR, or EAGAIN: a FIFO whose writer has written nothing yet.
      throw notRegularError(fs.fstatSync(fd), path) ??
        denoFsError(error, { syscall: "read", path });
    }
    if (used === 0 || used === buffer.length) {
      const error = notRegularError(fs.fstatSync(fd), path);
      if (error !== undefined) throw error;
    }
    return used;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The error for a file that is not regular, saying what it is; undefined for a regular file.
 *
 * @param info The open file's stat.
 * @param path The file.
 * @returns An error named {@linkcode NOT_REGULAR}, or undefined.
 */
export function notRegularError(info: FileKind, path: string): Error | undefined {
  if (info.isFile()) return undefined;
  const what = info.isDirectory()
    ? "a directory"
    : info.isFIFO()
    ? "a FIFO"
    : info.isCharacterDevice()
    ? "a character device"
    : info.isBlockDevice()
    ? "a block device"
    : info.isSocket()
    ? "a socket"
    : "not a regular file";
  const error = new Error(`Not a regular file "${path}": ${what}`);
  error.name = "NotRegularError";
  return error;
}

/**
 * A `node:fs` error as `Deno.openSync` and `readSync` throw it: the same class
 * (`PermissionDenied`, `NotFound`, `NotADirectory`, `IsADirectory`, else `Error`) and message (`Operation not
 * permitted (os error 1): open '/path'`), which the read-error reasons and the kept refusals go
 * by. Anything else (Deno's own refusal, `NotCapable`) is returned as it is.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { denoFsError } from "./nonblocking_read.ts";
 * const eperm = Object.assign(new Error("EPERM: operation not permitted"), { code: "EPERM", errno: -1 });
 * const error = denoFsError(eperm, { syscall: "open", path: "/x" });
 * assert(error instanceof Deno.errors.PermissionDenied);
 * assert.equal(error.message, "Operation not permitted (os error 1): open '/x'");
 * ```
 *
 * @param error What `node:fs` threw.
 * @param where The call and the path.
 * @returns The error to throw.
 */
export function denoFsError(
  error: unknown,
  where: { syscall: "open" | "read"; path: string },
): unknown {
  const { code, errno } = error as { code?: unknown; errno?: unknown };
  if (typeof code !== "string" || typeof errno !== "number") return error;
  const strerror: Record<string, string> = {
    EPERM: "Operation not permitted",
    ENOENT: "No such file or directory",
    ENXIO: "No such device or address",
    EACCES: "Permission denied",
    ENOTDIR: "Not a directory",
    EISDIR: "Is a directory",
    ELOOP: "Too many levels of symbolic links",
  };
  const text = `${strerror[code] ?? (error as Error).message} (os error ${Math.abs(errno)})`;
  const message = where.syscall === "open" ? `${text}: open '${where.path}'` : text;
  const options = { cause: error };
  if (code === "EPERM" || code === "EACCES") {
    return new Deno.errors.PermissionDenied(message, options);
  }
  if (code === "ENOENT") return new Deno.errors.NotFound(message, options);
  if (code === "ENOTDIR") return new Deno.errors.NotADirectory(message, options);
  if (code === "EISDIR") return new Deno.errors.IsADirectory(message, options);
  return new Error(message, options);
}
