import assert from "node:assert/strict";
import { scrapeDeadlineMs } from "../../src/http/scrape_deadline.ts";

Deno.test("scrapeDeadlineMs() takes the flag or Prometheus's timeout minus 0.5s", async (t) => {
  const cases: [number, string | undefined, number][] = [
    [10_000, undefined, 10_000],
    [10_000, "10", 9_500],
    [10_000, "9.5", 9_000],
    [10_000, "60", 10_000],
    [2_000, "10", 2_000],
    [10_000, "1", 500],
    [10_000, "0.4", 200],
    [10_000, "0", 10_000],
    [10_000, "-3", 10_000],
    [10_000, "abc", 10_000],
    [10_000, "1e3", 10_000],
    [10_000, "", 10_000],
  ];
  for (const [flagMs, header, want] of cases) {
    await t.step(`${flagMs} ms, header ${JSON.stringify(header)}`, () => {
      assert.equal(scrapeDeadlineMs(flagMs, header), want);
    });
  }
});
