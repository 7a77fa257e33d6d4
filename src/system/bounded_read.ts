/**
 * Reads with a size cap and a file-type check: nothing the exporter reads may
 * cost more than its cap, and nothing but a regular file is read (debugfs
 * stat files and procfs files are regular files to `fstat`). The one read loop
 * with a cap is here.
 *
 * @module
 */

import * as nodeFs from "node:fs";
import { constants as fsConstants, promises as fsPromises, type Stats } from "node:fs";
import { NOT_REGULAR, readStatInto } from "./nonblocking_read.ts";
import type { ReadFn } from "./byte_reader.ts";

/** A debugfs stat file holds one integer: 20 digits, a sign and a newline. */
export const STAT_FILE_MAX_BYTES = 4 * 1024;
/** `/proc/PID/cmdline`: Linux caps argv at 1/4 of the stack limit; VMM command lines are ~10 KiB. */
export const CMDLINE_MAX_BYTES = 128 * 1024;
/** Any other procfs or sysfs file the exporter reads (`stat`, `status`, `limits`, `lockdown`). */
export const PROC_FILE_MAX_BYTES = 64 * 1024;

/** A file larger than its cap; it was not read past the cap. */
export class TooLargeError extends Error {
  /** The error's name. */
  override name = "TooLargeError";
}

/** A path that is not a regular file (a FIFO, a device, a socket, a dir); it was not read. */
export class NotRegularError extends Error {
  /** The error's name. */
  override name = "NotRegularError";
}

/**
 * Says in words what a path that is not a regular file is.
 *
 * @param info Its stat.
 * @returns "a directory", "a FIFO", "a character device", ...
 */
