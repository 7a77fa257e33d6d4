/**
 * Builds the real app on a fixture tree from command-line flags, the way
 * main.ts does, for tests that call `app.request()` without a port.
 *
 * @module
 */

import type { Hono } from "hono";
import { parseFlags } from "../../src/cli/flags.ts";
import { ConfigStore } from "../../src/config/config_store.ts";
import { createExporter, type Exporter } from "../../src/exporter.ts";
import { createApp } from "../../src/http/app.ts";
import { createLogger, type Logger } from "../../src/log/logger.ts";
import type { FileSystem } from "../../src/system/file_system.ts";

/** What {@linkcode buildApp} returns. */
export interface BuiltApp {
  /** The HTTP app. */
  app: Hono;
  /** The scrape pipeline behind it. */
  exporter: Exporter;
  /** Log lines written so far. */
  logs: string[];
}

/**
 * Builds the app from flags. Process metrics are off so output is stable.
 *
 * @param args Command-line flags.
 * @param options A file system seam, and whether to keep process metrics.
 * @returns The app, its exporter and its log lines.
 */
export async function buildApp(
  args: string[],
  options: { fs?: FileSystem; processMetrics?: boolean } = {},
): Promise<BuiltApp> {
  const command = parseFlags(args, () => undefined);
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
  const exporter = createExporter({
    options: command.options,
    configStore,
    logger,
    lockdown: "none",
    processMetrics: options.processMetrics ?? false,
    ...(options.fs ? { fs: options.fs } : {}),
  });
  const app = createApp({
    exporter,
    telemetryPath: command.options.telemetryPath,
    maxRequests: command.options.maxRequests,
    logger,
  });
  return { app, exporter, logs };
}

/** Flags that point the exporter at tests/fixtures/NAME. */
export function fixtureArgs(name: string): string[] {
  const base = new URL(`../fixtures/${name}/`, import.meta.url).pathname.replace(/\/$/, "");
  return [
    `--collector.kvmdebug.dir=${base}/kvm`,
    `--collector.vmmap.path=${base}/vm.yaml`,
    `--path.procfs=${base}/proc`,
    `--path.sysfs=${base}/sys`,
  ];
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
