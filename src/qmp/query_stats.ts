/**
 * Pure parsers for the QMP replies that carry KVM statistics: `query-stats-schemas`,
 * `query-stats` (QEMU 7.1+, see QEMU's `qapi/stats.json`) and `query-cpus-fast`.
 *
 * The functions take the `return` member of a reply as produced by
 * {@linkcode parseQmpJson} (integers beyond 2^53 arrive as `bigint`) and never do I/O.
 * Only the `kvm` provider is kept; other providers (e.g. `cryptodev`) are dropped.
 *
 * @module
 */

import type { SchemaStatType, StatSchema, StatUnit } from "../stats/stat.ts";

/** Schemas of the `kvm` provider, keyed by statistic name, one map per target. */
export interface StatsSchemas {
  /** Statistics that apply to the whole VM (target `vm`). */
  vm: Map<string, StatSchema>;
  /** Statistics that apply to each vCPU (target `vcpu`). */
  vcpu: Map<string, StatSchema>;
}

/**
 * Value of one statistic. Scalars (and booleans, as `0n`/`1n`) are `scalar`; histograms are
 * `histogram` with one count per bucket. All values are unsigned 64-bit integers.
 */
export type StatValue = { kind: "scalar"; value: bigint } | {
  kind: "histogram";
  buckets: bigint[];
};

/** Statistics of one object of the `kvm` provider, QEMU's `StatsResult`. */
export interface StatsResult {
  /** QOM path of the object, e.g. `"/machine/unattached/device[0]"` for a vCPU; absent for vm. */
  qomPath?: string;
  /** Values keyed by statistic name. */
  stats: Map<string, StatValue>;
}

/** One entry of `query-cpus-fast`. */
export interface CpuInfo {
  /** Index of the vCPU (`cpu-index`), from 0. */
  cpuIndex: number;
  /** QOM path of the vCPU object (`qom-path`), the key of vCPU results of `query-stats`. */
  qomPath: string;
  /** Host thread id of the vCPU (`thread-id`). */
  threadId: number;
}

const STAT_TYPES: ReadonlySet<string> = new Set<SchemaStatType>([
  "cumulative",
  "instant",
  "peak",
  "linear-histogram",
  "log2-histogram",
]);
const STAT_UNITS: ReadonlySet<string> = new Set<StatUnit>([
  "bytes",
  "seconds",
  "cycles",
  "boolean",
]);
const U64_MAX = 2n ** 64n - 1n;
const KVM_PROVIDER = "kvm";

/**
 * Parses the `return` of `query-stats-schemas` into the schemas of the `kvm` provider.
 *
 * Entries of other providers and of unknown targets are dropped, and so are statistics whose
 * `type` or `unit` this version does not know (a newer QEMU or kernel may add some), so that
 * one new statistic does not hide all the others.
 *
 * @param reply The `return` member of the `query-stats-schemas` reply.
 * @returns The `vm` and `vcpu` schemas, keyed by statistic name.
 * @throws {TypeError} If the reply does not have the shape of `[StatsSchema]`.
 *
 * @example Parse a vcpu schema
 * ```ts
 * import { deepStrictEqual } from "node:assert";
 * import { parseStatsSchemas } from "./query_stats.ts";
 *
 * const schemas = parseStatsSchemas([{
 *   provider: "kvm",
 *   target: "vcpu",
 *   stats: [{ name: "halt_poll_fail_ns", type: "cumulative", unit: "seconds", base: 10, exponent: -9 }],
 * }]);
 * deepStrictEqual(schemas.vcpu.get("halt_poll_fail_ns")?.exponent, -9);
 * ```
 */
export function parseStatsSchemas(reply: unknown): StatsSchemas {
  const schemas: StatsSchemas = { vm: new Map(), vcpu: new Map() };
  const entries = expectArray(reply, "query-stats-schemas reply");
  entries.forEach((entry, i) => {
    const where = `query-stats-schemas reply[${i}]`;
    const schema = expectObject(entry, where);
    const provider = expectString(schema.provider, `${where}.provider`);
    const target = expectString(schema.target, `${where}.target`);
    const stats = expectArray(schema.stats, `${where}.stats`);
    if (provider !== KVM_PROVIDER || (target !== "vm" && target !== "vcpu")) return;
    const map = schemas[target];
    stats.forEach((value, j) => {
      const parsed = parseSchemaValue(value, `${where}.stats[${j}]`);
      if (parsed !== undefined) map.set(parsed.name, parsed);
    });
  });
  return schemas;
}

/**
 * Parses the `return` of `query-stats` (for target `vm` or `vcpu`) into one result per object.
 *
 * Booleans become `0n`/`1n`. Numbers must be exact: a `number` above 2^53 - 1 is rejected
 * because `JSON.parse` has already rounded it (use {@linkcode parseQmpJson}, which keeps it
 * as a `bigint`).
 *
 * @param reply The `return` member of the `query-stats` reply.
 * @returns The results of the `kvm` provider, in reply order.
 * @throws {TypeError} If the reply does not have the shape of `[StatsResult]`, or a value is
 * not an unsigned 64-bit integer.
 *
 * @example Parse a vcpu result
 * ```ts
 * import { deepStrictEqual } from "node:assert";
 * import { parseQueryStats } from "./query_stats.ts";
 *
 * const [result] = parseQueryStats([{
 *   provider: "kvm",
 *   "qom-path": "/machine/unattached/device[0]",
 *   stats: [{ name: "exits", value: 123 }, { name: "halt_wait_hist", value: [0, 4, 2] }],
 * }]);
 * deepStrictEqual(result?.stats.get("exits"), { kind: "scalar", value: 123n });
 * ```
 */
