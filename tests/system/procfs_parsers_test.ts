import { strictEqual } from "node:assert/strict";
import { parseLockdown } from "../../src/system/lockdown.ts";
import { parseMaxFds } from "../../src/system/proc_pid.ts";

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

Deno.test("parseMaxFds() reads the soft limit", () => {
  const text = "Limit                     Soft Limit           Hard Limit           Units\n" +
    "Max open files            1024                 524288               files\n";
  strictEqual(parseMaxFds(text), 1024);
  strictEqual(
    parseMaxFds("Max open files            unlimited            unlimited  files\n"),
    undefined,
  );
});
