import { deepStrictEqual, ok, rejects, throws } from "node:assert/strict";
import { parseSchedstat, readSchedstat } from "../../src/system/schedstat.ts";

Deno.test("parseSchedstat() reads CPU time, run delay and timeslices", async (t) => {
  const cases: { what: string; text: string; expected: [bigint, bigint, bigint] }[] = [
    {
      what: "a vCPU thread",
      text: "2599728635 1905341181 1472\n",
      expected: [2599728635n, 1905341181n, 1472n],
    },
    { what: "no newline", text: "0 0 0", expected: [0n, 0n, 0n] },
    {
      what: "u64 max stays exact",
      text: "18446744073709551615 1 2\n",
      expected: [18446744073709551615n, 1n, 2n],
    },
  ];
  for (const c of cases) {
    await t.step(c.what, () => {
      const { cpuNs, delayNs, timeslices } = parseSchedstat(c.text);
      deepStrictEqual([cpuNs, delayNs, timeslices], c.expected);
    });
  }
});

Deno.test("parseSchedstat() rejects what is not three u64s", async (t) => {
  for (
    const text of [
      "",
      "1 2\n",
      "1 2 3 4\n",
      "-1 2 3\n",
      "a b c\n",
      "1  2 3\n",
      "18446744073709551616 0 0\n",
    ]
  ) {
    await t.step(JSON.stringify(text), () => throws(() => parseSchedstat(text), SyntaxError));
  }
});

Deno.test("readSchedstat() reads this process's own thread", async () => {
  const stat = await readSchedstat("/proc", Deno.pid, Deno.pid);
  ok(stat.cpuNs > 0n);
  ok(stat.timeslices > 0n);
});

Deno.test("readSchedstat() names the path of a bad or oversized file", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/1/task/2`, { recursive: true });
    await Deno.writeTextFile(`${root}/1/task/2/schedstat`, "1 2\n");
    await rejects(readSchedstat(root, 1, 2), /1\/task\/2\/schedstat: Invalid schedstat/);
    await Deno.writeTextFile(`${root}/1/task/2/schedstat`, "1".repeat(10_000));
    await rejects(readSchedstat(root, 1, 2), /longer than 128 bytes/);
    await rejects(readSchedstat(root, 1, 3), Deno.errors.NotFound);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
