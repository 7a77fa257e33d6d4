/**
 * Holds the vm.yaml in force and replaces it only with one that validates:
 * on SIGHUP, on `POST /-/reload` and when the file changes on disk.
 *
 * @module
 */

import type { Logger } from "../log/logger.ts";
import { PolledStore } from "../system/polled_store.ts";
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

/**
 * Where the config in force came from: the file, no file (VMs are named from their command
 * lines), or a default path the exporter may not read.
 */
export type ConfigOrigin = "file" | "absent" | "not_readable";

/** The config in force and how its last reload went. */
export class ConfigStore {
  #options: ConfigStoreOptions;
  #store: PolledStore<VmConfig>;
  #origin: ConfigOrigin | undefined;

  /**
   * Creates a store holding an empty config until the first load.
   *
   * @param options Where the file is.
   */
  constructor(options: ConfigStoreOptions) {
    this.#options = options;
    const { path, logger } = options;
    this.#store = new PolledStore<VmConfig>({
      initial: { entries: [] },
      load: (reason) => this.#load(reason),
      onReloadError: (error, reason) =>
        logger.error("Cannot load vm.yaml; keeping the config in force", {
          reason,
          err: error.message,
        }),
      // Least privilege: whoever runs without a vm.yaml need not grant read access to one.
      files: () => this.#readable() ? [path] : [],
      notRegular: (_, kind) =>
        logger.info(
          "vm.yaml is missing or not a regular file; it will be loaded when it is one",
          { path, is: kind },
        ),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
  }

  /** The config in force (empty until the first good load). */
  get config(): VmConfig {
    return this.#store.value;
  }

  /** Whether the last load or reload succeeded. */
  get lastReloadSuccessful(): boolean {
    return this.#store.lastLoadSucceeded;
  }

  /** When the last good load happened, in seconds since the epoch. */
  get lastSuccessTimestamp(): number | undefined {
    const ms = this.#store.lastSuccessMs;
    return ms === undefined ? undefined : ms / 1000;
  }

  /** Where the config in force came from; undefined before the first good load. */
  get origin(): ConfigOrigin | undefined {
    return this.#origin;
  }

  /** The path of vm.yaml, whether or not there is a file. */
  get path(): string {
    return this.#options.path;
  }

  /** Whether any load has succeeded (the exporter is ready). */
  get ready(): boolean {
    return this.#store.lastSuccessMs !== undefined;
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
    return this.#store.reload(reason);
  }

  /**
   * The first load, at start: there is no old config to keep, so it throws.
   *
   * @returns The config in force.
   * @throws {Error} Why the file could not be loaded.
   */
  loadInitial(): Promise<VmConfig> {
    return this.#store.loadInitial();
  }

  /**
   * Reloads when the file changes, looking once a second with stat(2), which opens nothing (see
   * {@linkcode PolledStore}); a path that is missing or not a regular file is logged once and
   * loaded when it is one again.
   *
   * @param signal Stops watching.
   */
  watch(signal: AbortSignal): Promise<void> {
    return this.#store.watch(signal);
  }

  #readable(): boolean {
    const { path, explicit } = this.#options;
    return explicit || Deno.permissions.querySync({ name: "read", path }).state === "granted";
  }

  async #load(reason: string): Promise<VmConfig> {
    const { path, explicit, logger } = this.#options;
    if (!this.#readable()) {
      logger.info("No read permission for the default vm.yaml; naming VMs without it", { path });
      this.#origin = "not_readable";
      return { entries: [] };
    }
    const config = await readVmConfig(path, { explicit });
    if (config === undefined) {
      logger.info("No vm.yaml; naming VMs from their command lines", { path });
    } else {
      logger.info("Loaded vm.yaml", { path, vms: config.entries.length, reason });
    }
    // Set only when the load succeeds: a rejected file leaves the config in force, and its origin.
    this.#origin = config === undefined ? "absent" : "file";
    return config ?? { entries: [] };
  }
}
