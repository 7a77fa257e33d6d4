/**
 * What a reader Worker runs: it keeps each VM's list of stat file paths for
 * the VM's lifetime and, asked to read a list of VMs, reads each VM's files
 * (open, one read, close: nothing stays open) and answers per VM with the
 * values in a transferred `Float64Array` and what is not a safe integer in a
 * small side list.
 *
 * Workers are started from this module's source text, not its file: loading a
 * module file in a Worker needs read permission on it, which no documented run
 * mode grants (`--allow-read` covers the bind mounts only). So the functions
 * that run in the Worker use nothing but their arguments, each other and
 * globals, and {@linkcode readerWorkerSource} joins their text.
 *
 * @module
 */

import { parseStatBytes } from "./stat_bytes.ts";
import { exposedGc } from "../system/idle_heap_release.ts";

/** A file whose bytes are not a safe integer, or which could not be read. */
export type SideEntry =
  /** The text, cut to its first 40 characters (the malformed message's excerpt). */
  | { index: number; kind: "text"; text: string }
  /** Over the size cap. */
  | { index: number; kind: "too_large" }
  /** The read threw: the error's class name (`NotFound`, `PermissionDenied`, ...) and message. */
  | { index: number; kind: "error"; name: string; message: string };

/** Messages to a reader Worker. */
export type ReaderRequest =
  /**
   * First message: the progress cells, the size cap, and how long after its last read the Worker
   * collects its heap (undefined: never).
   */
  | { kind: "init"; progress: Int32Array; maxBytes: number; collectAfterMs: number | undefined }
  /** The VM's paths, replacing any earlier list. */
  | { kind: "paths"; vm: string; paths: readonly string[] }
  /** The VM is gone. */
  | { kind: "forget"; vm: string }
  /** Read these VMs' files, in this order. */
  | { kind: "read"; vms: readonly string[] };

/** Messages from a reader Worker. */
export type ReaderReply =
  /** One VM read: `values[i]` is file i's value, NaN where `side` has an entry for it. */
  | { kind: "vm"; vm: string; values: Float64Array<ArrayBuffer>; side: SideEntry[] }
  /** Told to stop: it read nothing more. */
  | { kind: "cancelled" }
  /** Reads had stopped for a while: it collected its heap. */
  | { kind: "collected" };

/** Cells of the shared progress array. */
export const PROGRESS = {
  /** Index, in the VM being read, of the file being opened or read; -1 between VMs. */
  file: 0,
  /** Set to 1 by the pool to stop the Worker before its next file. */
  cancel: 1,
  /**
   * Index, in the read request, of the VM being read; -1 between requests. With it the pool
   * blames the right VM even when replies for earlier VMs are still queued to the main thread.
   */
  vm: 2,
  /** When the Worker began the file being read: `Date.now()` modulo 2^31 (an Int32 cell). */
  since: 3,
} as const;

/** One VM's result, as {@linkcode readStatFiles} returns it. */
export interface StatFilesResult {
  /** Values; NaN where `side` says why. */
  values: Float64Array<ArrayBuffer>;
  /** Files that are not a safe integer, or failed. */
  side: SideEntry[];
}

/**
 * Reads a file into `buffer` through Deno's file API: open, one read of the buffer's length,
 * close. A read that is empty, fills the buffer or fails (what a device such as `/dev/zero` or a
 * directory gives; a debugfs stat is never empty and fits) is checked with `fstat` and is then an
 * error named `NotRegularError` unless the file is regular. The open waits on a FIFO swapped in
 * after the listing (Deno's open has no `O_NONBLOCK`, and `node:fs` would cost each Worker ~5 MB);
 * the pool abandons a Worker stuck so at the deadline.
 *
 * @param path The file.
 * @param buffer Where its bytes go.
 * @returns The bytes read.
 */
export function readFileInto(path: string, buffer: Uint8Array): number {
  const file = Deno.openSync(path, { read: true });
  try {
    const notRegular = (): Error | undefined => {
      let info: Deno.FileInfo;
      try {
        info = file.statSync();
      } catch {
        return undefined; // The read's own outcome stands.
      }
      if (info.isFile) return undefined;
      const what = info.isDirectory
        ? "a directory"
        : info.isFifo
        ? "a FIFO"
        : info.isCharDevice
        ? "a character device"
        : info.isBlockDevice
        ? "a block device"
        : info.isSocket
        ? "a socket"
        : "not a regular file";
      const error = new Error(`Not a regular file "${path}": ${what}`);
      error.name = "NotRegularError";
      return error;
    };
    let used: number;
    try {
      used = file.readSync(buffer) ?? 0;
    } catch (error) {
      throw notRegular() ?? error;
    }
    if (used === 0 || used === buffer.length) {
      const error = notRegular();
      if (error !== undefined) throw error;
    }
    return used;
  } finally {
    file.close();
  }
}

/** Reads a file into a buffer, returning the bytes read; {@linkcode readFileInto} in a Worker. */
export type ReadInto = (path: string, buffer: Uint8Array) => number;

