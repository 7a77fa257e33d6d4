/**
 * How kvm_stat reads the stat files a listing gives it: one of three
 * strategies, chosen by the caller ({@linkcode StatReads}), never by what the
 * file system happens to offer.
 *
 * - `sync`: on the main thread, a listed regular file synchronously (well
 *   under half the CPU of the async op), yielding to the event loop every few
 *   milliseconds.
 * - `async`: every file through the async op, nothing synchronous on the main
 *   thread.
 * - `workers`: in a pool of reader Workers once a scrape reads enough files
 *   (synchronously before); on a host with many files it uses more than one
 *   core and leaves the event loop free.
 *
 * Whatever the strategy, anything but a listed regular file may block: it is
 * read asynchronously through the scrape's {@linkcode ReadGuard}, opened
 * without waiting on a peer.
 *
 * @module
 */

import { parseStatValue } from "./stat_value.ts";
import type { ReaderPool, VmBatch } from "./reader_pool.ts";
import type { SideEntry, StatFilesResult } from "./reader_worker.ts";
import {
  allVms,
  type ScrapeFiles,
  type StatFile,
  type VmFiles,
  type VmListing,
} from "./stat_listing.ts";
import type { StatTyping } from "./stat_typing.ts";
import type { StatType } from "../stats/stat.ts";
import { NotRegularError, STAT_FILE_MAX_BYTES, tooLarge } from "../system/bounded_read.ts";
import { NOT_REGULAR } from "../system/nonblocking_read.ts";
import type { FileSystem } from "../system/file_system.ts";
import type { Limiter } from "../system/limiter.ts";
import { sliceSpent, yieldToEventLoop } from "../system/event_loop_slice.ts";
import { DeadlineError, type ReadGuard } from "../system/read_guard.ts";

/** How stat files are read. */
export type StatReads =
  /** On the main thread: listed regular files synchronously, yielding every few milliseconds. */
  | { kind: "sync" }
  /** Every file through the async op. */
  | { kind: "async" }
  /**
   * In reader Workers, once a scrape reads at least `minFiles` files (then for good); below that,
   * as `sync`. When too many Workers are stuck, every file goes through the guarded async path.
   */
  | { kind: "workers"; pool: ReaderPool; minFiles: number };

/** Where a scrape's reads go. */
export interface StatSink {
  /** A stat read and typed. */
  value(file: StatFile, type: StatType, value: bigint): void;
  /** A file that could not be read; `detail` says why when `error`'s message does not. */
  failed(file: StatFile, error: unknown, detail?: string): void;
  /** A file that does not hold one integer; `text` is its first characters. */
  malformed(file: StatFile, text: string): void;
}

/** What a {@linkcode StatReader} reads with, across scrapes. */
export interface StatReaderParts {
  /** File access. */
  fs: FileSystem;
  /** Bounds the async reads at once. */
  limiter: Limiter;
  /** Types what is read. */
  typing: StatTyping;
}

/** What one scrape's {@linkcode StatReader} needs. */
export interface StatReaderScrape {
  /** Where values and failures go. */
  sink: StatSink;
  /** Reads that may block go through it. */
  reads: ReadGuard;
  /** The scrape's deadline. */
  signal: AbortSignal;
}

/** Files read between two looks at the clock and the deadline. */
const CLOCK_EVERY = 64;

/**
 * How a scrape reads under `reads`: in reader Workers, on the main thread synchronously, or
 * every file through the async op (`guarded`: the pool is unusable, nothing is read in sync).
 *
 * @param reads The strategy.
 * @param scrape The scrape's files.
 * @returns The way.
 */
export function readMode(
  reads: StatReads,
  scrape: ScrapeFiles,
): "workers" | "sync" | "async" | "guarded" {
  if (reads.kind !== "workers") return reads.kind;
  const { pool, minFiles } = reads;
  if (!pool.usable) return "guarded"; // Too many Workers blocked: nothing is read in sync.
  if (pool.started) return "workers";
  let count = scrape.root.length;
  for (const vm of scrape.vms) count += vm.files.length;
  return count >= minFiles ? "workers" : "sync";
}

/**
 * The VM's files that its reader Worker reads (listed regular, not refused, never stuck a
 * Worker), the same object while they are the same files; the refused ones go to `refused`, the
 * others to `others`.
 */
function workerFiles(
  vm: VmFiles,
  aside: { others: StatFile[]; refused: StatFile[] },
): { files: StatFile[]; paths: string[] } {
  const { listing } = vm;
  const cached = listing.worker;
  const files: StatFile[] = [];
  let same = cached !== undefined;
  for (const file of vm.files) {
    if (file.refused !== undefined) {
      // Its Worker gets a list without it once, then never opens it again.
      aside.refused.push(file);
      continue;
    }
    if (!file.regular || (listing.blocking.size > 0 && listing.blocking.has(file.path))) {
      aside.others.push(file);
      continue;
    }
    if (same && cached!.files[files.length] !== file) same = false;
    files.push(file);
  }
  if (same && cached!.files.length === files.length) return cached!;
  listing.worker = { files, paths: files.map((f) => f.path) };
  return listing.worker;
}

