/**
 * Gives the heap a scrape leaves behind back to the system once scrapes stop.
 * A large host's scrape makes tens of MB of short-lived objects; V8 keeps the
 * pages they took (RSS 200 MB after 100×16 scrapes, 7-12 MB of it live), and
 * Deno never runs V8's idle-time memory reducer, so without this the
 * exporter holds its peak between scrapes for good.
 *
 * @module
 */

/**
 * Scrape-free time after which the heap a scrape left is given back: longer than the gap between
 * back-to-back scrapes, shorter than any sane scrape interval.
 */
export const HEAP_RELEASE_QUIET_MS = 1_000;

/** Options of {@linkcode IdleHeapRelease}. */
export interface IdleHeapReleaseOptions {
  /** How long no scrape must run before the heap is collected. */
  quietMs: number;
  /**
   * Collects the heap; by default V8's full, memory-reducing collection (if Deno allows it),
   * loaded when first needed.
   */
  collect?: (() => void) | undefined;
  /** The heap's committed bytes; by default `Deno.memoryUsage().heapTotal`. */
  heapBytes?: () => number;
  /** Runs `run` after `ms`, unless cancelled; by default an unref'd timer. */
  schedule?: (run: () => void, ms: number) => () => void;
}

/**
 * V8's `gc()`, which Deno makes a full, memory-reducing collection. `--expose-gc` is set at run
 * time so that no run mode needs a V8 flag. `node:v8` and `node:vm` are loaded here, on first
 * use, not at start: they add ~1.3 MB to idle RSS.
 *
 * @returns The function, or undefined if this runtime refuses it.
 */
export async function exposedGc(): Promise<(() => void) | undefined> {
  try {
    const [{ setFlagsFromString }, { runInNewContext }] = await Promise.all([
      import("node:v8"),
      import("node:vm"),
    ]);
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    return typeof gc === "function" ? () => gc() : undefined;
  } catch {
    return undefined;
  }
}

function unrefTimer(run: () => void, ms: number): () => void {
  const id = setTimeout(run, ms);
  Deno.unrefTimer(id);
  return () => clearTimeout(id);
}

/**
 * Collects the heap once no scrape has run for `quietMs`, and only when the
 * heap has at least doubled since the last collection: scrapes back to back
 * never pay for it, and a host scraped every few seconds or more returns to
 * its live heap between scrapes.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { IdleHeapRelease } from "./idle_heap_release.ts";
 * let collected = 0;
 * let pending: (() => void) | undefined;
 * const release = new IdleHeapRelease({
 *   quietMs: 1000,
 *   collect: () => collected++,
 *   heapBytes: () => 64e6,
 *   schedule: (run) => ((pending = run), () => (pending = undefined)),
 * });
 * await release.around(() => Promise.resolve("scraped"));
 * pending?.();
 * assert.equal(collected, 1);
 * ```
 */
export class IdleHeapRelease {
  readonly #quietMs: number;
  #collect: (() => void) | undefined;
  /** Loads the default collector when first needed. */
  #load: (() => Promise<(() => void) | undefined>) | undefined;
  readonly #heapBytes: () => number;
  readonly #schedule: (run: () => void, ms: number) => () => void;
  #busy = 0;
  #cancel: (() => void) | undefined;
  /** The heap's size after the last collection; 0 before the first. */
  #collectedBytes = 0;

  /**
   * Starts with no scrape running.
   *
   * @param options The quiet time, and seams for tests.
   */
  constructor(options: IdleHeapReleaseOptions) {
    this.#quietMs = options.quietMs;
    if ("collect" in options) this.#collect = options.collect;
    else this.#load = exposedGc;
    this.#heapBytes = options.heapBytes ?? (() => Deno.memoryUsage().heapTotal);
    this.#schedule = options.schedule ?? unrefTimer;
  }

  /**
   * Runs a scrape (and its rendering): no collection starts while one runs.
   *
   * @param work The scrape.
   * @returns What `work` returns.
   */
  async around<T>(work: () => Promise<T>): Promise<T> {
    this.#busy++;
    this.#cancel?.();
    this.#cancel = undefined;
    try {
      return await work();
    } finally {
      this.#busy--;
      if (this.#busy === 0 && (this.#collect ?? this.#load) !== undefined) {
        this.#cancel = this.#schedule(() => void this.#quiet(), this.#quietMs);
      }
    }
  }

  async #quiet(): Promise<void> {
    this.#cancel = undefined;
    const load = this.#load;
    this.#load = undefined;
    if (load !== undefined) this.#collect = await load();
    if (this.#busy > 0 || this.#collect === undefined) return;
    if (this.#heapBytes() < 2 * this.#collectedBytes) return;
    this.#collect();
    this.#collectedBytes = this.#heapBytes();
  }
}