export function fileType(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

function checkInfo(path: string, info: Deno.FileInfo, maxBytes: number | undefined): void {
  if (!info.isFile) throw new NotRegularError(`Not a regular file "${path}": ${fileType(info)}`);
  if (maxBytes !== undefined && info.size > maxBytes) {
    throw new TooLargeError(`File too large "${path}": ${info.size} bytes, the cap is ${maxBytes}`);
  }
}

/**
 * The error of a file found to hold more than its cap while reading (its size was not known).
 *
 * @param path The file.
 * @param maxBytes The cap.
 * @returns The error.
 */
export function tooLarge(path: string, maxBytes: number): TooLargeError {
  return new TooLargeError(`File too large "${path}": more than ${maxBytes} bytes`);
}

const decoder = new TextDecoder();
let syncBuffer = new Uint8Array(STAT_FILE_MAX_BYTES + 1);

/** Options of {@linkcode readBoundedText}. */
export interface BoundedTextOptions {
  /**
   * What a file holding more than the cap gives: `"refuse"` (the default) throws
   * {@linkcode TooLargeError}; `"last-line"` gives its lines that fit in the cap whole, for a
   * table that is of use in part (`<procfs>/net/unix`, whose size grows with the host's sockets).
   */
  overflow?: "refuse" | "last-line";
}

/**
 * Reads a regular file of at most `maxBytes`, asynchronously: a read that
 * blocks (a FIFO's open, a procfs read waiting on a process's memory lock)
 * holds one of Deno's worker threads, not the event loop. The type is checked
 * on the open file, so a path swapped after a listing cannot slip through;
 * procfs and debugfs report size 0, so the cap is also enforced while reading.
 *
 * @example Read a table in part
 * ```ts
 * import assert from "node:assert/strict";
 * import { readBoundedText } from "./bounded_read.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/table`, "a 1\nb 2\nc 3\n");
 * assert.equal(await readBoundedText(`${dir}/table`, 10, { overflow: "last-line" }), "a 1\nb 2\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path The file.
 * @param maxBytes The cap.
 * @param options What a file longer than the cap gives.
 * @returns The text.
 * @throws {NotRegularError} When the path is not a regular file.
 * @throws {TooLargeError} When it holds more than `maxBytes` (unless `overflow` is `"last-line"`).
 */
export async function readBoundedText(
  path: string,
  maxBytes: number,
  options: BoundedTextOptions = {},
): Promise<string> {
  const cut = options.overflow === "last-line";
  using file = await Deno.open(path, { read: true });
  checkInfo(path, await file.stat(), cut ? undefined : maxBytes);
  const bytes = await readUpTo((buffer) => file.read(buffer), maxBytes);
  if (bytes.length <= maxBytes) return decoder.decode(bytes);
  if (!cut) throw tooLarge(path, maxBytes);
  // The line the cap falls in is left out whole: half a line would parse as another one.
  const within = bytes.subarray(0, maxBytes);
  return decoder.decode(within.subarray(0, within.lastIndexOf(NEWLINE) + 1));
}

const NEWLINE = 0x0a;

/** The first buffer of a read: a large cap (16 MiB) is grown into, not allocated up front. */
const FIRST_BUFFER_BYTES = 64 * 1024;

/**
 * The one cap-plus-one read loop: reads until the end of the stream, asking for at most
 * `maxBytes + 1` bytes in all, so that a stream holding more than the cap is seen without
 * reading the rest of it. The buffer starts at the cap plus one or 64 KiB, whichever is less,
 * and doubles as needed.
 *
 * @returns What was read: more than `maxBytes` bytes when the stream holds more than the cap.
 */
async function readUpTo(read: ReadFn, maxBytes: number): Promise<Uint8Array> {
  const limit = maxBytes + 1;
  let buffer = new Uint8Array(Math.min(limit, FIRST_BUFFER_BYTES));
  let used = 0;
  while (used < limit) {
    if (used === buffer.length) buffer = grown(buffer, Math.min(limit, buffer.length * 2));
    const n = await read(buffer.subarray(used));
    if (n === null) break;
    used += n;
  }
  return buffer.subarray(0, used);
}

/** A copy of `buffer` in a larger one of `size` bytes. */
function grown(buffer: Uint8Array, size: number): Uint8Array<ArrayBuffer> {
  const larger = new Uint8Array(size);
  larger.set(buffer);
  return larger;
}

/**
 * Reads a debugfs stat file of at most `maxBytes`, synchronously, never waiting on what the path
 * turns out to be ({@linkcode readStatInto}: opened with `O_NONBLOCK` through `node:fs`, which
 * costs what `Deno.openSync` does; the type checked only when the read is empty or full).
 *
 * @param path The file.
 * @param maxBytes The cap.
 * @returns The text.
 * @throws {NotRegularError} When the path is not a regular file.
 * @throws {TooLargeError} When it holds more than `maxBytes`.
 */
export function readBoundedTextSync(path: string, maxBytes: number): string {
  // One buffer for every synchronous read: nothing else runs while one is in progress.
  if (syncBuffer.length < maxBytes + 1) syncBuffer = new Uint8Array(maxBytes + 1);
  const buffer = syncBuffer.subarray(0, maxBytes + 1);
  let used: number;
  try {
    used = readStatInto(nodeFs, path, buffer);
  } catch (error) {
    throw asNotRegular(error);
  }
  if (used === buffer.length) throw tooLarge(path, maxBytes);
  return decoder.decode(buffer.subarray(0, used));
}

/**
 * An error named {@linkcode NOT_REGULAR} as a {@linkcode NotRegularError} (nonblocking_read.ts
 * names its error: importing the class from here would be a cycle); any other error as it is.
 */
function asNotRegular(error: unknown): unknown {
  if (error instanceof Error && error.name === NOT_REGULAR && !(error instanceof NotRegularError)) {
    return new NotRegularError(error.message);
  }
  return error;
}

/**
 * Why a config file (vm.yaml, the web config, a certificate) could not be read, in a few words
 * for a one-line error: never the whole of a multi-line message.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeReadFailure } from "./bounded_read.ts";
 * assert.equal(describeReadFailure(new Deno.errors.NotFound("x")), "no such file");
 * ```
 *
 * @param error What the read threw.
 * @returns The reason.
 */
export function describeReadFailure(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) return "no Deno read permission";
  const message = error instanceof Error ? error.message : String(error);
  return message.split(/\r\n|\r|\n/, 1)[0] ?? "";
}

/** Options of {@linkcode readRegularFile}. */
export interface ReadRegularOptions {
  /** The cap: a file holding more is refused, and never read past `maxBytes + 1`. */
  maxBytes: number;
}