/** Rebuilds an error a reader Worker sent by class name, so that it classifies as it would here. */
function workerError(name: string, message: string): Error {
  if (name === NOT_REGULAR) return new NotRegularError(message);
  const classes = Deno.errors as unknown as Record<string, new (message: string) => Error>;
  if (Object.hasOwn(classes, name)) return new classes[name]!(message);
  const error = new Error(message);
  error.name = name;
  return error;
}

/** Deno's message for EPERM (`std::io::Error` of errno 1). */
const EPERM = /\(os error 1\)/;

/** The error a remembered refusal is counted with; its message is the file's own, kept. */
const KERNEL_REFUSAL = new Deno.errors.PermissionDenied("Operation not permitted (os error 1)");

/** One scrape's reading: hands what parses, and what fails, to the sink. */
export class StatReader {
  readonly #parts: StatReaderParts;
  readonly #scrape: StatReaderScrape;

  /**
   * Creates the reader of one scrape.
   *
   * @param parts What it reads with.
   * @param scrape Where its results go, the read guard and the deadline.
   */
  constructor(parts: StatReaderParts, scrape: StatReaderScrape) {
    this.#parts = parts;
    this.#scrape = scrape;
  }

  /**
   * Reads the scrape's files the way `mode` says ({@linkcode readMode}).
   *
   * @param scrape The scrape's files.
   * @param how The way, and the pool for `workers`.
   */
  async read(
    scrape: ScrapeFiles,
    how: { mode: ReturnType<typeof readMode>; pool: ReaderPool | undefined },
  ): Promise<void> {
    if (how.mode === "workers") return await this.#readInWorkers(scrape, how.pool!);
    await this.#readAll(allVms(scrape), how.mode);
  }

