/**
 * A pure parser of `query-blockstats` (qapi/block-core.json `BlockStats`): one entry per disk the
 * guest has, named as the operator named the guest's device.
 *
 * The `device` label: the id of the guest's device (`-device virtio-blk-pci,id=ID`; QEMU reports
 * it as `qdev`, bare or as the QOM path `/machine/peripheral/ID/virtio-backend`), else the drive's
 * name (`-drive ...,id=NAME` or `if=virtio`'s `virtio0`, QEMU's `device`), else the anonymous
 * device's QOM path. An entry with none of them is a block node no guest device uses (a block
 * job's target, an export): skipped, as no problem.
 *
 * @module
 */

import {
  addProblem,
  describeValue,
  nameOf,
  objectOf,
  type ReplyProblem,
  u64Of,
} from "./reply_problems.ts";

/** The counters of one disk, each where the reply has a valid value. */
export interface BlockCounters {
  /** Bytes read (`rd_bytes`). */
  readBytes?: bigint;
  /** Read requests (`rd_operations`). */
  readRequests?: bigint;
  /** Time spent on reads, ns (`rd_total_time_ns`). */
  readNs?: bigint;
  /** Bytes written (`wr_bytes`). */
  writeBytes?: bigint;
  /** Write requests (`wr_operations`). */
  writeRequests?: bigint;
  /** Time spent on writes, ns (`wr_total_time_ns`). */
  writeNs?: bigint;
  /** Flush requests (`flush_operations`). */
  flushRequests?: bigint;
  /** Time spent on flushes, ns (`flush_total_time_ns`). */
  flushNs?: bigint;
  /** Failed reads, writes and flushes (`failed_{rd,wr,flush}_operations`), when all three are valid. */
  errors?: bigint;
}

/** One disk of `query-blockstats`. */
export interface BlockDevice {
  /** Its label: the guest device's id, else the drive's name, else the device's QOM path. */
  device: string;
  /** QEMU's `device` (the drive's name; empty with -blockdev). */
  drive: string;
  /** QEMU's `qdev` (the guest device's id or QOM path). */
  qdev: string;
  /** Its counters. */
  counters: BlockCounters;
}

/** What {@linkcode parseBlockStats} makes of a reply. */
export interface BlockStatsResult {
  /** The disks, in reply order, at most the cap. */
  devices: BlockDevice[];
  /** What was left out, and why: at most `MAX_PROBLEMS` details, then one count per reason. */
  problems: ReplyProblem[];
}

/** The plain counters and the `stats` member each comes from. */
const COUNTER_FIELDS: readonly [keyof BlockCounters, string][] = [
  ["readBytes", "rd_bytes"],
  ["readRequests", "rd_operations"],
  ["readNs", "rd_total_time_ns"],
  ["writeBytes", "wr_bytes"],
  ["writeRequests", "wr_operations"],
  ["writeNs", "wr_total_time_ns"],
  ["flushRequests", "flush_operations"],
  ["flushNs", "flush_total_time_ns"],
];

const FAILED_FIELDS = [
  "failed_rd_operations",
  "failed_wr_operations",
  "failed_flush_operations",
] as const;

const PERIPHERAL = "/machine/peripheral/";

/** The device label of an entry, or undefined for a node no guest device uses. */
function labelOf(drive: string, qdev: string): string | undefined {
  if (qdev.startsWith(PERIPHERAL)) {
    const id = qdev.slice(PERIPHERAL.length).split("/")[0]!;
    if (id !== "") return id;
  }
  if (qdev !== "" && !qdev.startsWith("/")) return qdev;
  if (drive !== "") return drive;
  return qdev === "" ? undefined : qdev;
}

/** The counters of a `stats` member; a bad value costs only itself. */
function countersOf(
  stats: Record<string, unknown>,
  problem: (field: string, value: unknown) => void,
): BlockCounters {
  const counters: BlockCounters = {};
  for (const [key, field] of COUNTER_FIELDS) {
    const value = u64Of(stats[field]);
    if (value === undefined) problem(field, stats[field]);
    else counters[key] = value;
  }
  // QEMU before 2.5 has no failed_* at all: no errors, and no problem either.
  if (FAILED_FIELDS.every((f) => stats[f] === undefined)) return counters;
  let errors: bigint | undefined = 0n;
  for (const field of FAILED_FIELDS) {
    const value = u64Of(stats[field]);
    if (value === undefined) problem(field, stats[field]);
    errors = value === undefined || errors === undefined ? undefined : errors + value;
  }
  if (errors !== undefined) counters.errors = errors;
  return counters;
}

