/**
 * Running the exporter fetches only what it runs with: deno.json and deno.lock hold main.ts's
 * npm packages and nothing else (Deno installs every package in the lock), while the test-only
 * packages live in tests/deno.json and its own lock.
 *
 * @module
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { REPO_ROOT } from "../support/exporter_process.ts";

async function json(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/${path}`));
}

Deno.test("deno.lock holds exactly the npm packages main.ts's module graph imports", async () => {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "null",
  }).output();
  ok(code === 0, "deno info main.ts");
  const graph = Object.keys(JSON.parse(new TextDecoder().decode(stdout)).npmPackages).sort();
  const lock = await json("deno.lock") as { npm: Record<string, unknown> };
  deepStrictEqual(Object.keys(lock.npm).sort(), graph);
  ok(!graph.some((p) => /fast-check|kubernetes-models|ajv/.test(p)), graph.join(" "));
});

Deno.test("tests/deno.json has the runtime imports as deno.json pins them, plus the test ones", async () => {
  const runtime = (await json("deno.json")).imports as Record<string, string>;
  const tests = (await json("tests/deno.json")).imports as Record<string, string>;
  for (const [name, target] of Object.entries(runtime)) deepStrictEqual(tests[name], target, name);
  deepStrictEqual(
    Object.keys(tests).filter((name) => !(name in runtime)).sort(),
    ["@kubernetes-models/prometheus-operator/", "fast-check", "kubernetes-models/"],
  );
  deepStrictEqual(
    (await json("tests/deno.json")).compilerOptions,
    (await json("deno.json")).compilerOptions,
  );
});