/** What {@linkcode readStatFiles} reads with. */
export interface ReaderIo {
  /** The read buffer: the size cap plus one byte. */
  buffer: Uint8Array;
  /** The progress cells ({@linkcode PROGRESS}). */
  progress: Int32Array;
  /** Decodes what is not a number. */
  decoder: TextDecoder;
  /** Reads one file. */
  read: ReadInto;
}

/**
 * Reads stat files: for each, one read of the buffer's length. A read that fills the buffer is
 * over the cap (the buffer is the cap plus one byte).
 *
 * @param paths The files.
 * @param io The read buffer, the progress cells, a decoder and the read.
 * @returns Values and side entries, or undefined when cancelled before a file.
 */
export function readStatFiles(
  paths: readonly string[],
  io: ReaderIo,
): StatFilesResult | undefined {
  const { buffer, progress, decoder } = io;
  const values = new Float64Array(paths.length);
  const side: SideEntry[] = [];
  for (let i = 0; i < paths.length; i++) {
    if (Atomics.load(progress, 1) !== 0) return undefined;
    Atomics.store(progress, 0, i);
    Atomics.store(progress, 3, Date.now() % 2147483648);
    let used = 0;
    try {
      used = io.read(paths[i]!, buffer);
    } catch (error) {
      values[i] = NaN;
      const { name, message } = error as Error;
      side.push({ index: i, kind: "error", name, message });
      continue;
    }
    if (used === buffer.length) {
      values[i] = NaN;
      side.push({ index: i, kind: "too_large" });
      continue;
    }
    const value = parseStatBytes(buffer, used);
    values[i] = value;
    if (value !== value) { // NaN: the text decides, on the main thread.
      side.push({
        index: i,
        kind: "text",
        text: decoder.decode(buffer.subarray(0, used)).slice(0, 40),
      });
    }
  }
  // Between VMs no file is being read: a deadline now blames none.
  Atomics.store(progress, 0, -1);
  return { values, side };
}

/** The part of a Worker's global scope the reader uses. */
export interface ReaderScope {
  /** Receives requests. */
  onmessage: ((event: MessageEvent<ReaderRequest>) => void) | null;
  /** Sends a reply, transferring buffers. */
  postMessage(message: ReaderReply, transfer: Transferable[]): void;
}

/**
 * The Worker's main: answers requests on `scope`.
 *
 * @param scope The Worker's global scope.
 * @param read Reads one file; {@linkcode readFileInto} in a Worker.
 */
export function runReaderWorker(scope: ReaderScope, read: ReadInto): void {
  const lists = new Map<string, readonly string[]>();
  const decoder = new TextDecoder();
  let io: ReaderIo | undefined;
  let collectAfterMs: number | undefined;
  let quiet: ReturnType<typeof setTimeout> | undefined;
  let gc: Promise<(() => void) | undefined> | undefined;
  // A Worker's heap is its own: the main thread's idle collection does not reach it, and a large
  // host's reads leave a file object per file behind.
  const collect = (): void => {
    gc ??= exposedGc();
    gc.then((run) => {
      if (run === undefined) return; // This runtime refuses --expose-gc: nothing to report.
      run();
      scope.postMessage({ kind: "collected" }, []);
    });
  };
  scope.onmessage = (event) => {
    const request = event.data;
    if (request.kind === "init") {
      io = {
        buffer: new Uint8Array(request.maxBytes + 1),
        progress: request.progress,
        decoder,
        read,
      };
      collectAfterMs = request.collectAfterMs;
    } else if (request.kind === "paths") {
      lists.set(request.vm, request.paths);
    } else if (request.kind === "forget") {
      lists.delete(request.vm);
    } else if (io !== undefined) {
      clearTimeout(quiet);
      if (!readVms(request.vms, { scope, lists, io })) return;
      if (collectAfterMs !== undefined) quiet = setTimeout(collect, collectAfterMs);
    }
  };
}

/**
 * Reads the VMs' files and answers per VM.
 *
 * @param vms The VMs, by key, in the order asked.
 * @param worker Where to answer, the VMs' path lists, the buffer and progress cells.
 * @returns False when told to stop (it answered "cancelled").
 */
function readVms(
  vms: readonly string[],
  worker: {
    scope: ReaderScope;
    lists: Map<string, readonly string[]>;
    io: ReaderIo;
  },
): boolean {
  const { scope, lists, io } = worker;
  for (let i = 0; i < vms.length; i++) {
    const vm = vms[i]!;
    Atomics.store(io.progress, 2, i);
    const result = readStatFiles(lists.get(vm) ?? [], io);
    if (result === undefined) {
      scope.postMessage({ kind: "cancelled" }, []);
      return false;
    }
    scope.postMessage({ kind: "vm", vm, ...result }, [result.values.buffer]);
  }
  Atomics.store(io.progress, 2, -1);
  return true;
}

/**
 * The source text a reader Worker is started from: this module's Worker functions and the
 * parser they share with the main thread, then a call of {@linkcode runReaderWorker}.
 *
 * @returns JavaScript source.
 */
export function readerWorkerSource(): string {
  return [parseStatBytes, readFileInto, readStatFiles, exposedGc, readVms, runReaderWorker]
    .map(String).join("\n") +
    "\nrunReaderWorker(self, readFileInto);\n";
}
