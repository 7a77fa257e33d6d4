import { deepStrictEqual, throws } from "node:assert/strict";
import { parseSchedstat } from "../../src/collectors/schedstat.ts";

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
