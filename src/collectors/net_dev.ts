/**
 * A pure parser of `/proc/net/dev` (a process's `<procfs>/PID/net/dev`: the interfaces of its
 * network namespace): the counters of the interfaces asked for, as the host sees them.
 *
 * @module
 */

import { parseU64 } from "../system/proc_pid.ts";

/** One interface's counters, as the host counts them. */
export interface NetDevCounters {
  /** Bytes the host received on it. */
  receiveBytes: bigint;
  /** Packets the host received on it. */
  receivePackets: bigint;
  /** Receive errors. */
  receiveErrors: bigint;
  /** Received packets dropped. */
  receiveDrops: bigint;
  /** Bytes the host sent on it. */
  transmitBytes: bigint;
  /** Packets the host sent on it. */
  transmitPackets: bigint;
  /** Transmit errors. */
  transmitErrors: bigint;
  /** Sent packets dropped. */
  transmitDrops: bigint;
}

/** The cap of a read of `net/dev`: some 30,000 interfaces. */
export const NET_DEV_MAX_BYTES = 4 * 1024 * 1024;

/** What {@linkcode parseNetDev} found of the interfaces asked for. */
export interface NetDevResult {
  /** The counters of each interface asked for whose line parsed. */
  counters: Map<string, NetDevCounters>;
  /** The interfaces asked for whose line did not parse. */
  badLines: string[];
}

/** The 16 counters of a line, or undefined when they are not 16 u64s. */
function fieldsOf(text: string): bigint[] | undefined {
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 16) return undefined;
  const values = fields.map(parseU64);
  return values.every((v) => v !== undefined) ? values as bigint[] : undefined;
}

/**
 * Parses `net/dev`, keeping only the interfaces in `wanted`. A wanted interface whose line does
 * not have 16 unsigned counters is in `badLines`; one without a line is in neither (it is gone,
 * or in another network namespace). Other lines are not looked at.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseNetDev } from "./net_dev.ts";
 * const text = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n" +
 *   "tap0: 100 2 0 0 0 0 0 0 300 4 0 1 0 0 0 0\n";
 * assert.equal(parseNetDev(text, new Set(["tap0"])).counters.get("tap0")?.transmitDrops, 1n);
 * ```
 *
 * @param text The file's content.
 * @param wanted The interface names asked for.
 * @returns Their counters, and the names whose line is bad.
 */
export function parseNetDev(text: string, wanted: ReadonlySet<string>): NetDevResult {
  const result: NetDevResult = { counters: new Map(), badLines: [] };
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon === -1) continue;
    const name = line.slice(0, colon).trim();
    if (!wanted.has(name) || result.counters.has(name) || result.badLines.includes(name)) continue;
    const f = fieldsOf(line.slice(colon + 1));
    if (f === undefined) {
      result.badLines.push(name);
      continue;
    }
    result.counters.set(name, {
      receiveBytes: f[0]!,
      receivePackets: f[1]!,
      receiveErrors: f[2]!,
      receiveDrops: f[3]!,
      transmitBytes: f[8]!,
      transmitPackets: f[9]!,
      transmitErrors: f[10]!,
      transmitDrops: f[11]!,
    });
  }
  return result;
}
