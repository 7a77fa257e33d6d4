/**
 * Pure parsers for the balloon: `query-balloon` (the guest's memory with the balloon as it is),
 * the QOM listing that finds the balloon device, and its `guest-stats` property (what the
 * guest's virtio-balloon driver reports, only while polling is on: `guest-stats-polling-interval`
 * above 0, which the exporter reads and never sets).
 *
 * @module
 */

import { describeValue, objectOf, type ReplyProblem, u64Of } from "./reply_problems.ts";

/**
 * Parses the `return` of `query-balloon` (`{"actual": BYTES}`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseQueryBalloon } from "./balloon.ts";
 * assert.equal(parseQueryBalloon({ actual: 1073741824 }), 1073741824n);
 * ```
 *
 * @param reply The `return` member of the reply.
 * @returns The bytes.
 * @throws {TypeError} When `actual` is not a u64.
 */
export function parseQueryBalloon(reply: unknown): bigint {
  const actual = u64Of(objectOf(reply)?.actual);
  if (actual === undefined) {
    throw new TypeError(
      `Invalid query-balloon reply: expected a u64 "actual", got ${
        describeValue(objectOf(reply)?.actual ?? reply)
      }`,
    );
  }
  return actual;
}

/** Where QEMU puts the devices given with `-device`: with an id, and without. */
export const PERIPHERAL_DIRS = ["/machine/peripheral", "/machine/peripheral-anon"] as const;

/** The QOM types of a balloon device (PCI, its transitional forms, CCW, the bare device). */
const BALLOON_TYPE =
  /^child<virtio-balloon-(pci|pci-transitional|pci-non-transitional|ccw|device)>$/;

/**
 * The balloon's QOM path in the `return` of `qom-list` on one of {@linkcode PERIPHERAL_DIRS}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { balloonPathIn } from "./balloon.ts";
 * const reply = [{ name: "balloon0", type: "child<virtio-balloon-pci>" }];
 * assert.equal(balloonPathIn("/machine/peripheral", reply), "/machine/peripheral/balloon0");
 * ```
 *
 * @param dir The QOM path listed.
 * @param reply The `return` member of the reply.
 * @returns The first balloon's path, or undefined.
 * @throws {TypeError} When the reply is not an array.
 */
export function balloonPathIn(dir: string, reply: unknown): string | undefined {
  if (!Array.isArray(reply)) {
    throw new TypeError(`Invalid qom-list reply: expected an array, got ${describeValue(reply)}`);
  }
  for (const item of reply) {
    const entry = objectOf(item);
    const name = entry?.name;
    if (
      typeof entry?.type === "string" && BALLOON_TYPE.test(entry.type) &&
      typeof name === "string" && /^[\w.\-\[\]]{1,128}$/.test(name)
    ) {
      return `${dir}/${name}`;
    }
  }
  return undefined;
}

/**
 * Parses the `return` of `qom-get` of `guest-stats-polling-interval`.
 *
 * @param reply The `return` member of the reply.
 * @returns The interval in seconds (0: polling off).
 * @throws {TypeError} When it is not a u64.
 */
export function parsePollingInterval(reply: unknown): bigint {
  const interval = u64Of(reply);
  if (interval === undefined) {
    throw new TypeError(`Invalid guest-stats-polling-interval: ${describeValue(reply)}`);
  }
  return interval;
}

/** The guest's memory stats, each where the guest reported it. */
export interface GuestMemoryStats {
  /** Total memory the guest sees (`stat-total-memory`), bytes. */
  total?: bigint;
  /** Memory usable without swapping (`stat-available-memory`), bytes. */
  available?: bigint;
  /** Free memory (`stat-free-memory`), bytes. */
  free?: bigint;
  /** Memory in disk caches (`stat-disk-caches`), bytes. */
  diskCaches?: bigint;
  /** Major page faults (`stat-major-faults`). */
  majorFaults?: bigint;
  /** Minor page faults (`stat-minor-faults`). */
  minorFaults?: bigint;
  /** Memory swapped in (`stat-swap-in`), bytes. */
  swapIn?: bigint;
  /** Memory swapped out (`stat-swap-out`), bytes. */
  swapOut?: bigint;
  /** When the guest last reported, Unix seconds (`last-update`); absent while it never did. */
  lastUpdate?: bigint;
}

const GUEST_STAT_FIELDS: readonly [Exclude<keyof GuestMemoryStats, "lastUpdate">, string][] = [
  ["total", "stat-total-memory"],
  ["available", "stat-available-memory"],
  ["free", "stat-free-memory"],
  ["diskCaches", "stat-disk-caches"],
  ["majorFaults", "stat-major-faults"],
  ["minorFaults", "stat-minor-faults"],
  ["swapIn", "stat-swap-in"],
  ["swapOut", "stat-swap-out"],
];

/** QEMU's "the guest did not report it": -1 in a u64. */
const NOT_REPORTED = 2n ** 64n - 1n;

/**
 * Parses the `return` of `qom-get` of a balloon's `guest-stats`
 * (`{"stats": {"stat-free-memory": BYTES, ...}, "last-update": SECONDS}`). A stat the guest does
 * not report (QEMU's -1, or absent) is left out silently; one that is not a u64 is left out
 * with a problem. Until the guest first reports (`last-update` 0), nothing is kept.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseGuestStats } from "./balloon.ts";
 * const { stats } = parseGuestStats({
 *   stats: { "stat-free-memory": 1024, "stat-swap-in": 18446744073709551615n },
 *   "last-update": 1700000000,
 * });
 * assert.deepEqual(stats, { free: 1024n, lastUpdate: 1700000000n });
 * ```
 *
 * @param reply The `return` member of the reply.
 * @returns The stats and the problems.
 * @throws {TypeError} When the reply has no `stats` object or no u64 `last-update`.
 */
export function parseGuestStats(
  reply: unknown,
): { stats: GuestMemoryStats; problems: ReplyProblem[] } {
  const object = objectOf(reply);
  const values = objectOf(object?.stats);
  const lastUpdate = u64Of(object?.["last-update"]);
  if (values === undefined || lastUpdate === undefined) {
    throw new TypeError(
      `Invalid guest-stats: expected "stats" and a u64 "last-update", got ${describeValue(reply)}`,
    );
  }
  const result = { stats: {} as GuestMemoryStats, problems: [] as ReplyProblem[] };
  if (lastUpdate === 0n) return result;
  result.stats.lastUpdate = lastUpdate;
  for (const [key, field] of GUEST_STAT_FIELDS) {
    const raw = values[field];
    if (raw === undefined || raw === -1) continue;
    const value = u64Of(raw);
    if (value === NOT_REPORTED) continue;
    if (value === undefined) {
      result.problems.push({
        reason: "bad_value",
        detail: `guest-stats.stats.${field}: expected a u64, got ${describeValue(raw)}`,
      });
    } else {
      result.stats[key] = value;
    }
  }
  return result;
}