  /**
   * A file that could not be read. A refusal by the kernel (EPERM: lockdown refuses every 0644
   * debugfs file, and lockdown is lifted only by a reboot) is kept for the VM's lifetime, so that
   * the file is counted every scrape but never opened again ({@linkcode StatListing} starts a
   * recreated VM afresh). A refusal by Deno (a missing grant) is not the kernel's, and EACCES (an
   * LSM policy, which a reload may lift) is not lockdown's: neither is kept.
   */
  #failed(listing: VmListing, file: StatFile, error: unknown): void {
    if (
      error instanceof Deno.errors.PermissionDenied && EPERM.test(error.message) &&
      file.refused === undefined
    ) {
      file.refused = error.message;
      listing.refusals++;
    }
    this.#scrape.sink.failed(file, error);
  }

  /** Counts a file the kernel refused before, as it was counted then, without opening it. */
  #refusedAgain(file: StatFile): void {
    this.#scrape.sink.failed(file, KERNEL_REFUSAL, file.refused);
  }

  /** Parses and hands on a file's text; a promise only while an unknown stat's type is looked up. */
  #accept(file: StatFile, text: string): Promise<void> | undefined {
    const value = parseStatValue(text);
    if (value === undefined) {
      // A reader Worker sends the first 40 characters: enough, as a text over 22 is malformed.
      this.#scrape.sink.malformed(file, text.slice(0, 40));
      return undefined;
    }
    return this.#acceptValue(file, value);
  }

  /**
   * Hands on a value; a promise only while an unknown stat's type is looked up. Never the sink's
   * return value: a scrape waits on every promise this returns, and 16,000 settled values would
   * cost 16,000 promises and their reactions on a large host.
   */
  #acceptValue(file: StatFile, value: bigint): Promise<void> | undefined {
    const { typing } = this.#parts;
    const { sink } = this.#scrape;
    const type = typing.known(file.name);
    if (type === undefined) return typing.fromFile(file).then((t) => sink.value(file, t, value));
    sink.value(file, type, value);
    return undefined;
  }

  /**
   * Reads asynchronously: anything but a listed regular file may block, and so may a path that
   * stuck a reader Worker (`guarded`).
   */
  async #readAsync(listing: VmListing, file: StatFile, guarded: boolean): Promise<void> {
    const { signal, reads } = this.#scrape;
    const { fs } = this.#parts;
    if (signal.aborted) return;
    if (file.refused !== undefined) return this.#refusedAgain(file);
    const maxBytes = STAT_FILE_MAX_BYTES;
    let text: string;
    try {
      // A listed regular file is made from memory on read: it needs no guard, only an open that
      // cannot wait on a peer should the path have been swapped since the listing.
      text = file.regular && !guarded
        ? await fs.readTextFile(file.path, { maxBytes, nonBlocking: true })
        : await reads.read(
          file.path,
          // Non-blocking: a FIFO, socket or device is `not_regular` at once, as docs/metrics.md
          // says, not a read that waits for a writer until the deadline.
          () => fs.readTextFile(file.path, { maxBytes, nonBlocking: true }),
          signal,
        );
    } catch (error) {
      if (!(error instanceof DeadlineError)) this.#failed(listing, file, error);
      return;
    }
    await this.#accept(file, text);
  }

  /**
   * Reads every VM's files: listed regular ones synchronously (`sync`), yielding every few
   * milliseconds, or through the async op (`async`); `guarded`: every file through the guarded
   * async path. A file the kernel refused before is counted, not opened.
   */
  async #readAll(vms: readonly VmFiles[], mode: "sync" | "async" | "guarded"): Promise<void> {
    const { signal } = this.#scrape;
    const { limiter, fs } = this.#parts;
    const guarded = mode === "guarded";
    const pending: Promise<void>[] = [];
    let count = 0;
    for (const { listing, files } of vms) {
      for (let i = 0; i < files.length; i++, count++) {
        if (count % CLOCK_EVERY === 0 && sliceSpent()) await yieldToEventLoop();
        if (signal.aborted) break;
        const file = files[i]!;
        if (file.refused !== undefined) {
          this.#refusedAgain(file);
          continue;
        }
        if (!file.regular || mode !== "sync") {
          const careful = guarded || !file.regular;
          pending.push(limiter.run(() => this.#readAsync(listing, file, careful)));
          continue;
        }
        let text: string;
        try {
          text = fs.readRegularSync(file.path, STAT_FILE_MAX_BYTES);
        } catch (error) {
          this.#failed(listing, file, error);
          continue;
        }
        const typing = this.#accept(file, text);
        if (typing !== undefined) pending.push(typing);
      }
    }
    await Promise.all(pending);
  }

  /**
   * Reads the root's and the VMs' files in the reader Workers; files a Worker must not read go
   * through the guarded async path.
   */
  async #readInWorkers(scrape: ScrapeFiles, pool: ReaderPool): Promise<void> {
    const { limiter } = this.#parts;
    const pending: Promise<void>[] = [];
    const batches: VmBatch[] = [];
    const batchFiles: StatFile[][] = [];
    const batchVms: VmFiles[] = [];
    for (const vm of allVms(scrape)) {
      if (sliceSpent()) await yieldToEventLoop();
      const aside = { others: [] as StatFile[], refused: [] as StatFile[] };
      const { files, paths } = workerFiles(vm, aside);
      for (const file of aside.refused) this.#refusedAgain(file);
      for (const file of aside.others) {
        pending.push(limiter.run(() => this.#readAsync(vm.listing, file, true)));
      }
      if (files.length === 0) continue;
      batches.push({ key: vm.key, paths });
      batchFiles.push(files);
      batchVms.push(vm);
    }
    const stuck = await pool.read(batches, {
      signal: this.#scrape.signal,
      onResult: (batch, result) =>
        this.#acceptAll({ ...batchVms[batch]!, files: batchFiles[batch]! }, result, pending),
    });
    // The pool stopped meanwhile (too many Workers stuck), or an earlier scrape's read is stuck.
    if (stuck === undefined) {
      const vms = batchVms.map((vm, batch) => ({ ...vm, files: batchFiles[batch]! }));
      pending.push(this.#readAll(vms, "guarded"));
    }
    for (const { batch, file, released } of stuck ?? []) {
      this.#stuck(batchVms[batch]!, batchFiles[batch]![file]!, released);
    }
    await Promise.all(pending);
  }

  /** Takes one VM's values from a reader Worker, in the order of the files it was given. */
  #acceptAll(vm: VmFiles, result: StatFilesResult, pending: Promise<void>[]): void {
    const { values, side } = result;
    const { files, listing } = vm;
    let next = 0;
    for (let i = 0; i < files.length; i++) {
      const value = values[i]!;
      // NaN is the one value not equal to itself: the side list says what the file held.
      const typing = value === value
        ? this.#acceptValue(files[i]!, BigInt(value))
        : side[next]?.index === i
        ? this.#acceptSide(listing, files[i]!, side[next++]!)
        : undefined;
      if (typing !== undefined) pending.push(typing);
    }
  }

  #acceptSide(listing: VmListing, file: StatFile, entry: SideEntry): Promise<void> | undefined {
    if (entry.kind === "text") return this.#accept(file, entry.text);
    this.#failed(
      listing,
      file,
      entry.kind === "too_large"
        ? tooLarge(file.path, STAT_FILE_MAX_BYTES)
        : workerError(entry.name, entry.message),
    );
    return undefined;
  }

  /**
   * A file a reader Worker was stuck on at the deadline: read through the guarded async path from
   * now on, and counted as a blocked read until the abandoned Worker returns.
   */
  #stuck(vm: VmFiles, file: StatFile, released: Promise<void>): void {
    vm.listing.blocking.add(file.path);
    // Not counted when too many reads are blocked already; still not read again by a Worker.
    this.#scrape.reads.markBlocked(file.path, released);
  }
}
