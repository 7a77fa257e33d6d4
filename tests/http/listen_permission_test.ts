/**
 * The tasks grant `--allow-net` for `:9900` only: another address must fail at start with a
 * one-line error naming the address Deno refused and where docs/deployment.md says how to grant it.
 */

import assert from "node:assert/strict";
import {
  fetchText,
  freeLoopbackPort,
  runMain,
  SAMPLE_ARGS,
  startExporter,
} from "../support/exporter_process.ts";

Deno.test("main.ts with the demo task's --allow-net on another port exits 1 naming the fix", async () => {
  const port = freeLoopbackPort();
  const run = await runMain([...SAMPLE_ARGS, `--web.listen-address=:${port}`], {
    permissions: ["--allow-read=tests/fixtures/sample", "--allow-net=0.0.0.0:9900,[::]:9900"],
  });
  assert.equal(run.code, 1, run.stderr);
  const line = run.stderr.split("\n").find((l) => l.includes("Cannot listen"));
  assert.ok(line, run.stderr);
  assert.ok(line.includes(`Requires net access to \\"[::]:${port}\\"`), line);
  assert.ok(line.includes("docs/deployment.md: Another address or port"), line);
});

Deno.test("main.ts with --allow-net for exactly its address serves there", async () => {
  const port = freeLoopbackPort();
  await using exporter = await startExporter([
    ...SAMPLE_ARGS,
    `--web.listen-address=127.0.0.1:${port}`,
  ], {
    permissions: ["--allow-read=tests/fixtures/sample", `--allow-net=127.0.0.1:${port}`],
  });
  const health = await fetchText(`${exporter.baseUrl}/-/healthy`);
  assert.equal(health.status, 200);
  assert.equal(exporter.port, port);
});
