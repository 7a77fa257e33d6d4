/**
 * The procfs parsers of system/proc_pid.ts on real and odd text: each field that is not an
 * unsigned 64-bit decimal costs only itself; only a text that is not a stat line throws.
 *
 * @module
 */

import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  parseBootTime,
  parseProcPidIo,
  parseProcPidStat,
  parseProcPidStatus,
  parseU64,
  type ProcPidStat,
} from "../../src/system/proc_pid.ts";

/** A 52-field stat line whose fields 14, 15, 22, 23 and 24 are given. */
function statLine(comm: string, fields: { utime: string; stime: string; start: string }): string {
  return `4242 (${comm}) S 1 4242 4242 0 -1 138412352 52193 0 12 0 ${fields.utime} ` +
    `${fields.stime} 0 0 20 0 7 0 ${fields.start} 3567435776 1069056 18446744073709551615 ` +
    "1 2 3 0 0 0 0 4096 1260 0 0 0 17 1 0 0 3 0 0 4 5 6 7 8 9 10 0\n";
}

Deno.test("parseU64() takes unsigned decimals below 2^64 only", async (t) => {
  const cases: [string | undefined, bigint | undefined][] = [
    ["0", 0n],
    ["42", 42n],
    ["18446744073709551615", 18446744073709551615n],
    ["18446744073709551616", undefined],
    ["000000000000000000001", undefined], // 21 digits
    ["-1", undefined],
    ["+1", undefined],
    ["1.5", undefined],
    ["1e3", undefined],
    ["", undefined],
    [" 1", undefined],
    [undefined, undefined],
  ];
  for (const [text, expected] of cases) {
    await t.step(String(JSON.stringify(text)), () => strictEqual(parseU64(text), expected));
  }
});

Deno.test("parseProcPidStat() reads fields counted from the last parenthesis", async (t) => {
  const base = { state: "S", virtualBytes: 3567435776n, residentPages: 1069056n };
  const cases: [string, string, Omit<ProcPidStat, "state" | "virtualBytes" | "residentPages">][] = [
    [
      "plain",
      statLine("qemu-system-x86", { utime: "823471", stime: "120388", start: "4218" }),
      { comm: "qemu-system-x86", utimeTicks: 823471n, stimeTicks: 120388n, startTicks: 4218n },
    ],
    [
      "a name with spaces and parentheses",
      statLine("a) (b c", { utime: "1", stime: "2", start: "3" }),
      { comm: "a) (b c", utimeTicks: 1n, stimeTicks: 2n, startTicks: 3n },
    ],
    [
      "utime above 64 bits costs utime only",
      statLine("q", { utime: "18446744073709551616", stime: "2", start: "3" }),
      { comm: "q", utimeTicks: undefined, stimeTicks: 2n, startTicks: 3n },
    ],
    [
      "a negative stime costs stime only",
      statLine("q", { utime: "1", stime: "-2", start: "3" }),
      { comm: "q", utimeTicks: 1n, stimeTicks: undefined, startTicks: 3n },
    ],
    [
      "garbage start time",
      statLine("q", { utime: "1", stime: "2", start: "soon" }),
      { comm: "q", utimeTicks: 1n, stimeTicks: 2n, startTicks: undefined },
    ],
  ];
  for (const [name, text, expected] of cases) {
    await t.step(name, () => deepStrictEqual(parseProcPidStat(text), { ...base, ...expected }));
  }
  await t.step("a line cut after the state has no numbers", () => {
    deepStrictEqual(parseProcPidStat("1 (q) Z\n"), {
      comm: "q",
      state: "Z",
      utimeTicks: undefined,
      stimeTicks: undefined,
      startTicks: undefined,
      virtualBytes: undefined,
      residentPages: undefined,
    });
  });
  for (const text of ["", "garbage", "1 q S 1 2 3\n", "1 (q)\n", "1 (q) 42 1 2\n", ")(\n"]) {
    await t.step(`not a stat line: ${JSON.stringify(text)}`, () => {
      throws(() => parseProcPidStat(text), SyntaxError);
    });
  }
});

