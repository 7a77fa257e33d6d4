/**
 * The typed KVM stat model: what collectors emit and naming schemes read.
 * A stat is one value (or one histogram) of one KVM statistic at one level
 * (the host, a VM, a vCPU), with its kind, unit and source. Naming schemes
 * turn stats into metric families; collectors never build metric names.
 *
 * @module
 */

/** Where a stat applies: the debugfs root (every VM summed), one VM, one vCPU. */
export type StatLevel = "host" | "vm" | "vcpu";

/** What a stat's value means over time. */
export type StatKind =
  | "cumulative"
  | "instant"
  | "peak"
  | "boolean"
  | "linear_hist"
  | "log2_hist"
  | "untyped";

/** Where a stat was read. */
export type StatSource = "debugfs" | "qmp" | "libvirt";

/** Kind of a statistic as QEMU's schema names it, QEMU's `StatsType` enumeration. */
export type SchemaStatType =
  | "cumulative"
  | "instant"
  | "peak"
  | "linear-histogram"
  | "log2-histogram";

/** Unit of a statistic, QEMU's `StatsUnit` enumeration; absent for plain counts. */
export type StatUnit = "bytes" | "seconds" | "cycles" | "boolean";

/** Schema of one statistic, QEMU's `StatsSchemaValue`. */
export interface StatSchema {
  /** Name of the statistic, unique within its provider and target, e.g. `"exits"`. */
  name: string;
  /** Kind of statistic. */
  type: SchemaStatType;
  /** Basic unit; absent when the statistic is a plain number or counter. */
  unit?: StatUnit;
  /**
   * Base of the multiplier of `unit` (10 or 2). QEMU omits it when `exponent` is 0; it is
   * then reported as 10, which changes nothing since `base ** 0` is 1.
   */
  base: number;
  /** Exponent of the multiplier of `unit`, e.g. -9 with base 10 for nanoseconds. */
  exponent: number;
  /** Width of each bucket of a `linear-histogram`, in `unit` times the multiplier. */
  bucketSize?: number;
}

/** Where a stat's type came from, best first. */
export type TypeOrigin = "schema" | "catalog" | "suffix" | "mode" | "none";

/** A stat's kind, unit and scale: a value v means v × base^exponent units. */
export interface StatType {
  /** What the value means over time. */
  kind: StatKind;
  /** The unit; undefined for plain counts. */
  unit: StatUnit | undefined;
  /** Base of the scale, 10 or 2. */
  base: number;
  /** Exponent of the scale, e.g. -9 for nanoseconds. */
  exponent: number;
  /** Width of a linear histogram's buckets, in raw values; 0 otherwise. */
  bucketSize: number;
  /** Where this type came from. */
  origin: TypeOrigin;
}

/** A histogram as KVM counts it: per-bucket counts and, where read alongside, their sum. */
export interface StatHistogram {
  /** Count of each bucket (not cumulative). */
  buckets: readonly bigint[];
  /** Sum of the observed values, in raw units, from the matching `*_ns` stat of the same query. */
  sum: bigint | undefined;
}

/** The VM a stat belongs to. */
export interface StatVm {
  /** The `PID-FD` debugfs dir name: the VM's identity. */
  dir: string;
  /** The `domain` label. */
  domain: string;
}

/** One value of one KVM statistic. */
export interface KvmStat {
  /** Host, VM or vCPU. */
  level: StatLevel;
  /** The VM; undefined at host level. */
  vm: StatVm | undefined;
  /** The vCPU index as text; undefined unless level is vcpu. */
  vcpu: string | undefined;
  /** The statistic's name as KVM names it (debugfs file name or QMP stat name). */
  name: string;
  /** Kind, unit and scale. */
  type: StatType;
  /** A scalar (integers stay exact) or a histogram. */
  value: bigint | StatHistogram;
  /** Where it was read. */
  source: StatSource;
}

/**
 * The identity of a stat: level, VM dir, vCPU and name. Two stats with one
 * key are the same statistic read from two sources.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { statKey } from "./stat.ts";
 * assert(statKey({ level: "vm", vm: { dir: "1-2", domain: "a" }, vcpu: undefined, name: "exits" }) === "vm\x001-2\x00\x00exits");
 * ```
 *
 * @param stat The stat's level, VM, vCPU and name.
 * @returns A string key.
 */
export function statKey(stat: Pick<KvmStat, "level" | "vm" | "vcpu" | "name">): string {
  return `${stat.level}\0${stat.vm?.dir ?? ""}\0${stat.vcpu ?? ""}\0${stat.name}`;
}

/**
 * A set of stats with one value per identity: the first one added wins, so
 * that adding debugfs stats before QMP ones, and QMP ones before libvirt's,
 * applies the precedence rule (debugfs when readable, then QMP, then libvirt).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { StatSet, untypedStat } from "./stat.ts";
 * const set = new StatSet();
 * const stat = { level: "host", vm: undefined, vcpu: undefined, name: "exits", type: untypedStat(), source: "debugfs" } as const;
 * set.add({ ...stat, value: 1n });
 * set.add({ ...stat, value: 2n, source: "qmp" });
 * assert(set.size === 1 && set.stats()[0]!.value === 1n);
 * ```
 */
export class StatSet {
  #stats = new Map<string, KvmStat>();

  /**
   * Adds a stat unless one with the same identity is already there.
   *
   * @param stat The stat.
   * @param key Its {@linkcode statKey}, when the caller kept it from an earlier scrape.
   * @returns Whether it was added.
   */
  add(stat: KvmStat, key: string = statKey(stat)): boolean {
    if (this.#stats.has(key)) return false;
    this.#stats.set(key, stat);
    return true;
  }

  /**
   * Moves every stat of another set here, keeping the ones already here; the other set is left
   * empty.
   *
   * @param other The other set.
   */
  addAll(other: StatSet): void {
    if (this.#stats.size === 0) {
      // The first collector's stats: nothing to compare, and taken rather than copied (16k
      // entries on a large host). `other` starts afresh, so a collector still adding after the
      // deadline changes neither set's merged stats.
      this.#stats = other.#stats;
      other.#stats = new Map();
      return;
    }
    for (const [key, stat] of other.#stats) if (!this.#stats.has(key)) this.#stats.set(key, stat);
    other.#stats = new Map();
  }

  /** How many stats the set holds. */
  get size(): number {
    return this.#stats.size;
  }

  /**
   * The stats, in the order they were added.
   *
   * @returns The stats.
   */
  stats(): KvmStat[] {
    return [...this.#stats.values()];
  }

  /**
   * The stats, in the order they were added, without copying them.
   *
   * @returns An iterator over the stats.
   */
  [Symbol.iterator](): IterableIterator<KvmStat> {
    return this.#stats.values();
  }
}

/**
 * The type of a stat nothing describes.
 *
 * @returns An untyped, unitless type.
 */
export function untypedStat(): StatType {
  return { kind: "untyped", unit: undefined, base: 10, exponent: 0, bucketSize: 0, origin: "none" };
}
