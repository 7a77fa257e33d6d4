import { strictEqual } from "node:assert/strict";
import { parseRatios } from "../../bench/results.ts";

const BENCH = new URL("../../bench/bench.ts", import.meta.url).pathname;

async function hasCc(): Promise<boolean> {
  try {
    return (await new Deno.Command("cc", { args: ["--version"], stdout: "null" }).output()).success;
  } catch {
    return false;
  }
}

async function bench(args: string[]): Promise<{ code: number; stderr: string }> {
  const env = { ...Deno.env.toObject() };
  delete env.KVM_EXPORTER_GO_BIN; // The Go original is optional: the bench must run without it.
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      BENCH,
      "--sizes=2x1",
      "--scrapes=2",
      "--warmup=1",
      "--rss-scrapes=1",
      "--health=2x1",
      "--health-clients=2",
      "--health-scrapes=1",
      ...args,
    ],
    env,
    clearEnv: true,
    stdout: "null",
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

const noCc = !(await hasCc());
if (noCc) console.log("bench smoke test skipped: no cc to compile bench/floor.c");

Deno.test({
  name: "bench.ts runs end to end on a tiny tree, writes RESULTS.md and checks against it",
  ignore: noCc,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const out = `${dir}/RESULTS.md`;
      const run = await bench([`--out=${out}`]);
      strictEqual(run.code, 0, run.stderr);
      const ratios = parseRatios(await Deno.readTextFile(out));
      for (
        const name of [
          "in_process_vs_floor",
          "http_vs_floor",
          "gzip_vs_floor",
          "health_p95_vs_floor",
        ]
      ) {
        strictEqual(
          (ratios.get(`2x1 ${name}`) ?? 0) > 0,
          true,
          `2x1 ${name} in ${[...ratios.keys()]}`,
        );
      }

      const results = await Deno.readTextFile(out);
      strictEqual(
        /^\| 2x1 +\| \d+ +\| 2 +\|.*\| 0 +\|$/m.test(results),
        true,
        `a /-/healthy row for 2x1, 2 clients, every check 200:\n${results}`,
      );

      const lenient = await bench(["--check", `--out=${out}`, "--tolerance=1000000"]);
      strictEqual(lenient.code, 0, lenient.stderr);

      // Committed ratios no run can meet: --check must fail and name them.
      await Deno.writeTextFile(
        out,
        "| 2x1 | http_vs_floor | 0.01 |\n| 2x1 | gzip_vs_floor | 0.01 |\n",
      );
      const strict = await bench(["--check", `--out=${out}`]);
      strictEqual(strict.code, 1, strict.stderr);
      strictEqual(strict.stderr.includes("2x1 http_vs_floor: "), true, strict.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
