/**
 * A value loaded from files, replaced only by a load that succeeds: on request (SIGHUP,
 * `POST /-/reload`), coalesced, and when a file changes, seen by polling stat(2). Serves vm.yaml
 * and the web config.
 *
 * @module
 */

import { CoalescedReload } from "./coalesced_reload.ts";

/** Options of {@linkcode PolledStore}. */
export interface PolledStoreOptions<T> {
  /** The value until the first good load. */
  initial: T;
  /**
   * Reads and checks the files; throws what is wrong (the value in force stays). `initial` is
   * true for {@linkcode PolledStore.loadInitial}.
   */
  load: (reason: string, initial: boolean) => Promise<T>;
  /** Told why a reload failed (not the initial load: its caller gets the error), e.g. to log it. */
  onReloadError?: (error: Error, reason: string) => void;
  /** The files a value was read from, the main file first: a change to one asks for a load. */
  files: (value: T) => readonly string[];
  /**
   * When given, a main file that is missing or not a regular file is not loaded until it is one
   * again; this is called once each time it turns into something else (`kind` in words, e.g.
   * `"missing"`, `"a directory"`). Without it, such a change asks for a load like any other.
   */
  notRegular?: (path: string, kind: string) => void;
  /** How often {@linkcode PolledStore.watch} looks, in ms. Defaults to 1000. */
  pollMs?: number;
  /** Clock in ms, for tests. */
  now?: () => number;
}

/** Default of {@linkcode PolledStoreOptions.pollMs}. */
export const DEFAULT_POLL_MS = 1000;

/**
 * The value in force and how its last load went.
 *
 * Loads are coalesced, whatever asks: at most one runs and one waits (see
 * {@linkcode CoalescedReload}). Changes are seen by polling stat(2), which opens nothing: Deno's
 * watcher (inotify) opens the path of every event it gets, so a FIFO put in the directory, or in
 * a file's place, blocked its thread for good. A new inode, size or change time is a new version
 * (editors and config managers replace files). The version is taken before a load reads, so a
 * change made while it reads is seen by the next look.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { PolledStore } from "./polled_store.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/limit.txt`;
 * await Deno.writeTextFile(path, "5");
 * const store = new PolledStore({
 *   initial: 0,
 *   files: () => [path],
 *   load: async () => {
 *     const value = Number(await Deno.readTextFile(path));
 *     if (!Number.isInteger(value)) throw new SyntaxError(`${path}: not an integer`);
 *     return value;
 *   },
 * });
 * strictEqual(await store.loadInitial(), 5);
 * await Deno.writeTextFile(path, "five");
 * strictEqual((await store.reload("test"))?.message, `${path}: not an integer`);
 * strictEqual(store.value, 5);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class PolledStore<T> {
  #options: PolledStoreOptions<T>;
  #value: T;
  #lastLoadSucceeded = false;
  #lastSuccessMs: number | undefined;
  #reloads = new CoalescedReload((reason) => this.#reloadNow(reason));
  /** The files' versions as the last load found them before reading. */
  #loadedVersion: FilesVersion | undefined;

  /**
   * Creates a store holding `options.initial` until the first load.
   *
   * @param options How to load, which files to watch.
   */
  constructor(options: PolledStoreOptions<T>) {
    this.#options = options;
    this.#value = options.initial;
  }

  /** The value in force. */
  get value(): T {
    return this.#value;
  }

  /** Whether the last load succeeded (false before any). */
  get lastLoadSucceeded(): boolean {
    return this.#lastLoadSucceeded;
  }

  /** When the last good load happened, in ms since the epoch. */
  get lastSuccessMs(): number | undefined {
    return this.#lastSuccessMs;
  }

  /**
   * The first load, at start: there is no old value to keep, so it throws.
   *
   * @returns The value in force.
   * @throws {Error} Why the files could not be loaded.
   */
  async loadInitial(): Promise<T> {
    await this.#load("start", true);
    return this.#value;
  }

  /**
   * Loads again; on failure keeps the value in force. A request made while a load runs is
   * covered by the next load, which all such requests share: 100 requests in a row cost at most
   * 2 loads.
   *
   * @param reason What asked, for the log.
   * @returns undefined when the load that covered this request put a value in force, else why
   *   it failed (the same error for every request it covered).
   */
  reload(reason: string): Promise<Error | undefined> {
    return this.#reloads.request(reason);
  }

  /**
   * Loads when a file changes, looking every `pollMs` until `signal` aborts. The first look is at
   * once: a change made between the first load and the watch is loaded.
   *
   * @param signal Stops watching.
   */
  async watch(signal: AbortSignal): Promise<void> {
    const { notRegular, pollMs = DEFAULT_POLL_MS } = this.#options;
    let reported: string | undefined;
    while (!signal.aborted) {
      const files = this.#options.files(this.#value);
      if (files.length === 0) return;
      const kind = await fileKind(files[0]!);
      if (notRegular !== undefined && kind !== REGULAR) {
        if (reported !== kind) notRegular(files[0]!, kind);
        reported = kind;
      } else {
        reported = undefined;
        if (changedSince(await filesVersion(files), this.#loadedVersion)) {
          await this.reload("file changed");
        }
      }
      await pause(pollMs, signal);
    }
  }

  async #reloadNow(reason: string): Promise<Error | undefined> {
    try {
      await this.#load(reason, false);
      return undefined;
    } catch (error) {
      this.#options.onReloadError?.(error as Error, reason);
      return error as Error;
    }
  }

  async #load(reason: string, initial: boolean): Promise<void> {
    const before = this.#options.files(this.#value);
    // Taken before the read: a change in between makes the next look see a newer version.
    this.#loadedVersion = await filesVersion(before);
    let value: T;
    try {
      value = await this.#options.load(reason, initial);
    } catch (error) {
      this.#lastLoadSucceeded = false;
      // Only a value in force is worth a second look: a file that failed (a FIFO swapped in) is
      // tried again when it changes, not once more per look while its change is recent.
      this.#loadedVersion = { ...this.#loadedVersion!, racy: false };
      throw error;
    }
    const after = this.#options.files(value);
    if (after.join("\0") !== before.join("\0")) this.#loadedVersion = await filesVersion(after);
    this.#value = value;
    this.#lastLoadSucceeded = true;
    this.#lastSuccessMs = (this.#options.now ?? Date.now)();
  }
}