/**
 * Parses the `return` of `query-blockstats`. A reply that is not an array throws; within it, an
 * entry that is not an object or has no name is left out, a value that is not a u64 is left out,
 * a second entry with the label of an earlier one is left out, and entries past `maxDevices` are
 * left out, each with a {@linkcode ReplyProblem}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBlockStats } from "./block_stats.ts";
 * const { devices } = parseBlockStats([{
 *   device: "",
 *   qdev: "/machine/peripheral/disk0/virtio-backend",
 *   "node-name": "#block123",
 *   stats: { rd_bytes: 512, rd_operations: 1 },
 * }], { maxDevices: 256 });
 * assert.equal(devices[0]?.device, "disk0");
 * assert.equal(devices[0]?.counters.readBytes, 512n);
 * ```
 *
 * @param reply The `return` member of the reply.
 * @param limits The most disks kept per VM, and which labels are wanted (all by default; one
 * not wanted is left out before the cap counts, as no problem).
 * @returns The disks and the problems.
 * @throws {TypeError} When the reply is not an array.
 */
export function parseBlockStats(
  reply: unknown,
  limits: { maxDevices: number; accept?: (device: string) => boolean },
): BlockStatsResult {
  if (!Array.isArray(reply)) {
    throw new TypeError(
      `Invalid query-blockstats reply: expected an array, got ${describeValue(reply)}`,
    );
  }
  const result: BlockStatsResult = { devices: [], problems: [] };
  const problem = (p: ReplyProblem) => addProblem(result.problems, p);
  const seen = new Set<string>();
  reply.forEach((item, i) => {
    const where = `query-blockstats reply[${i}]`;
    const entry = entryOf(item, { where, problem, accept: limits.accept });
    if (entry === undefined) return;
    // The cap and repeats before the counters: an entry left out costs one problem, not nine.
    if (seen.has(entry.device)) {
      problem({ reason: "duplicate", detail: `${where} repeats device "${entry.device}"` });
    } else if (result.devices.length >= limits.maxDevices) {
      problem({
        reason: "too_many",
        detail: `${where} is past the cap of ${limits.maxDevices} disks`,
      });
    } else {
      seen.add(entry.device);
      const counters = countersOf(entry.stats, (field, value) =>
        problem({
          reason: "bad_value",
          detail: `${where} ("${entry.device}") stats.${field}: expected a u64, got ${
            describeValue(value)
          }`,
        }));
      const { stats: _, ...names } = entry;
      result.devices.push({ ...names, counters });
    }
  });
  return result;
}

/** One entry's names and its `stats`, or undefined when it is left out. */
function entryOf(
  item: unknown,
  context: {
    where: string;
    problem: (problem: ReplyProblem) => void;
    accept: ((device: string) => boolean) | undefined;
  },
): Omit<BlockDevice, "counters"> & { stats: Record<string, unknown> } | undefined {
  const { where, problem, accept } = context;
  const entry = objectOf(item);
  const stats = objectOf(entry?.stats);
  if (entry === undefined || stats === undefined) {
    problem({ reason: "bad_value", detail: `${where} is not an entry with stats` });
    return undefined;
  }
  // Not the `node-name`: the block graph's names change on snapshot, mirror or commit, and
  // QEMU makes up `#blockNNN` for nodes without one.
  const names = ["device", "qdev"].map((key) =>
    entry[key] === undefined || entry[key] === "" ? "" : nameOf(entry[key])
  );
  const [drive, qdev] = names;
  if (drive === undefined || qdev === undefined) {
    problem({ reason: "bad_value", detail: `${where} has a name that is no short string` });
    return undefined;
  }
  const device = labelOf(drive, qdev);
  if (device === undefined || !(accept?.(device) ?? true)) return undefined;
  return { device, drive, qdev, stats };
}