/**
 * Reads a configuration file (vm.yaml, the web config, a certificate, a key) that must be a
 * regular file of at most `maxBytes`, without ever blocking on what the path turns out to be.
 * The path is opened with `O_NONBLOCK` (`Deno.open` has no such option, `node:fs` does), so a
 * FIFO swapped in at any moment opens at once instead of waiting for a writer; the type and size
 * then come from the open file (`fstat`) and the content from the same handle, so a path swapped
 * after the check cannot slip through. Symlinks are followed (Kubernetes mounts ConfigMaps and
 * Secrets as symlinks). Needs only `--allow-read` for the path, like `Deno.open`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { NotRegularError, readRegularFile } from "./bounded_read.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vm.yaml`, "vm_infos:\n");
 * const bytes = await readRegularFile(`${dir}/vm.yaml`, { maxBytes: 1024 });
 * assert.equal(new TextDecoder().decode(bytes), "vm_infos:\n");
 * await assert.rejects(readRegularFile(dir, { maxBytes: 1024 }), NotRegularError);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path The file.
 * @param options The cap.
 * @returns Its bytes.
 * @throws {NotRegularError} "not a regular file (a FIFO)": a FIFO, device, socket or directory.
 * @throws {TooLargeError} "larger than N bytes".
 * @throws {Deno.errors.NotFound} "no such file".
 * @throws {Deno.errors.PermissionDenied} "permission denied" (by the kernel).
 * @throws {Deno.errors.NotCapable} Without Deno read permission for the path.
 */
export async function readRegularFile(
  path: string,
  options: ReadRegularOptions,
): Promise<Uint8Array> {
  const { maxBytes } = options;
  const file = await fsPromises.open(path, NONBLOCKING_READ).catch(async (error) => {
    throw await denoError(path, error);
  });
  try {
    const info = await file.stat();
    if (!info.isFile()) throw new NotRegularError(`not a regular file (${nodeFileType(info)})`);
    if (info.size > maxBytes) throw new TooLargeError(`larger than ${maxBytes} bytes`);
    // The file may grow after the fstat: read up to one byte past the cap to see that it did.
    const bytes = await readUpTo(async (buffer) => {
      const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
      return bytesRead === 0 ? null : bytesRead;
    }, maxBytes);
    if (bytes.length > maxBytes) throw new TooLargeError(`larger than ${maxBytes} bytes`);
    return bytes;
  } finally {
    await file.close();
  }
}

/**
 * Read-only, not waiting for a FIFO's writer (or a device), never taking a controlling terminal.
 * `O_NONBLOCK` changes nothing for a regular file's reads.
 */
const NONBLOCKING_READ = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY;

/** What a `node:fs` stat that is not a regular file is, in the words of {@linkcode fileType}. */
function nodeFileType(info: Stats): string {
  if (info.isDirectory()) return "a directory";
  if (info.isFIFO()) return "a FIFO";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  if (info.isSocket()) return "a socket";
  return "not a regular file";
}

/**
 * A `node:fs` open error as the error callers already tell apart: missing, refused, or not a
 * regular file (a socket refuses to be opened: ENXIO).
 */
async function denoError(path: string, error: unknown): Promise<unknown> {
  const code = (error as { code?: unknown }).code;
  if (code === "ENXIO") {
    const info = await Deno.stat(path).catch(() => undefined);
    const what = info === undefined ? "no such device or address" : fileType(info);
    return new NotRegularError(`not a regular file (${what})`, { cause: error });
  }
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new Deno.errors.NotFound("no such file", { cause: error });
  }
  if (code === "EACCES" || code === "EPERM") {
    return new Deno.errors.PermissionDenied("permission denied", { cause: error });
  }
  return error;
}

/**
 * {@linkcode readRegularFile} as text: for debugfs stat files that were not listed as regular
 * files (docs/metrics.md, "When the kernel hides stats"), so a FIFO, a device (a symlink to `/dev/zero`),
 * a directory or a unix socket is a {@linkcode NotRegularError} at the cost of one `open`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readBoundedTextNonBlocking } from "./bounded_read.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/exits`, "42\n");
 * assert.equal(await readBoundedTextNonBlocking(`${dir}/exits`, 4096), "42\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path The file.
 * @param maxBytes The cap.
 * @returns The text.
 * @throws {NotRegularError} When the path is not a regular file.
 * @throws {TooLargeError} When it holds more than `maxBytes`.
 */
export async function readBoundedTextNonBlocking(path: string, maxBytes: number): Promise<string> {
  return decoder.decode(await readRegularFile(path, { maxBytes }));
}
