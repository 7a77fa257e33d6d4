import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  type BenchRun,
  findRegressions,
  parseRatios,
  type Ratios,
  ratiosOf,
  renderResults,
  type SizeResult,
} from "../../bench/results.ts";
import { parseBenchArgs } from "../../bench/bench.ts";

const SIZE: SizeResult = {
  size: "100x16",
  files: 15_963,
  floorMs: 80,
  floorWalkMs: 95,
  inProcessMs: 200,
  httpMs: 256,
  httpP95Ms: 300,
  gzipMs: 280,
  cpuMs: 311,
  rssMb: 203,
  rssScrapes: 1000,
  idleRssMb: 55,
  healthP95Ms: 1200,
  go: { httpMs: 248, httpP95Ms: 260, gzipMs: 250, cpuMs: 321, rssMb: 23, idleRssMb: 12 },
};

const { healthP95Ms: _health, go: _go, ...SMALL } = { ...SIZE, size: "10x4" };

const RUN: BenchRun = {
  date: "2026-11-25T12:00:00Z",
  cores: 2,
  cpu: "Some CPU @ 2.0GHz",
  deno: "2.9.6",
  commit: "abc1234",
  scrapes: 20,
  note: "test",
  sizes: [SIZE, SMALL],
};

Deno.test("ratiosOf() divides ours by the floor and by the Go original", () => {
  const ratios = ratiosOf([SIZE]);
  strictEqual(ratios.get("100x16 http_vs_floor"), 3.2);
  strictEqual(ratios.get("100x16 cpu_vs_go"), 0.97);
  strictEqual(ratios.get("100x16 rss_vs_go"), 8.83);
  strictEqual(ratios.get("100x16 health_p95_vs_floor"), 15);
});

Deno.test("ratiosOf() leaves out the Go ratios when Go was not measured", () => {
  const { go: _, ...withoutGo } = SIZE;
  const keys = [...ratiosOf([withoutGo]).keys()];
  deepStrictEqual(keys.filter((key) => key.endsWith("_vs_go")), []);
  strictEqual(keys.includes("100x16 http_vs_floor"), true);
});

Deno.test("parseRatios() reads back what renderResults() wrote", () => {
  const markdown = renderResults(RUN);
  deepStrictEqual(parseRatios(markdown), ratiosOf(RUN.sizes));
  strictEqual(markdown.includes("- Machine: 2 cores, Some CPU @ 2.0GHz"), true);
  strictEqual(markdown.includes("- Commit: abc1234"), true);
  strictEqual(markdown.includes("| 100x16 | 15963 | 80.0 | 95.0 |"), true);
});

Deno.test("parseRatios() reads tables that deno fmt padded", () => {
  const markdown = "| tree   | ratio         | value |\n| ------ | ------------- | ----- |\n" +
    "| 100x16 | http_vs_floor |  6.43 |\n| 10x4   | cpu_vs_go     |  1.15 |\n";
  deepStrictEqual(
    parseRatios(markdown),
    new Map([["100x16 http_vs_floor", 6.43], ["10x4 cpu_vs_go", 1.15]]),
  );
});

const CHECK_CASES: {
  what: string;
  committed: [string, number][];
  current: [string, number][];
  regressed: string[];
}[] = [
  { what: "equal", committed: [["a x", 2]], current: [["a x", 2]], regressed: [] },
  { what: "25% above is allowed", committed: [["a x", 2]], current: [["a x", 2.5]], regressed: [] },
  {
    what: "more than 25% above fails",
    committed: [["a x", 2]],
    current: [["a x", 2.51]],
    regressed: ["a x"],
  },
  { what: "better is fine", committed: [["a x", 2]], current: [["a x", 0.5]], regressed: [] },
  { what: "new ratios are not compared", committed: [], current: [["a x", 9]], regressed: [] },
  { what: "ratios gone are not compared", committed: [["a x", 1]], current: [], regressed: [] },
];

for (const { what, committed, current, regressed } of CHECK_CASES) {
  Deno.test(`findRegressions(): ${what}`, () => {
    const found = findRegressions(new Map(committed) as Ratios, new Map(current) as Ratios, 0.25);
    deepStrictEqual(found.map((r) => r.key), regressed);
  });
}

Deno.test("parseBenchArgs() reads sizes and counts, and rejects the unknown", () => {
  const options = parseBenchArgs(["--sizes=10x4,2x1", "--scrapes=5", "--check", "--out=/tmp/R.md"]);
  deepStrictEqual(options.sizes, ["10x4", "2x1"]);
  strictEqual(options.scrapes, 5);
  strictEqual(options.rssScrapes, 1000);
  strictEqual(options.check, true);
  strictEqual(options.out, "/tmp/R.md");
  for (
    const [args, message] of [
      [["--scrapes=0"], '--scrapes must be a positive integer, got "0"'],
      [["--sizes=10"], 'Tree size must be VMSxVCPUS, e.g. "100x16", got "10"'],
      [["--fast"], 'Unknown bench option "--fast"'],
    ] as const
  ) {
    let error = "";
    try {
      parseBenchArgs(args);
    } catch (e) {
      error = (e as Error).message;
    }
    strictEqual(error, message);
  }
});
