/**
 * Builds the HTTP app as main.ts does (flags, ConfigStore, createExporter, createApp), without
 * a port, for tests that call `app.request()`. Log lines are captured instead of written.
 *
 * @module
 */

import type { Hono } from "hono";
import { type Options, parseFlags } from "../../src/cli/flags.ts";
import { ConfigStore } from "../../src/config/config_store.ts";
import { createExporter, type Exporter } from "../../src/exporter.ts";
import { createApp } from "../../src/http/app.ts";
import { createLogger } from "../../src/log/logger.ts";
import type { FileSystem } from "../../src/system/file_system.ts";
import { REPO_ROOT, SAMPLE_ARGS } from "./exporter_process.ts";

/** Options of {@linkcode buildSampleApp}. */
export interface SampleAppOptions {
  /** Flags after {@linkcode SAMPLE_ARGS}; later flags win. */
  args?: readonly string[];
  /** File access of the exporter; the real file system by default. */
  fs?: FileSystem;
  /** Whether to add the volatile `process_*` metrics. Default false. */
  processMetrics?: boolean;
}

/** The app and what it was built from. */
export interface SampleApp {
  /** The app; call `app.request()`. */
  app: Hono;
  /** The scrape pipeline behind it. */
  exporter: Exporter;
  /** The parsed flags. */
  options: Options;
  /** Log lines written so far (logfmt, debug level). */
  logs: string[];
}

/**
 * Builds the app on the sample tree of `tests/fixtures/sample` (paths made absolute, so the
 * tests do not depend on their working directory).
 *
 * @example Usage
 * ```ts ignore
 * import { buildSampleApp } from "./sample_app.ts";
 * const { app } = await buildSampleApp({ args: ["--web.max-requests=1"] });
 * const response = await app.request("/metrics");
 * ```
 *
 * @param init Extra flags, a file system and whether to add process metrics.
 * @returns The app, its exporter, its options and its captured logs.
 * @throws {Error} When the flags are refused or vm.yaml cannot be loaded.
 */
export async function buildSampleApp(init: SampleAppOptions = {}): Promise<SampleApp> {
  const absolute = SAMPLE_ARGS.map((arg) => arg.replace("=tests/", `=${REPO_ROOT}/tests/`));
  const command = parseFlags([...absolute, ...(init.args ?? [])], () => undefined);
  if (command.kind !== "run") throw new Error(`Flags ask for ${command.kind}, not a run`);
  const { options } = command;
  const logs: string[] = [];
  const logger = createLogger({ level: "debug", write: (line) => logs.push(line) });
  const configStore = new ConfigStore({
    path: options.vmmapPath,
    explicit: options.vmmapPathExplicit,
    logger,
  });
  await configStore.loadInitial();
  const exporter = createExporter({
    options,
    configStore,
    logger,
    lockdown: "none",
    processMetrics: init.processMetrics ?? false,
    ...(init.fs === undefined ? {} : { fs: init.fs }),
  });
  const app = createApp({
    exporter,
    telemetryPath: options.telemetryPath,
    maxRequests: options.maxRequests,
    logger,
  });
  return { app, exporter, options, logs };
}

/**
 * A file system whose every operation waits until {@linkcode GatedFileSystem.open} is called,
 * so that scrapes stay in flight for as long as a test needs.
 */
export class GatedFileSystem implements FileSystem {
  #release!: () => void;
  #gate: Promise<void> = new Promise((resolve) => this.#release = resolve);
  #waiting = 0;

  /** Operations that have started and are held at the gate. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Lets every held and future operation through. Idempotent. */
  open(): void {
    this.#release();
  }

  async *readDir(path: string): AsyncIterable<Deno.DirEntry> {
    await this.#pass();
    yield* Deno.readDir(path);
  }

  async readTextFile(path: string): Promise<string> {
    await this.#pass();
    return await Deno.readTextFile(path);
  }

  async #pass(): Promise<void> {
    this.#waiting++;
    try {
      await this.#gate;
    } finally {
      this.#waiting--;
    }
  }
}
