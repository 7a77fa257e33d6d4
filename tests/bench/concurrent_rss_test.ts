/**
 * bench/concurrent_rss.ts: its command line, and a run end to end on a tiny tree.
 */

import assert from "node:assert/strict";
import { parseConcurrentRssArgs } from "../../bench/concurrent_rss.ts";

Deno.test("parseConcurrentRssArgs() reads sizes, counts and passes exporter flags on", () => {
  const cases: { args: string[]; want: Partial<ReturnType<typeof parseConcurrentRssArgs>> }[] = [
    { args: [], want: { size: "100x16", clients: [1, 2, 4, 10, 40], nonReaders: 100, rounds: 3 } },
    { args: ["--size=2x1", "--clients=1,3"], want: { size: "2x1", clients: [1, 3] } },
    { args: ["--non-readers=0", "--rounds=7"], want: { nonReaders: 0, rounds: 7 } },
    {
      args: ["--collector.kvm_stat.readers=4", "--rounds=1"],
      want: { rounds: 1, extraArgs: ["--collector.kvm_stat.readers=4"] },
    },
  ];
  for (const { args, want } of cases) {
    const got = parseConcurrentRssArgs(args);
    for (const [key, value] of Object.entries(want)) {
      assert.deepEqual(got[key as keyof typeof got], value, `${args.join(" ")}: ${key}`);
    }
  }
});

Deno.test("concurrent_rss.ts prints a row per scraper count on a tiny tree", async () => {
  const script = new URL("../../bench/concurrent_rss.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, "--size=2x1", "--clients=1,2", "--non-readers=2", "--rounds=1"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const rows = text.split("\n").filter((line) => /^\| \d/.test(line));
  assert.deepEqual(rows.map((row) => row.split("|")[1]!.trim()), ["1", "2", "2 + 2 non-readers"]);
  for (const row of rows) {
    const [, , peak, whole, refused, failed] = row.split("|").map((cell) => cell.trim());
    assert.ok(Number(peak) > 0, row);
    assert.ok(Number(whole) > 0, row);
    assert.equal(refused, "0", row);
    assert.equal(failed, "0", row);
  }
});