export function parseQueryStats(reply: unknown): StatsResult[] {
  const results: StatsResult[] = [];
  const entries = expectArray(reply, "query-stats reply");
  entries.forEach((entry, i) => {
    const where = `query-stats reply[${i}]`;
    const object = expectObject(entry, where);
    const provider = expectString(object.provider, `${where}.provider`);
    const qomPath = object["qom-path"] === undefined
      ? undefined
      : expectString(object["qom-path"], `${where}.qom-path`);
    const stats = expectArray(object.stats, `${where}.stats`);
    if (provider !== KVM_PROVIDER) return;
    const values = new Map<string, StatValue>();
    stats.forEach((stat, j) => {
      const statWhere = `${where}.stats[${j}]`;
      const item = expectObject(stat, statWhere);
      const name = expectString(item.name, `${statWhere}.name`);
      values.set(name, parseStatValue(item.value, `${statWhere} ("${name}").value`));
    });
    results.push(qomPath === undefined ? { stats: values } : { qomPath, stats: values });
  });
  return results;
}

/**
 * Parses the `return` of `query-cpus-fast`.
 *
 * @param reply The `return` member of the `query-cpus-fast` reply.
 * @returns One entry per vCPU, in reply order.
 * @throws {TypeError} If the reply does not have the shape of `[CpuInfoFast]`.
 *
 * @example Map a qom-path to its cpu-index
 * ```ts
 * import { deepStrictEqual } from "node:assert";
 * import { parseCpusFast } from "./query_stats.ts";
 *
 * const cpus = parseCpusFast([{
 *   "cpu-index": 0,
 *   "qom-path": "/machine/unattached/device[0]",
 *   "thread-id": 4242,
 *   target: "x86_64",
 * }]);
 * deepStrictEqual(cpus, [{ cpuIndex: 0, qomPath: "/machine/unattached/device[0]", threadId: 4242 }]);
 * ```
 */
export function parseCpusFast(reply: unknown): CpuInfo[] {
  return expectArray(reply, "query-cpus-fast reply").map((entry, i) => {
    const where = `query-cpus-fast reply[${i}]`;
    const cpu = expectObject(entry, where);
    return {
      cpuIndex: expectNonNegativeInteger(cpu["cpu-index"], `${where}.cpu-index`),
      qomPath: expectString(cpu["qom-path"], `${where}.qom-path`),
      threadId: expectNonNegativeInteger(cpu["thread-id"], `${where}.thread-id`),
    };
  });
}

function parseSchemaValue(value: unknown, where: string): StatSchema | undefined {
  const item = expectObject(value, where);
  const name = expectString(item.name, `${where}.name`);
  const type = expectString(item.type, `${where}.type`);
  const unit = item.unit === undefined ? undefined : expectString(item.unit, `${where}.unit`);
  const exponent = expectInteger(item.exponent, `${where}.exponent`);
  const base = item.base === undefined ? 10 : expectInteger(item.base, `${where}.base`);
  const bucketSize = item["bucket-size"] === undefined
    ? undefined
    : expectNonNegativeInteger(item["bucket-size"], `${where}.bucket-size`);
  if (!STAT_TYPES.has(type) || (unit !== undefined && !STAT_UNITS.has(unit))) return undefined;
  const schema: StatSchema = { name, type: type as SchemaStatType, base, exponent };
  if (unit !== undefined) schema.unit = unit as StatUnit;
  if (bucketSize !== undefined) schema.bucketSize = bucketSize;
  return schema;
}

function parseStatValue(value: unknown, where: string): StatValue {
  if (typeof value === "boolean") return { kind: "scalar", value: value ? 1n : 0n };
  if (Array.isArray(value)) {
    return { kind: "histogram", buckets: value.map((v, i) => toU64(v, `${where}[${i}]`)) };
  }
  return { kind: "scalar", value: toU64(value, where) };
}

function toU64(value: unknown, where: string): bigint {
  if (typeof value === "bigint") {
    if (value < 0n || value > U64_MAX) {
      throw new TypeError(`Invalid ${where}: ${value} is out of the unsigned 64-bit range`);
    }
    return value;
  }
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0) {
      throw new TypeError(`Invalid ${where}: ${value} is not an unsigned integer`);
    }
    if (!Number.isSafeInteger(value)) {
      throw new TypeError(
        `Invalid ${where}: ${value} is above 2^53 - 1 and was rounded by JSON.parse, parse with parseQmpJson()`,
      );
    }
    return BigInt(value);
  }
  throw new TypeError(`Invalid ${where}: expected an unsigned integer, got ${describe(value)}`);
}

function expectArray(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`Invalid ${where}: expected an array, got ${describe(value)}`);
  }
  return value;
}

function expectObject(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Invalid ${where}: expected an object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

function expectString(value: unknown, where: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`Invalid ${where}: expected a string, got ${describe(value)}`);
  }
  return value;
}

function expectInteger(value: unknown, where: string): number {
  const n = typeof value === "bigint" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n)) {
    throw new TypeError(`Invalid ${where}: expected an integer, got ${describe(value)}`);
  }
  return n;
}

function expectNonNegativeInteger(value: unknown, where: string): number {
  const n = expectInteger(value, where);
  if (n < 0) throw new TypeError(`Invalid ${where}: expected a non-negative integer, got ${n}`);
  return n;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") {
    return `${typeof value} ${value}`;
  }
  return typeof value;
}
