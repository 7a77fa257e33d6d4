import { deepStrictEqual } from "node:assert/strict";
import { parseNetDev } from "../../src/collectors/net_dev.ts";

const HEAD = "Inter-|   Receive                                                |  Transmit\n" +
  " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

const CASES: {
  what: string;
  text: string;
  wanted: string[];
  counters: Record<string, bigint[]>;
  bad: string[];
}[] = [
  {
    what: "reads the 8 counters of a wanted interface, skips the others",
    text: HEAD +
      "    lo:  100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n" +
      "tap100i0: 1000 10 1 2 0 0 0 0 5000 50 3 4 0 0 0 0\n",
    wanted: ["tap100i0"],
    counters: { tap100i0: [1000n, 10n, 1n, 2n, 5000n, 50n, 3n, 4n] },
    bad: [],
  },
  {
    what: "keeps u64 values exact, the name right against the colon",
    text: HEAD + "t:18446744073709551615 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
    wanted: ["t"],
    counters: { t: [18446744073709551615n, 1n, 0n, 0n, 0n, 0n, 0n, 0n] },
    bad: [],
  },
  {
    what: "a wanted line that does not parse is bad; a missing one is neither",
    text: HEAD +
      "a: 1 2 3\n" +
      "b: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 -16\n" +
      "c: 18446744073709551616 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n" +
      "d: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n" +
      "garbage without colon\n\0\n",
    wanted: ["a", "b", "c", "d", "gone"],
    counters: {},
    bad: ["a", "b", "c", "d"],
  },
  {
    what: "the first line of a name counts",
    text: HEAD + "x: 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\nx: nonsense\n",
    wanted: ["x"],
    counters: { x: [1n, 0n, 0n, 0n, 0n, 0n, 0n, 0n] },
    bad: [],
  },
];

Deno.test("parseNetDev() reads the wanted interfaces' counters", () => {
  for (const c of CASES) {
    const { counters, badLines } = parseNetDev(c.text, new Set(c.wanted));
    deepStrictEqual(
      Object.fromEntries([...counters].map(([name, v]) => [name, Object.values(v)])),
      c.counters,
      c.what,
    );
    deepStrictEqual(badLines, c.bad, c.what);
  }
});
