import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { parseLockdown } from "../../src/system/lockdown.ts";
import { parseMaxFds, parseProcStat } from "../../src/system/process_metrics.ts";

Deno.test("parseLockdown() reads the bracketed mode", async (t) => {
  const cases: [string, string][] = [
    ["[none] integrity confidentiality\n", "none"],
    ["none [integrity] confidentiality\n", "integrity"],
    ["none integrity [confidentiality]\n", "confidentiality"],
    ["", "unknown"],
    ["[weird]\n", "unknown"],
  ];
  for (const [text, expected] of cases) {
    await t.step(expected, () => strictEqual(parseLockdown(text), expected));
  }
});

Deno.test("parseProcStat() counts fields after the last parenthesis", () => {
  const line =
    "9408 (deno (x) y) S 9405 9405 1077 0 -1 4194560 12004 0 0 0 250 50 0 0 20 0 12 0 104578 1350000000 25000 18446744073709551615\n";
  deepStrictEqual(parseProcStat(line), {
    cpuTicks: 300,
    virtualBytes: 1350000000,
    residentPages: 25000,
  });
  strictEqual(parseProcStat("garbage"), undefined);
});

Deno.test("parseMaxFds() reads the soft limit", () => {
  const text = "Limit                     Soft Limit           Hard Limit           Units\n" +
    "Max open files            1024                 524288               files\n";
  strictEqual(parseMaxFds(text), 1024);
  strictEqual(
    parseMaxFds("Max open files            unlimited            unlimited  files\n"),
    undefined,
  );
});

Deno.test("parseProcStat() reads this process's real /proc stat line", async () => {
  const stat = parseProcStat(await Deno.readTextFile(`/proc/${Deno.pid}/stat`));
  strictEqual(stat !== undefined && stat.virtualBytes > 0 && stat.residentPages > 0, true);
});
