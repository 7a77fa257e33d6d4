/**
 * Keeps reads that block from wedging the exporter. A scrape waits for a read
 * only until its deadline; a read still blocked then is left to finish on its
 * worker thread, and until it does its path is not read again, so blocked
 * reads never pile up (one per path, and at most {@linkcode MAX_BLOCKED_READS}).
 *
 * @module
 */

import { BlockedReadError } from "./file_system.ts";

/** How many reads may be blocked past their scrape's deadline at once; more are skipped. */
export const MAX_BLOCKED_READS = 64;

/** Thrown by a wait that its deadline cut short. */
export class DeadlineError extends Error {
  /** The error's name. */
  override name = "DeadlineError";
}

interface InFlight {
  promise: Promise<unknown>;
  /** A scrape gave up waiting for it: it counts as blocked until it returns. */
  abandoned: boolean;
  /** It returned. */
  settled: boolean;
}

/**
 * Waits for `promise` until `signal` aborts.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { untilAborted } from "./read_guard.ts";
 * const never = new Promise<string>(() => {});
 * await assert.rejects(untilAborted(never, AbortSignal.abort()), { name: "DeadlineError" });
 * ```
 *
 * @param promise What to wait for; it goes on running after an abort.
 * @param signal The deadline.
 * @returns What `promise` resolves to.
 * @throws {DeadlineError} When the signal aborts first.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new DeadlineError("Deadline passed"));
  return Promise.race([promise, whenAborted(signal)]);
}

/**
 * Rejects when the signal aborts: one listener per signal, however many reads wait on it. A
 * listener per wait made a first scrape of 20,000 VMs (a command-line read each) hold the event
 * loop for seconds: adding a listener looks through those already added.
 */
const abortions = new WeakMap<AbortSignal, Promise<never>>();

function whenAborted(signal: AbortSignal): Promise<never> {
  let aborted = abortions.get(signal);
  if (aborted === undefined) {
    aborted = new Promise<never>((_, reject) => {
      signal.addEventListener("abort", () => reject(new DeadlineError("Deadline passed")), {
        once: true,
      });
    });
    aborted.catch(() => {}); // Nobody may be waiting any more when it aborts.
    abortions.set(signal, aborted);
  }
  return aborted;
}

/** A read in flight, as {@linkcode ReadGuard.begin} returns it. */
export interface GuardedRead<T> {
  /** Settles when the read returns, however late. */
  readonly done: Promise<T>;
  /** Whether a wait for it was cut short by a deadline and it has not returned yet. */
  readonly blocked: boolean;
  /**
   * Waits for the read until `signal` aborts; a read whose wait was cut short
   * counts as blocked until it returns.
   *
   * @throws {DeadlineError} When the deadline passes first.
   */
  wait(signal: AbortSignal): Promise<T>;
}

/** Tracks the reads in flight by path, across scrapes. */
export class ReadGuard {
  #inFlight = new Map<string, InFlight>();
  #blocked = 0;
  #maxBlocked: number;

  /**
   * Creates a guard with no read in flight.
   *
   * @param maxBlocked How many reads may be blocked at once. Default {@linkcode MAX_BLOCKED_READS}.
   */
  constructor(maxBlocked: number = MAX_BLOCKED_READS) {
    this.#maxBlocked = maxBlocked;
  }

  /** Reads that a scrape gave up on and that have not returned yet. */
  get blocked(): number {
    return this.#blocked;
  }

  /**
   * Runs `read` for `path` and waits for it until `signal` aborts. A read of
   * the same path that is merely in flight (another scrape at the same time)
   * is joined; one that a scrape gave up on is not started again.
   *
   * @param path What is read; the key of the in-flight table.
   * @param read Starts the read.
   * @param signal The scrape's deadline.
   * @returns What the read returns.
   * @throws {BlockedReadError} When the path's earlier read is still blocked, or too many are.
   * @throws {DeadlineError} When the deadline passes first (the read goes on, counted as blocked).
   */
  read<T>(path: string, read: () => Promise<T>, signal: AbortSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(new DeadlineError("Deadline passed"));
    try {
      return this.begin(path, read).wait(signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Starts `read` for `path`, or joins the read of it in flight.
   *
   * @param path What is read.
   * @param read Starts the read.
   * @returns The read in flight.
   * @throws {BlockedReadError} When the path's earlier read is still blocked, or too many are.
   */
  begin<T>(path: string, read: () => Promise<T>): GuardedRead<T> {
    let entry = this.#inFlight.get(path);
    if (entry?.abandoned) {
      throw new BlockedReadError(`Not read: an earlier read of "${path}" has not returned`);
    }
    if (entry === undefined) {
      if (this.#blocked >= this.#maxBlocked) {
        throw new BlockedReadError(
          `Not read "${path}": ${this.#blocked} reads are blocked already`,
        );
      }
      entry = this.#start(path, read);
    }
    const current = entry;
    return {
      done: current.promise as Promise<T>,
      get blocked() {
        return current.abandoned && !current.settled;
      },
      wait: (signal) =>
        untilAborted(current.promise as Promise<T>, signal).catch((error) => {
          if (error instanceof DeadlineError && !current.abandoned) {
            current.abandoned = true;
            this.#blocked++;
          }
          throw error;
        }),
    };
  }

  /**
   * Counts a read that runs outside this guard (a reader Worker stuck in a file's open) as
   * blocked until `released` settles: meanwhile its path is not read again, as if a scrape had
   * given up waiting for it here.
   *
   * @example Usage
   * ```ts
   * import assert from "node:assert/strict";
   * import { ReadGuard } from "./read_guard.ts";
   * const guard = new ReadGuard();
   * const released = Promise.withResolvers<void>();
   * assert.equal(guard.markBlocked("/x", released.promise), true);
   * assert.equal(guard.blocked, 1);
   * released.resolve();
   * ```
   *
   * @param path The file the read is stuck on.
   * @param released Settles when the stuck read has returned.
   * @returns Whether it is counted: false when the path is blocked already, or too many are.
   */
  markBlocked(path: string, released: Promise<unknown>): boolean {
    const entry = this.#inFlight.get(path);
    if (entry?.abandoned) return false;
    if (entry === undefined && this.#blocked >= this.#maxBlocked) return false;
    const current = entry ?? this.#start(path, () => released);
    current.abandoned = true;
    this.#blocked++;
    return true;
  }

  #start(path: string, read: () => Promise<unknown>): InFlight {
    const entry: InFlight = { promise: Promise.resolve(), abandoned: false, settled: false };
    entry.promise = read().finally(() => {
      entry.settled = true;
      this.#inFlight.delete(path);
      if (entry.abandoned) this.#blocked--;
    });
    // Nobody may be waiting any more when it fails; the waiters saw the error already.
    entry.promise.catch(() => {});
    this.#inFlight.set(path, entry);
    return entry;
  }
}