Deno.test("parseProcPidStat() reads this process's real stat line", async () => {
  const stat = parseProcPidStat(await Deno.readTextFile(`/proc/${Deno.pid}/stat`));
  strictEqual(stat.state.length, 1);
  strictEqual(typeof stat.utimeTicks, "bigint");
  strictEqual(typeof stat.startTicks, "bigint");
  strictEqual((stat.virtualBytes ?? 0n) > 0n && (stat.residentPages ?? 0n) > 0n, true);
});

Deno.test("parseProcPidStatus() reads VmRSS in kB and a plausible thread count", async (t) => {
  const cases: [string, string, { residentBytes?: bigint; threads?: bigint }][] = [
    ["both", "Name:\tqemu\nVmRSS:\t 4276224 kB\nThreads:\t9\n", {
      residentBytes: 4378853376n,
      threads: 9n,
    }],
    ["a kernel thread or zombie: no VmRSS", "Name:\tkworker\nThreads:\t1\n", { threads: 1n }],
    ["another unit", "VmRSS:\t 12 MB\nThreads:\t3\n", { threads: 3n }],
    ["no unit", "VmRSS:\t 12\nThreads:\t3\n", { threads: 3n }],
    ["an RSS over 2^64 bytes", "VmRSS:\t18446744073709551615 kB\nThreads:\t3\n", { threads: 3n }],
    ["0 threads", "VmRSS:\t1 kB\nThreads:\t0\n", { residentBytes: 1024n }],
    ["more threads than pids", "VmRSS:\t1 kB\nThreads:\t4194305\n", { residentBytes: 1024n }],
    ["the most threads", "Threads:\t4194304\n", { threads: 4194304n }],
    ["VmRSS only at a line's start", "XVmRSS:\t1 kB\nName:\tVmRSS: 2 kB\n", {}],
    ["empty", "", {}],
  ];
  for (const [name, text, expected] of cases) {
    await t.step(name, () => {
      deepStrictEqual(parseProcPidStatus(text), {
        residentBytes: expected.residentBytes,
        threads: expected.threads,
      });
    });
  }
});

Deno.test("parseProcPidIo() reads read_bytes and write_bytes", async (t) => {
  const cases: [string, string, [bigint | undefined, bigint | undefined]][] = [
    [
      "real",
      "rchar: 6976\nwchar: 0\nsyscr: 10\nsyscw: 0\nread_bytes: 4096\nwrite_bytes: 8192\n" +
      "cancelled_write_bytes: 0\n",
      [4096n, 8192n],
    ],
    ["garbage write", "read_bytes: 1\nwrite_bytes: -1\n", [1n, undefined]],
    ["cancelled_write_bytes is not write_bytes", "cancelled_write_bytes: 5\n", [
      undefined,
      undefined,
    ]],
    ["empty", "", [undefined, undefined]],
  ];
  for (const [name, text, [readBytes, writeBytes]] of cases) {
    await t.step(name, () => deepStrictEqual(parseProcPidIo(text), { readBytes, writeBytes }));
  }
});

Deno.test("parseBootTime() reads the btime line", async (t) => {
  const cases: [string, bigint | undefined][] = [
    ["cpu  1 2 3\nintr 1 2\nctxt 9\nbtime 1764720000\nprocesses 3\n", 1764720000n],
    ["btime 0\n", undefined],
    ["btime garbage\n", undefined],
    ["btime -5\n", undefined],
    ["xbtime 5\n", undefined],
    ["cpu 1 2 3\n", undefined],
  ];
  for (const [text, expected] of cases) {
    await t.step(JSON.stringify(text), () => strictEqual(parseBootTime(text), expected));
  }
  await t.step("this host's /proc/stat", async () => {
    const btime = parseBootTime(await Deno.readTextFile("/proc/stat"));
    strictEqual(btime !== undefined && btime > 1_000_000_000n, true);
  });
});
