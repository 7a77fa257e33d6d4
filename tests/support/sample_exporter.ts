/**
 * Builds the real app on a fixture tree from command-line flags, the way
 * main.ts does, for tests that call `app.request()` without a port.
 *
 * @module
 */

import type { Hono } from "hono";
import { type Options, parseFlags } from "../../src/cli/flags.ts";
import type { CollectorRegistry } from "../../src/collectors/collector_declaration.ts";
import { ConfigStore } from "../../src/config/config_store.ts";
import { createExporter, type Exporter } from "../../src/exporter.ts";
import { createApp } from "../../src/http/app.ts";
import { createLogger, type Logger } from "../../src/log/logger.ts";
import type { StatReads } from "../../src/debugfs/stat_reader.ts";
import { denoFileSystem, type FileSystem } from "../../src/system/file_system.ts";
import { inThreadReaders } from "./in_thread_readers.ts";
import type { IdleHeapRelease } from "../../src/system/idle_heap_release.ts";
import type { LockdownMode } from "../../src/system/lockdown.ts";
import { treeArgs } from "./exporter_process.ts";

/** What {@linkcode buildApp} returns. */
export interface BuiltApp {
  /** The HTTP app. */
  app: Hono;
  /** The scrape pipeline behind it. */
  exporter: Exporter;
  /** The parsed flags. */
  options: Options;
  /** Log lines written so far (logfmt, debug level). */
  logs: string[];
  /** The in-thread readers started (with a seam and reader Workers). */
  readers: { started: number };
}

/**
 * Builds the app from flags. Process metrics are off so output is stable.
 *
 * @param args Command-line flags.
 * @param options A file system seam, whether to keep process metrics, the lockdown mode
 *   securityfs would give (default "none"), the files that start reader Workers, the
 *   environment (none by default) and the collector registry (the exporter's by default).
 * @returns The app, its exporter and its log lines.
 */
export async function buildApp(
  args: string[],
  options: {
    fs?: FileSystem;
    processMetrics?: boolean;
    lockdown?: LockdownMode;
    readerMinFiles?: number;
    heapRelease?: IdleHeapRelease;
    env?: Record<string, string>;
    registry?: CollectorRegistry;
    /**
     * How kvm_stat reads (default: as the flags say); `workers` from the first scrape on. With a
     * seam, the readers are {@linkcode inThreadReaders} reading through it.
     */
    reads?: StatReads["kind"];
  } = {},
): Promise<BuiltApp> {
  const env = options.env ?? {};
  const command = parseFlags(args, (name) => env[name], options.registry);
  if (command.kind !== "run") throw new Error(`not a run command: ${args.join(" ")}`);
  const logs: string[] = [];
  const logger: Logger = createLogger({
    level: "debug",
    write: (line) => logs.push(line),
  });
  const configStore = new ConfigStore({
    path: command.options.vmmapPath,
    explicit: command.options.vmmapPathExplicit,
    logger,
  });
  await configStore.loadInitial();
  const readers = { started: 0 };
  const startInThread = options.fs === undefined ? undefined : inThreadReaders(options.fs);
  const exporter = createExporter({
    options: command.options,
    configStore,
    logger,
    lockdown: options.lockdown ?? "none",
    processMetrics: options.processMetrics ?? false,
    ...(options.fs ? { fs: options.fs } : {}),
    ...(options.readerMinFiles === undefined ? {} : { readerMinFiles: options.readerMinFiles }),
    ...(options.reads === undefined ? {} : { kvmStatReads: options.reads }),
    // With a seam, reader Workers read through it (a real Worker could not).
    ...(startInThread === undefined ? {} : {
      startReader: (name: string) => {
        readers.started++;
        return startInThread(name);
      },
    }),
    ...(options.reads === "workers" ? { readerMinFiles: 0 } : {}),
  });
  const app = createApp({
    exporter,
    telemetryPath: command.options.telemetryPath,
    maxRequests: command.options.maxRequests,
    logger,
    enableLifecycle: command.options.enableLifecycle,
    ...(options.heapRelease ? { heapRelease: options.heapRelease } : {}),
  });
  return { app, exporter, options: command.options, logs, readers };
}

/**
 * Builds the app on tests/fixtures/sample.
 *
 * @param init Extra flags (later flags win), a file system seam, process metrics.
 * @returns The app, its exporter, its flags and its log lines.
 */
export function buildSampleApp(
  init: {
    args?: readonly string[];
    fs?: FileSystem;
    processMetrics?: boolean;
    heapRelease?: IdleHeapRelease;
  } = {},
): Promise<BuiltApp> {
  const { args = [], ...options } = init;
  return buildApp([...fixtureArgs("sample"), ...args], options);
}

/** Flags that point the exporter at tests/fixtures/NAME. */
export function fixtureArgs(name: string): string[] {
  const base = new URL(`../fixtures/${name}/`, import.meta.url).pathname.replace(/\/$/, "");
  return treeArgs(base);
}

/**
 * Scrapes /metrics through the app.
 *
 * @param app The app.
 * @returns The body.
 */
export async function scrapeText(app: Hono): Promise<string> {
  const response = await app.request("/metrics");
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return await response.text();
}

/**
 * The value of one series in an exposition, or undefined.
 *
 * @param text The exposition.
 * @param series The series as printed, e.g. `kvm_stat_exits_count{domain="global"}`.
 * @returns Its value text.
 */
export function seriesValue(text: string, series: string): string | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return line.slice(series.length + 1);
  }
  return undefined;
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

  // Not held: every scrape lists the root through the async op first, and is held there.
  readDirSync = denoFileSystem.readDirSync;
  readRegularSync = denoFileSystem.readRegularSync;
  mode = denoFileSystem.mode;
  readLink = denoFileSystem.readLink;
  identitySync = denoFileSystem.identitySync;
  openKept = denoFileSystem.openKept;

  async #pass(): Promise<void> {
    this.#waiting++;
    try {
      await this.#gate;
    } finally {
      this.#waiting--;
    }
  }
}
