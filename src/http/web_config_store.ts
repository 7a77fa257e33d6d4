/**
 * Holds the web configuration in force and replaces it only with one that checks: on SIGHUP and
 * when the file or a PEM file it names changes (polled, so nothing but these files is opened).
 *
 * @module
 */

import type { LogFields, Logger } from "../log/logger.ts";
import { PolledStore } from "../system/polled_store.ts";
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

/** The web config in force and the basic auth verifier built from it. */
interface InForce {
  config: WebConfig;
  auth: BasicAuth;
}

/** The web config in force, and the basic auth verifier built from it. */
export class WebConfigStore {
  #options: WebConfigStoreOptions;
  #store: PolledStore<InForce>;
  /** The error of the last TLS switch that failed, to log it as such. */
  #tlsFailure: unknown;

  /**
   * Creates a store holding the empty config until the first load.
   *
   * @param options The file, logger and TLS change callback.
   */
  constructor(options: WebConfigStoreOptions) {
    this.#options = options;
    const { path } = options;
    this.#store = new PolledStore<InForce>({
      initial: { config: EMPTY_WEB_CONFIG, auth: new BasicAuth(new Map()) },
      load: (reason, initial) => this.#load(reason, initial),
      onReloadError: (error, reason) => {
        const msg = error === this.#tlsFailure
          ? "Cannot serve the new TLS settings; keeping the ones in force"
          : "Cannot load the web config; keeping the one in force";
        options.logger.error(msg, { reason, err: error.message });
      },
      files: ({ config }) => path === undefined ? [] : [path, ...(config.tls?.files ?? [])],
    });
  }

  /** The config in force. */
  get config(): WebConfig {
    return this.#store.value.config;
  }

  /** The basic auth verifier of the config in force. */
  get auth(): BasicAuth {
    return this.#store.value.auth;
  }

  /**
   * The first load, at start.
   *
   * @returns The config in force.
   * @throws {Error} Why the file was rejected (a `ConfigError` with `path:line:col`).
   */
  async loadInitial(): Promise<WebConfig> {
    return (await this.#store.loadInitial()).config;
  }

  /**
   * Loads the file again; on failure keeps the config in force. Requests are coalesced (see
   * {@linkcode PolledStore}): at most one load runs and one waits, asking while one waits
   * joins it.
   *
   * @param reason What asked, for the log.
   * @returns undefined when the new config is in force, else why it was rejected.
   */
  reload(reason: string): Promise<Error | undefined> {
    return this.#store.reload(reason);
  }

  /**
   * Reloads when the file or a PEM file it names changes (inode, size or change times),
   * checking every second until `signal` aborts.
   *
   * @param signal Stops watching.
   */
  watch(signal: AbortSignal): Promise<void> {
    return this.#store.watch(signal);
  }

  async #load(reason: string, initial: boolean): Promise<InForce> {
    const { path, logger, onTlsChange } = this.#options;
    const previous = this.#store.value.config;
    if (path === undefined) return this.#store.value;
    const config = await readWebConfig(path);
    const tlsChanged = config.tls?.cert !== previous.tls?.cert ||
      config.tls?.key !== previous.tls?.key;
    if (!initial && tlsChanged && onTlsChange !== undefined) {
      try {
        await onTlsChange(config, previous);
      } catch (error) {
        this.#tlsFailure = error;
        throw error;
      }
    }
    const fields = summary(path, config);
    logger.info("Loaded the web config", initial ? fields : { reason, ...fields });
    return { config, auth: new BasicAuth(config.users) };
  }
}

function summary(path: string, config: WebConfig): LogFields {
  return {
    path,
    tls: config.tls !== undefined,
    users: config.users.size,
    headers: config.headers.length,
  };
}
