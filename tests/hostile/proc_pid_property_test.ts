/**
 * Hostile procfs text for the vm_process collector's parsers (system/proc_pid.ts): any `stat`,
 * `status` or `io` text either parses into fields that are each an unsigned 64-bit value (or
 * absent), or, for a `stat` line without its `(comm)`, throws a SyntaxError and nothing else. And
 * a well-formed stat line, whatever its command name (spaces, parentheses, `) (`), gives back the
 * numbers it was made of.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  MAX_THREADS,
  parseBootTime,
  parseProcPidIo,
  parseProcPidStat,
  parseProcPidStatus,
} from "../../src/system/proc_pid.ts";
import { propertyParams } from "../support/property.ts";

const U64_LIMIT = 2n ** 64n;

/** Undefined, or within `[min, max]`. */
function inRange(value: bigint | undefined, min: bigint, max: bigint): boolean {
  return value === undefined || (value >= min && value <= max);
}

const u64 = fc.bigInt({ min: 0n, max: U64_LIMIT - 1n });

/** Text that looks like procfs with holes: fields, numbers, signs, parentheses, noise. */
const procText = fc.string({
  unit: fc.oneof(
    fc.constantFrom(
      "(",
      ")",
      " ",
      "\t",
      "\n",
      ":",
      "-",
      " kB",
      "VmRSS:",
      "Threads:",
      "read_bytes:",
      "write_bytes:",
      "btime ",
      "18446744073709551616",
      "18446744073709551615",
      "0",
      "S",
      "Z",
    ),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  ),
  maxLength: 60,
});

Deno.test("parseProcPidStat() returns u64 fields or throws SyntaxError, on any text", () => {
  fc.assert(
    fc.property(procText, (text) => {
      let stat;
      try {
        stat = parseProcPidStat(text);
      } catch (error) {
        assert.ok(error instanceof SyntaxError, String(error));
        return;
      }
      for (const field of ["utimeTicks", "stimeTicks", "startTicks"] as const) {
        assert.ok(inRange(stat[field], 0n, U64_LIMIT - 1n), `${field}: ${stat[field]}`);
      }
    }),
    propertyParams(2000),
  );
});

Deno.test("parseProcPidStat() gives back the numbers of a well-formed line, whatever its name", () => {
  const comm = fc.string({
    unit: fc.constantFrom("q", "e", "m", " ", "(", ")", ") (", "ü", "-"),
    maxLength: 16,
  });
  fc.assert(
    fc.property(comm, u64, u64, u64, (name, utime, stime, start) => {
      const line = `4242 (${name}) S 1 4242 4242 0 -1 138412352 1 0 0 0 ${utime} ${stime} 0 0 ` +
        `20 0 7 0 ${start} 4096 10 18446744073709551615 1 2 3\n`;
      const stat = parseProcPidStat(line);
      assert.deepEqual(
        [stat.comm, stat.state, stat.utimeTicks, stat.stimeTicks, stat.startTicks],
        [name, "S", utime, stime, start],
      );
    }),
    propertyParams(1000),
  );
});

Deno.test("parseProcPidStatus(), parseProcPidIo() and parseBootTime() never throw, and bound what they return", () => {
  fc.assert(
    fc.property(procText, (text) => {
      const status = parseProcPidStatus(text);
      assert.ok(inRange(status.residentBytes, 0n, U64_LIMIT - 1n));
      assert.ok(inRange(status.threads, 1n, MAX_THREADS));
      const io = parseProcPidIo(text);
      assert.ok(inRange(io.readBytes, 0n, U64_LIMIT - 1n));
      assert.ok(inRange(io.writeBytes, 0n, U64_LIMIT - 1n));
      assert.ok(inRange(parseBootTime(text), 1n, U64_LIMIT - 1n));
    }),
    propertyParams(2000),
  );
});
