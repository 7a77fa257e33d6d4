/**
 * Holds the web configuration in force and replaces it only with one that checks: on SIGHUP and
 * when the file or a PEM file it names changes (polled, so nothing but these files is opened).
 *
 * @module
 */

import type { LogFields, Logger } from "../log/logger.ts";
import { CoalescedReload } from "../system/coalesced_reload.ts";
import { BasicAuth } from "./basic_auth.ts";
import { EMPTY_WEB_CONFIG, readWebConfig, type WebConfig } from "./web_config.ts";

/** Options of {@linkcode WebConfigStore}. */
export interface WebConfigStoreOptions {
  /** The file, or undefined for no web config (plain HTTP, no auth). */
  path: string | undefined;
  /** Logger. */
  logger: Logger;
  /** Called after a reload put a config with different TLS settings in force. */
  onTlsChange?: (config: WebConfig, previous: WebConfig) => Promise<void> | void;
}

/** How often the files are checked for changes. */
const POLL_MS = 1_000;

/** The web config in force, and the basic auth verifier built from it. */
export class WebConfigStore {
  #options: WebConfigStoreOptions;
  #config: WebConfig = EMPTY_WEB_CONFIG;
  #auth = new BasicAuth(new Map());
  #reloads = new CoalescedReload((reason) => this.#load(reason));

  /**
   * Creates a store holding the empty config until the first load.
   *
   * @param options The file, logger and TLS change callback.
   */
  constructor(options: WebConfigStoreOptions) {
    this.#options = options;
  }

  /** The config in force. */
  get config(): WebConfig {
    return this.#config;
  }

  /** The basic auth verifier of the config in force. */
  get auth(): BasicAuth {
    return this.#auth;
  }

  /**
   * The first load, at start.
   *
   * @returns The config in force.
   * @throws {Error} Why the file was rejected (a `ConfigError` with `path:line:col`).
   */
  async loadInitial(): Promise<WebConfig> {
    if (this.#options.path === undefined) return this.#config;
    this.#install(await readWebConfig(this.#options.path));
    this.#options.logger.info("Loaded the web config", this.#summary());
    return this.#config;
  }

  /**
   * Loads the file again; on failure keeps the config in force. Requests are coalesced (see
   * {@linkcode CoalescedReload}): at most one load runs and one waits, asking while one waits
   * joins it.
   *
   * @param reason What asked, for the log.
   * @returns undefined when the new config is in force, else why it was rejected.
   */
  reload(reason: string): Promise<Error | undefined> {
    return this.#reloads.request(reason);
  }

  async #load(reason: string): Promise<Error | undefined> {
    const { path, logger } = this.#options;
    if (path === undefined) return undefined;
    let config: WebConfig;
    try {
      config = await readWebConfig(path);
    } catch (error) {
      logger.error("Cannot load the web config; keeping the one in force", {
        reason,
        err: (error as Error).message,
      });
      return error as Error;
    }
    const tlsChanged = config.tls?.cert !== this.#config.tls?.cert ||
      config.tls?.key !== this.#config.tls?.key;
    const previous = this.#config;
    this.#install(config);
    if (tlsChanged && this.#options.onTlsChange !== undefined) {
      try {
        await this.#options.onTlsChange(config, previous);
      } catch (error) {
        this.#install(previous);
        logger.error("Cannot serve the new TLS settings; keeping the ones in force", {
          reason,
          err: (error as Error).message,
        });
        return error as Error;
      }
    }
    logger.info("Loaded the web config", { reason, ...this.#summary() });
    return undefined;
  }

  #install(config: WebConfig): void {
    this.#config = config;
    this.#auth = new BasicAuth(config.users);
  }

  #summary(): LogFields {
    return {
      path: this.#options.path,
      tls: this.#config.tls !== undefined,
      users: this.#config.users.size,
      headers: this.#config.headers.length,
    };
  }

  /**
   * Reloads when the file or a PEM file it names changes (size, mtime or inode), checking
   * every second until `signal` aborts.
   *
   * @param signal Stops watching.
   */
  async watch(signal: AbortSignal): Promise<void> {
    const { path } = this.#options;
    if (path === undefined) return;
    let last = await this.#fingerprint();
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, POLL_MS);
        function done(): void {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        }
        signal.addEventListener("abort", done, { once: true });
      });
      if (signal.aborted) return;
      const now = await this.#fingerprint();
      if (now !== last) await this.reload("file changed");
      last = now;
    }
  }

  async #fingerprint(): Promise<string> {
    const files = [this.#options.path!, ...(this.#config.tls?.files ?? [])];
    const parts = await Promise.all(files.map(async (file) => {
      try {
        const info = await Deno.stat(file);
        return `${file}:${info.size}:${info.mtime?.getTime()}:${info.ino}`;
      } catch (error) {
        return `${file}:${(error as Error).name}`;
      }
    }));
    return parts.join("|");
  }
}