const REGULAR = "a regular file";

/**
 * A file's change times tick with the kernel's coarse clock (a jiffy: 1-10 ms), so a rewrite of the
 * same size in the same tick as a load keeps the inode, size and times the load saw. A version
 * taken less than this after its newest change is not trusted.
 */
const RACY_MS = 100;

/** Which versions of files are at their paths, and whether that can be told from a newer one. */
interface FilesVersion {
  /** Inode, size and change times of each path, or what else is there. */
  key: string;
  /** Whether a file changed so shortly before the version was taken that it could have changed
   * again unseen in the same clock tick ("racily clean", as git calls it). */
  racy: boolean;
}

async function filesVersion(paths: readonly string[]): Promise<FilesVersion> {
  const takenMs = Date.now();
  let newestMs = -Infinity;
  const versions = await Promise.all(paths.map(async (path) => {
    try {
      const info = await Deno.stat(path);
      const times = [info.mtime?.getTime() ?? 0, info.ctime?.getTime() ?? 0];
      newestMs = Math.max(newestMs, ...times);
      return `${path}:${[info.ino, info.size, ...times].join("/")}`;
    } catch (error) {
      return `${path}:${(error as Error).name}`;
    }
  }));
  return { key: versions.join("|"), racy: newestMs > takenMs - RACY_MS };
}

/**
 * Whether the files may differ from the loaded version: another version, or one taken too soon
 * after a change to be told from a later one (then loaded again, once the clock has moved on).
 */
function changedSince(now: FilesVersion, loaded: FilesVersion | undefined): boolean {
  return loaded === undefined || now.key !== loaded.key || loaded.racy;
}

/** What is at a path, in words: "a regular file", "missing", "a directory", "something else". */
async function fileKind(path: string): Promise<string> {
  try {
    const info = await Deno.stat(path);
    return info.isFile ? REGULAR : info.isDirectory ? "a directory" : "something else";
  } catch {
    return "missing";
  }
}

/** Waits `ms`, or less if `signal` aborts first. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(wait);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const wait = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
