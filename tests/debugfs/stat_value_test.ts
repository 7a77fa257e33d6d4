import { strictEqual } from "node:assert/strict";
import { parseStatValue, parseVcpuDirName, parseVmDirName } from "../../src/debugfs/stat_value.ts";

Deno.test("parseStatValue() accepts exactly one integer", async (t) => {
  const cases: [string, bigint | undefined][] = [
    ["0\n", 0n],
    ["42", 42n],
    ["18446744073709551615\n", 18446744073709551615n],
    ["-6492169368040186\n", -6492169368040186n],
    ["", undefined],
    ["\n", undefined],
    ["abc\n", undefined],
    ["1\n2\n", undefined],
    ["1.5\n", undefined],
    [" 1\n", undefined],
    ["rmap_count\t0\t1\n4K\t0\t5\n", undefined],
    // The exposition carries u64 and s64 at most: promtool rejects a whole scrape otherwise.
    ["-9223372036854775808\n", -9223372036854775808n],
    ["18446744073709551616\n", undefined],
    ["-9223372036854775809\n", undefined],
    [`${"9".repeat(400)}\n`, undefined],
  ];
  for (const [text, expected] of cases) {
    await t.step(JSON.stringify(text), () => strictEqual(parseStatValue(text), expected));
  }
});

Deno.test("parseVmDirName() takes PID-FD dirs only", async (t) => {
  const cases: [string, number | undefined][] = [
    ["10620-10", 10620],
    ["1-x", 1],
    ["vcpu0", undefined],
    ["10620", undefined],
    ["-10", undefined],
    ["10620-", undefined],
  ];
  for (const [name, expected] of cases) {
    await t.step(name, () => strictEqual(parseVmDirName(name), expected));
  }
});

Deno.test("parseVcpuDirName() takes vcpuN dirs only", () => {
  strictEqual(parseVcpuDirName("vcpu12"), "12");
  strictEqual(parseVcpuDirName("vcpu"), undefined);
  strictEqual(parseVcpuDirName("xvcpu1"), undefined);
});
