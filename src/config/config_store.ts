/**
 * Holds the vm.yaml in force and replaces it only with one that validates:
 * on SIGHUP, on `POST /-/reload` and when the file changes on disk.
 *
 * @module
 */

import type { Logger } from "../log/logger.ts";
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
  #running: Promise<Error | undefined> | undefined;
  #pending: Promise<Error | undefined> | undefined;

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
    if (this.#pending !== undefined) return this.#pending;
    if (this.#running === undefined) return this.#start(reason);
    this.#pending = this.#running.then(() => {
      this.#pending = undefined;
      return this.#start(reason);
    });
    return this.#pending;
  }

  #start(reason: string): Promise<Error | undefined> {
    const run = this.#reloadNow(reason).finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return run;
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
   * Reloads when the file changes. Watches its directory where it may, because
   * editors and config managers replace the file rather than write it in place;
   * where only the file itself may be read (least privilege), watches the file
   * and re-arms the watch on the new file after every change.
   *
   * @param signal Stops watching.
   */
  async watch(signal: AbortSignal): Promise<void> {
    const { path, explicit, logger } = this.#options;
    const readable = await Deno.permissions.query({ name: "read", path });
    if (!explicit && readable.state !== "granted") return; // Running without vm.yaml by design.
    const slash = path.lastIndexOf("/");
    const dir = slash === -1 ? "." : slash === 0 ? "/" : path.slice(0, slash);
    const base = path.slice(slash + 1);
    const permission = await Deno.permissions.query({ name: "read", path: dir });
    const watchDir = permission.state === "granted";
    const pause = (ms: number): Promise<void> =>
      new Promise((resolve) => {
        const done = (): void => {
          clearTimeout(wait);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const wait = setTimeout(done, ms);
        signal.addEventListener("abort", done, { once: true });
      });
    let timer: ReturnType<typeof setTimeout> | undefined;
    let pending = false;
    let gone = false;
    while (!signal.aborted) {
      let watcher: Deno.FsWatcher;
      try {
        watcher = Deno.watchFs(watchDir ? dir : path, { recursive: false });
      } catch (error) {
        if (!watchDir && error instanceof Deno.errors.NotFound) {
          // Replaced and not back yet, or not created yet: load it when it is.
          if (!gone) logger.info("vm.yaml is gone; it will be loaded when it is back", { path });
          gone = true;
          pending = true;
          await pause(200);
          continue;
        }
        gone = false;
        logger.warn("Cannot watch vm.yaml; reload with SIGHUP or POST /-/reload", {
          path: watchDir ? dir : path,
          err: (error as Error).message,
        });
        return;
      }
      const close = (): void => {
        clearTimeout(timer);
        watcher.close();
      };
      signal.addEventListener("abort", close, { once: true });
      if (pending) {
        pending = false; // Re-armed first, so no change after this reload goes unseen.
        await this.reload("file changed");
      }
      for await (const event of watcher) {
        if (!watchDir) {
          pending = true; // The file may have been replaced: re-arm on the new one.
          break;
        }
        if (!event.paths.some((p) => p === path || p.endsWith(`/${base}`))) continue;
        // One save is several events (create, modify, rename): reload once they settle.
        clearTimeout(timer);
        timer = setTimeout(() => this.reload("file changed"), 100);
      }
      signal.removeEventListener("abort", close);
      if (pending) {
        try {
          watcher.close();
        } catch {
          // Closed already.
        }
        await pause(100);
      }
    }
  }
}
