/**
 * How a collector declares itself: its name, whether it is on by default, its
 * own flags, the collectors whose observations it reads, and a factory. The
 * `--collector.<name>` switch and its help are made from the declaration, as
 * node_exporter's `registerCollector(name, defaultEnabled, factory)` does.
 *
 * @module
 */

import {
  type CommandLine,
  type Flag,
  flag,
  type FlagSet,
  type FlagValues,
  readFlags,
} from "../cli/flag.ts";
import type { Logger } from "../log/logger.ts";
import type { FileSystem } from "../system/file_system.ts";
import type { Collector } from "./collector.ts";
import type { StartReader } from "../debugfs/reader_pool.ts";
import type { StatReads } from "../debugfs/stat_reader.ts";

/** What the exporter shares with every collector it creates. */
export interface CollectorServices {
  /** File access. */
  fs: FileSystem;
  /** Logger. */
  logger: Logger;
  /** The debugfs KVM dir, normalised. */
  kvmdebugDir: string;
  /** procfs mount point. */
  procfs: string;
  /** Whether the heap is given back once scrapes stop (reader Workers do it too). */
  releaseMemoryWhenIdle: boolean;
  /** Files a scrape must read before kvm_stat's reader Workers start; its own default if absent. */
  readerMinFiles?: number;
  /** How kvm_stat reads; by default `workers` with reader Workers asked for, else `sync`. */
  kvmStatReads?: StatReads["kind"];
  /**
   * Starts a kvm_stat reader. By default a real Worker, which reads through Deno's file API, not
   * `fs`: a file system seam that reader Workers must read through needs its own.
   */
  startReader?: StartReader;
}

/** One collector, as it declares itself. */
export interface CollectorDeclaration<F extends FlagSet = FlagSet> {
  /** Name, as in `--collector.<name>` and the `collector` label. */
  readonly name: string;
  /** Whether it runs without `--collector.<name>`. */
  readonly defaultEnabled: boolean;
  /** Its own flags, by the key its factory reads them under. */
  readonly flags: F;
  /**
   * Collectors whose per-VM observations of the last scrape this one reads (QMP's vCPU thread
   * ids for vcpu_time). Collectors run in parallel: what another learns reaches this one a
   * scrape later, and only what is declared here.
   */
  readonly observes?: readonly string[];
  /**
   * Creates the collector.
   *
   * @param values Its flags' values.
   * @param services What the exporter shares.
   */
  create(values: FlagValues<F>, services: CollectorServices): Collector;
}

/**
 * Declares a collector; only there to infer the flags' types for the factory.
 *
 * @param declaration Name, default, flags and factory.
 * @returns The declaration.
 */
export function declareCollector<F extends FlagSet>(
  declaration: CollectorDeclaration<F>,
): CollectorDeclaration<F> {
  return declaration;
}

/** The registry: every collector the exporter has, in precedence order. */
export type CollectorRegistry = readonly CollectorDeclaration[];

/** A collector as the command line configured it. */
export interface ConfiguredCollector {
  /** Its name. */
  readonly name: string;
  /** Whether it runs. */
  readonly enabled: boolean;
  /** Its flags' values, by key. */
  readonly values: Readonly<Record<string, unknown>>;
  /** Collectors whose observations of the last scrape it reads. */
  readonly observes: readonly string[];
  /**
   * Creates it with the values of its flags.
   *
   * @param services What the exporter shares.
   */
  create(services: CollectorServices): Collector;
}

/**
 * The `--collector.<name>` switch of a collector, with its generated help.
 *
 * @param declaration The collector.
 * @returns The flag.
 */
export function enableFlag(declaration: CollectorDeclaration): Flag<boolean> {
  const { name, defaultEnabled } = declaration;
  return flag({
    name: `collector.${name}`,
    type: "bool",
    default: defaultEnabled,
    help: `Enable the ${name} collector (default: ${defaultEnabled ? "enabled" : "disabled"}).`,
  });
}

/**
 * Every flag of a collector: its switch and its own.
 *
 * @param declaration The collector.
 * @returns The flags.
 */
export function collectorFlags(declaration: CollectorDeclaration): Flag<unknown>[] {
  return [enableFlag(declaration), ...Object.values(declaration.flags)];
}

/**
 * Reads a collector's switch and flags from the command line. A disabled
 * collector's flags are checked all the same: a bad value is an error either way.
 *
 * @param declaration The collector.
 * @param line The command line.
 * @returns The collector, configured.
 * @throws {FlagError} When a value is bad.
 */
export function configureCollector<F extends FlagSet>(
  declaration: CollectorDeclaration<F>,
  line: CommandLine,
): ConfiguredCollector {
  const enabled = line.value(enableFlag(declaration as CollectorDeclaration));
  const values = readFlags(declaration.flags, line);
  return {
    name: declaration.name,
    enabled,
    values,
    observes: declaration.observes ?? [],
    create: (services) => declaration.create(values, services),
  };
}
