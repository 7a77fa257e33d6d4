/**
 * Holds the vm.yaml in force and replaces it only with one that validates:
 * on SIGHUP, on `POST /-/reload` and when the file changes on disk.
 *
 * @module
 */

import type { Logger } from "../log/logger.ts";
import { CoalescedReload } from "../system/coalesced_reload.ts";
import { readVmConfig, type VmConfig } from "./vm_config.ts";

/** Options of {@linkcode ConfigStore}. */
export interface ConfigStoreOptions {
  /** Path of vm.yaml. */
  path: string;
  /** Whether the user named the path (then a missing file is an error). */
  explicit: boolean;
  /** Logger. */
  logger: Logger;
  /** Clock in ms, for tests. */
  now?: () => number;
}

/** The config in force and how its last reload went. */
export class ConfigStore {
  #options: ConfigStoreOptions;
  #config: VmConfig = { entries: [] };
  #lastReloadSuccessful = false;
  #lastSuccessMs: number | undefined;
  #reloads = new CoalescedReload((reason) => this.#reloadNow(reason));
  /** The version of the file the last load read, to tell whether it changed since. */
  #loadedVersion: string | undefined;

  /**
   * Creates a store holding an empty config until the first load.
   *
   * @param options Where the file is.
   */
  constructor(options: ConfigStoreOptions) {
    this.#options = options;
  }

  /** The config in force (empty until the first good load). */
  get config(): VmConfig {
    return this.#config;
  }

  /** Whether the last load or reload succeeded. */
  get lastReloadSuccessful(): boolean {
    return this.#lastReloadSuccessful;
  }

  /** When the last good load happened, in seconds since the epoch. */
  get lastSuccessTimestamp(): number | undefined {
    return this.#lastSuccessMs === undefined ? undefined : this.#lastSuccessMs / 1000;
  }

  /** Whether any load has succeeded (the exporter is ready). */
  get ready(): boolean {
    return this.#lastSuccessMs !== undefined;
  }

  /**
   * Loads the file; on failure keeps the config in force. Requests are coalesced, whatever
   * asks (SIGHUP, a file change, `POST /-/reload`): at most one load runs and one waits. A
   * request made while a load runs is covered by the next load (the file may have changed since
   * the running one read it), which all such requests share, so 100 requests in a row cost at
   * most 2 loads.
   *
   * @param reason What asked for the load, for the log.
   * @returns undefined when the load that covered this request put a config in force, else why
   *   that load rejected the file (the same error for every request it covered).
   */
  reload(reason: string): Promise<Error | undefined> {
    return this.#reloads.request(reason);
  }

  async #reloadNow(reason: string): Promise<Error | undefined> {
    try {
      await this.#load(reason);
      return undefined;
    } catch (error) {
      this.#lastReloadSuccessful = false;
      this.#options.logger.error("Cannot load vm.yaml; keeping the config in force", {
        reason,
        err: (error as Error).message,
      });
      return error as Error;
    }
  }

  /**
   * The first load, at start: there is no old config to keep, so it throws.
   *
   * @returns The config in force.
   * @throws {Error} Why the file could not be loaded.
   */
  async loadInitial(): Promise<VmConfig> {
    await this.#load("start");
    return this.#config;
  }

  async #load(reason: string): Promise<void> {
    const { path, explicit, logger } = this.#options;
    let config: VmConfig | undefined;
    const permission = await Deno.permissions.query({ name: "read", path });
    if (!explicit && permission.state !== "granted") {
      // Least privilege: whoever runs without a vm.yaml need not grant read access to one.
      logger.info("No read permission for the default vm.yaml; naming VMs without it", { path });
    } else {
      // Taken before the read: a change in between makes the next look see a newer version.
      this.#loadedVersion = await fileVersion(path);
      config = await readVmConfig(path, { explicit });
      if (config === undefined) {
        logger.info("No vm.yaml; naming VMs from their command lines", { path });
      } else {
        logger.info("Loaded vm.yaml", { path, vms: config.entries.length, reason });
      }
    }
    this.#config = config ?? { entries: [] };
    this.#lastReloadSuccessful = true;
    this.#lastSuccessMs = (this.#options.now ?? Date.now)();
  }

  /**
   * Reloads when the file changes, looking once a second with stat(2), which opens nothing.
   * Deno's watcher (inotify) opens the path of every event it gets, so a FIFO put in vm.yaml's
   * directory, or in its place, blocked the watcher thread for good: later edits were missed and
   * the exit froze. A new inode, size or change time is a new version (editors and config
   * managers replace the file); a path that is missing or not a regular file is logged once and
   * loaded when it is one again.
   *
   * @param signal Stops watching.
   */
  async watch(signal: AbortSignal): Promise<void> {
    const { path, explicit, logger } = this.#options;
    const readable = await Deno.permissions.query({ name: "read", path });
    if (!explicit && readable.state !== "granted") return; // Running without vm.yaml by design.
    let reported: string | undefined;
    while (!signal.aborted) {
      const kind = await fileKind(path);
      if (kind !== "a regular file" && reported !== kind) {
        logger.info(
          "vm.yaml is missing or not a regular file; it will be loaded when it is one",
          { path, is: kind },
        );
      }
      reported = kind === "a regular file" ? undefined : kind;
      if (reported === undefined && await fileVersion(path) !== this.#loadedVersion) {
        await this.reload("file changed");
      }
      await pause(WATCH_INTERVAL_MS, signal);
    }
  }
}

/** How often {@linkcode ConfigStore.watch} looks at the file. */
const WATCH_INTERVAL_MS = 1000;

/** Which version of a file is at a path: inode, size, change times; "missing" if none. */
async function fileVersion(path: string): Promise<string> {
  try {
    const info = await Deno.stat(path);
    return [info.ino, info.size, info.mtime?.getTime(), info.ctime?.getTime()].join("/");
  } catch {
    return "missing";
  }
}

/** What is at a path, in words: "a regular file", "missing", "a directory", "something else". */
async function fileKind(path: string): Promise<string> {
  try {
    const info = await Deno.stat(path);
    return info.isFile ? "a regular file" : info.isDirectory ? "a directory" : "something else";
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
