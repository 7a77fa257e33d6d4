import assert from "node:assert/strict";
import {
  LOOPBACK_ANY_PORT,
  runMain,
  SAMPLE_ARGS,
  startExporter,
  waitFor,
} from "./exporter_process.ts";

Deno.test("waitFor() returns once the condition holds", async () => {
  let polls = 0;
  await waitFor(() => ++polls === 3, { what: "the third poll", intervalMs: 1 });
  assert.equal(polls, 3);
});

Deno.test("waitFor() fails at the deadline, naming the condition and the last error", async () => {
  await assert.rejects(
    waitFor(() => false, { timeoutMs: 50, what: "never" }),
    /^Error: Timed out after 50 ms waiting for never$/,
  );
  await assert.rejects(
    waitFor(() => {
      throw new Error("boom");
    }, { timeoutMs: 50, what: "a throwing check" }),
    /waiting for a throwing check; last error: boom$/,
  );
});

Deno.test("waitFor() meets the deadline when a check never settles", async () => {
  await assert.rejects(
    waitFor(() => new Promise<boolean>(() => {}), { timeoutMs: 50, what: "a stuck check" }),
    /waiting for a stuck check; the last check did not finish$/,
  );
});

Deno.test("startExporter() fails with the stderr of a run that exits before listening", async () => {
  const missing = "/nonexistent/kvm_exporter/vm.yaml";
  await assert.rejects(
    startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT, `--collector.vmmap.path=${missing}`]),
    (error: Error) => {
      assert.match(error.message, /exited with code 1 before listening; stderr:\n/);
      assert.ok(error.message.includes(missing), error.message);
      return true;
    },
  );
});

Deno.test("startExporter() reads the port and stops the process with SIGTERM", async () => {
  const exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
  let status: Deno.CommandStatus;
  try {
    assert.ok(exporter.port > 0);
    assert.equal(exporter.baseUrl, `http://127.0.0.1:${exporter.port}`);
    const response = await fetch(`${exporter.baseUrl}/-/healthy`);
    assert.equal(await response.text(), "OK\n");
  } finally {
    status = await exporter.stop();
  }
  assert.equal(status.code, 0);
  assert.match(exporter.stderrText(), / msg=Stopped\n$/);
  // A second stop of an exited process returns the same status.
  assert.deepEqual(await exporter.stop(), status);
});

Deno.test("startExporter() kills the process on dispose", async () => {
  let pid: number;
  {
    await using exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
    pid = exporter.pid;
  }
  // The pid is gone (or reused by an unrelated process, which signal 0 cannot tell apart).
  await waitFor(() => {
    try {
      Deno.kill(pid, "SIGCONT");
      return false;
    } catch (error) {
      return error instanceof Deno.errors.NotFound;
    }
  }, { what: `pid ${pid} to be gone` });
});

Deno.test("runMain() gives the exit code, stdout and stderr of a one-shot run", async () => {
  const result = await runMain(["--bogus"]);
  assert.equal(result.code, 2);
  assert.equal(result.stdout, "");
  assert.match(result.stderr, /--bogus/);
});
