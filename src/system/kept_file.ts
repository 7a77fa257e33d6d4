/**
 * Files kept open between scrapes and read again from their start: a read of an open file costs
 * one syscall and no permission check, where an open costs Deno's canonicalization of the path
 * (one `readlink` per component without `-A`) and two more syscalls. Only for files whose read
 * fails once what they describe is gone (a procfs file of an exited thread), so that a kept file
 * never reports what is gone, and never holds anything alive.
 *
 * @module
 */

import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { NotRegularError, tooLarge } from "./bounded_read.ts";
import { PROC_FILE_MAX_BYTES, readBoundedText } from "./bounded_read.ts";
import { parseMaxFds } from "./proc_pid.ts";

/** A file kept open, read from its start each time. */
export interface KeptFile {
  /**
   * Reads the file from its start, synchronously: one positioned read of `maxBytes + 1` bytes.
   *
   * @throws {TooLargeError} When it holds more than `maxBytes`.
   * @throws {Error} When the read fails (a procfs file whose task has exited: ESRCH).
   */
  read(maxBytes: number): string;
  /** Closes it; idempotent. */
  close(): void;
}

/**
 * Read-only, not waiting for a FIFO's writer (a regular file's reads do not change), never taking
 * a controlling terminal: a kept file is opened synchronously, so its open must not wait.
 */
const KEPT_OPEN = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/** Why a file was not kept: it is not a file the kernel makes on read (a procfs file). */
export class NotKeptError extends Error {
  /** The error's name. */
  override name = "NotKeptError";
}

const decoder = new TextDecoder();
let buffer = new Uint8Array(PROC_FILE_MAX_BYTES + 1);

/**
 * Opens a procfs file to keep ({@linkcode KeptFile}), synchronously and without waiting on what
 * the path turns out to be. Only a regular file of size 0 is kept: procfs makes its files' text on
 * read and gives them no size, and a task's file fails to read once the task has exited (the open
 * file holds only its pid), so a kept file never reports what is gone and holds nothing alive. A
 * file on disk (a fixture tree) has its size, and would go on reading its old bytes after its path
 * is removed: it is read the ordinary way. (The file system's magic would say it too, but `statfs`
 * needs `--allow-sys`, which no documented run mode grants.)
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { NotKeptError, openKeptFile } from "./kept_file.ts";
 * const kept = openKeptFile(`/proc/${Deno.pid}/task/${Deno.pid}/schedstat`);
 * assert.match(kept.read(128), /^\d+ \d+ \d+\n$/);
 * kept.close();
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/schedstat`, "1 2 3\n");
 * assert.throws(() => openKeptFile(`${dir}/schedstat`), NotKeptError);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path The file.
 * @returns The open file.
 * @throws {NotKeptError} When the file has a size: not made by the kernel on read.
 * @throws {NotRegularError} When the path is not a regular file (it is not kept).
 */
export function openKeptFile(path: string): KeptFile {
  const fd = openSync(path, KEPT_OPEN);
  let open = true;
  try {
    // Of the open file: a path swapped after the open does not change what is kept.
    const info = fstatSync(fd);
    if (!info.isFile()) throw new NotRegularError(`not a regular file: "${path}"`);
    if (info.size !== 0) throw new NotKeptError(`not made on read (size ${info.size}): "${path}"`);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return {
    read(maxBytes) {
      if (!open) throw new Error(`Kept file closed: "${path}"`);
      if (buffer.length < maxBytes + 1) buffer = new Uint8Array(maxBytes + 1);
      const used = readSync(fd, buffer, 0, maxBytes + 1, 0);
      if (used > maxBytes) throw tooLarge(path, maxBytes);
      return decoder.decode(buffer.subarray(0, used));
    },
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}

/** The soft open file limit assumed when `<procfs>/self/limits` does not say: Linux's default. */
export const ASSUMED_FD_LIMIT = 1024;

/**
 * Descriptors a process may keep open for re-reading: a quarter of its soft open file limit. The
 * rest is the HTTP server's (its connection cap leaves a reserve below the limit for everything
 * else, and its default 512 connections fit beside a quarter of the default 1024) and the
 * scrape's own opens.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { keptFilesMax } from "./kept_file.ts";
 * assert.equal(keptFilesMax(1024), 256);
 * assert.equal(keptFilesMax(undefined), 256);
 * ```
 *
 * @param fdLimit The soft limit, or undefined when unknown.
 * @returns How many files may be kept open at once.
 */
export function keptFilesMax(fdLimit: number | undefined): number {
  return Math.floor((fdLimit ?? ASSUMED_FD_LIMIT) / 4);
}

/** A count of kept-open files against a maximum, shared by everything that keeps files open. */
export class KeptFileBudget {
  #max: number;
  #used = 0;

  /**
   * Creates a budget.
   *
   * @param max Files that may be kept open at once.
   */
  constructor(max: number) {
    this.#max = max;
  }

  /** Files kept open now. */
  get used(): number {
    return this.#used;
  }

  /** Files that may be kept open at once. */
  get max(): number {
    return this.#max;
  }

  /**
   * Takes one file's place, if there is one left.
   *
   * @returns Whether it was taken (then {@linkcode KeptFileBudget.give} it back on close).
   */
  take(): boolean {
    if (this.#used >= this.#max) return false;
    this.#used++;
    return true;
  }

  /** Gives one file's place back. */
  give(): void {
    if (this.#used > 0) this.#used--;
  }
}

let shared: Promise<KeptFileBudget> | undefined;

/**
 * The process's one budget of kept-open files, sized from `<procfs>/self/limits` when first
 * asked for: every collector that keeps files open takes from it, so together they stay under the
 * limit.
 *
 * @param procfs The procfs mount point.
 * @returns The budget.
 */
export function keptFileBudget(procfs: string): Promise<KeptFileBudget> {
  shared ??= readBoundedText(`${procfs}/self/limits`, PROC_FILE_MAX_BYTES).then(
    (text) => new KeptFileBudget(keptFilesMax(parseMaxFds(text))),
    () => new KeptFileBudget(keptFilesMax(undefined)),
  );
  return shared;
}
