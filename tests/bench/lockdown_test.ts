/**
 * The bench's lockdown mode: its options, the strace summary's parser, and one small run that
 * shows a steady scrape of this checkout opening no refused file.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { lockdownBench, parseLockdownArgs } from "../../bench/lockdown.ts";
import { parseStraceSummary } from "../../bench/strace_lockdown.ts";

Deno.test("parseLockdownArgs() reads the lockdown mode's options and refuses bad ones", () => {
  const defaults = { sizes: ["10x4", "100x16"], scrapes: 20, warmup: 3, rounds: 3 };
  const cases: { args: string[]; want: Partial<typeof defaults> & { baseline?: string } }[] = [
    { args: ["--lockdown"], want: {} },
    { args: ["--lockdown", "--sizes=2x1", "--scrapes=5"], want: { sizes: ["2x1"], scrapes: 5 } },
    { args: ["--rounds=1", "--baseline=/tmp/main/"], want: { rounds: 1, baseline: "/tmp/main" } },
  ];
  for (const { args, want } of cases) {
    deepStrictEqual(parseLockdownArgs(args), { ...defaults, baseline: undefined, ...want });
  }
  for (const bad of [["--sizes=10"], ["--scrapes=0"], ["--rounds=x"], ["--gzip"]]) {
    throws(() => parseLockdownArgs(bad), Error, bad.join(" "));
  }
});

Deno.test("parseStraceSummary() reads openat's calls and errors, with and without errors", () => {
  const head = "% time     seconds  usecs/call     calls    errors syscall\n";
  const cases: { row: string; want: { calls: number; errors: number } }[] = [
    {
      row: "100.00    0.001000           2       405       336 openat",
      want: { calls: 405, errors: 336 },
    },
    {
      row: "100.00    0.000512           1       317           openat",
      want: { calls: 317, errors: 0 },
    },
  ];
  for (const { row, want } of cases) deepStrictEqual(parseStraceSummary(head + row + "\n"), want);
  throws(() => parseStraceSummary(head), SyntaxError);
});

Deno.test("the lockdown bench's steady scrape of this checkout opens no refused file", async () => {
  const lines = await lockdownBench({
    sizes: ["1x1"],
    scrapes: 2,
    warmup: 1,
    rounds: 1,
    baseline: undefined,
  });
  const locked = lines.find((l) => l.includes("this checkout, locked down"));
  const unlocked = lines.find((l) => l.includes("not locked down"));
  ok(locked !== undefined && unlocked !== undefined, lines.join("\n"));
  // | tree | variant | first (refused) | steady (refused) | ms | ratio |
  const cells = (line: string): string[] => line.split("|").map((c) => c.trim());
  const [, , , lockedFirst, lockedSteady] = cells(locked);
  const [, , , unlockedFirst, unlockedSteady] = cells(unlocked);
  // 1x1: 63 root files and 63 in the VM dir (mmu_rmaps_stat excluded), 7 of each instant; 6 vCPU.
  strictEqual(lockedFirst, "132 (112)");
  strictEqual(lockedSteady, "20 (0)");
  strictEqual(unlockedFirst, "132 (0)");
  strictEqual(unlockedSteady, "132 (0)");
});
