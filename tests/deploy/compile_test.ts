/**
 * `deno task compile`: offline it fails in one line that names DENORT_BIN and
 * leaves the source as it was; online it builds a binary that runs.
 *
 * @module
 */

import { ok, strictEqual } from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;

async function compile(
  env: Record<string, string>,
  output: string,
): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile", output],
    cwd: root,
    env: { ...env, NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr).trim() };
}

Deno.test("deno task compile refuses a DENORT_BIN that does not exist, in one line", async () => {
  const { code, stderr } = await compile({ DENORT_BIN: "/nonexistent/denort" }, "/nonexistent/out");
  strictEqual(code, 1);
  strictEqual(stderr, 'compile: DENORT_BIN="/nonexistent/denort" does not exist');
});

Deno.test("deno task compile builds a binary, or says in one line why it cannot", async () => {
  const before = await Deno.readTextFile(`${root}src/build_info.json`);
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_compile_" });
  try {
    const { code, stderr } = await compile({}, `${dir}/kvm_exporter`);
    strictEqual(await Deno.readTextFile(`${root}src/build_info.json`), before, "source restored");
    if (code !== 0) {
      strictEqual(stderr.split("\n").length, 1, stderr);
      ok(stderr.startsWith("compile: "), stderr);
      ok(stderr.includes("DENORT_BIN"), stderr);
      console.log(`compile_test: no binary built here: ${stderr}`);
      return;
    }
    const run = await new Deno.Command(`${dir}/kvm_exporter`, {
      args: ["--version"],
      stdout: "piped",
    })
      .output();
    strictEqual(run.code, 0);
    ok(
      /^kvm_exporter version \S+ \(revision \S+, deno /.test(new TextDecoder().decode(run.stdout)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
