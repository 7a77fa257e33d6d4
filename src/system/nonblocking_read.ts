/**
 * The main thread's synchronous read of one debugfs stat file: its open never
 * waits on what the path turns out to be. A listing is only a moment's look
 * (and a vCPU dir's is kept for the VM's lifetime), so a FIFO, a device or a
 * directory may stand where a regular file was listed; a blocking open of a
 * FIFO would hold the event loop until a writer came, for good. (Reader
 * Workers open the blocking way, through Deno's API: `node:fs` would cost
 * each of them ~5 MB, and a Worker stuck on an open is abandoned at the
 * deadline, see reader_pool.ts.)
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
 * file): only a read that is empty, fills the buffer or fails (what a FIFO without data, a device
 * such as `/dev/zero` or `/dev/null`, or a directory gives; a debugfs stat is never empty and
 * fits) is checked, and is then an error named {@linkcode NOT_REGULAR} unless the file is
 * regular. A FIFO that holds data, or a device that gives a short read, is read as a regular file
 * would be (and then, most likely, malformed): never waited on. Three syscalls per file: open,
 * read, close.
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
      throw typeError(fs, { fd, path }) ?? denoFsError(error, { syscall: "read", path });
    }
    if (used === 0 || used === buffer.length) {
      const error = typeError(fs, { fd, path });
      if (error !== undefined) throw error;
    }
    return used;
  } finally {
    fs.closeSync(fd);
  }
}

/** The open file's {@linkcode notRegularError}; undefined too when it cannot be told. */
function typeError(fs: SyncFileOps, file: { fd: number; path: string }): Error | undefined {
  let info: FileKind;
  try {
    info = fs.fstatSync(file.fd);
  } catch {
    return undefined; // The read's own outcome stands.
  }
  return notRegularError(info, file.path);
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

/** `strerror` of the errors an open or read meets, as Deno's messages spell them. */
const STRERROR: Readonly<Record<string, string>> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  EIO: "Input/output error",
  ENXIO: "No such device or address",
  EAGAIN: "Resource temporarily unavailable",
  EACCES: "Permission denied",
  EBUSY: "Device or resource busy",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  ENAMETOOLONG: "File name too long",
  ELOOP: "Too many levels of symbolic links",
};

/** The Deno error class of each code that has one (Deno's `get_io_error_class`); else `Error`. */
const CLASSES: Readonly<Record<string, new (message: string, options?: ErrorOptions) => Error>> = {
  EPERM: Deno.errors.PermissionDenied,
  EACCES: Deno.errors.PermissionDenied,
  ENOENT: Deno.errors.NotFound,
  ENOTDIR: Deno.errors.NotADirectory,
  EISDIR: Deno.errors.IsADirectory,
  EAGAIN: Deno.errors.WouldBlock,
  EBUSY: Deno.errors.Busy,
  ELOOP: Deno.errors.FilesystemLoop,
};

/**
 * A `node:fs` error as `Deno.openSync` and `readSync` throw it: the class Deno gives its code
 * (`PermissionDenied`, `NotFound`, `NotADirectory`, `IsADirectory`, `WouldBlock`, `Busy`,
 * `FilesystemLoop`, else `Error`) and Deno's message (`Operation not permitted (os error 1): open
 * '/path'`), which the read-error reasons and the kept refusals go by. A code missing from the
 * table keeps the description `node:fs` gave it. Anything else (Deno's own refusal, `NotCapable`)
 * is returned as it is.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { denoFsError } from "./nonblocking_read.ts";
 * const eperm = Object.assign(new Error("EPERM: operation not permitted, open '/x'"), {
 *   code: "EPERM",
 *   errno: -1,
 * });
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
  // node:fs says "CODE: description, syscall 'path'".
  const described = /^[A-Z0-9]+: ([^,]*)/.exec((error as Error).message)?.[1] ?? code;
  const strerror = STRERROR[code] ?? described.charAt(0).toUpperCase() + described.slice(1);
  const text = `${strerror} (os error ${Math.abs(errno)})`;
  const message = where.syscall === "open" ? `${text}: open '${where.path}'` : text;
  return new (CLASSES[code] ?? Error)(message, { cause: error });
}
