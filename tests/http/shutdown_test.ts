/**
 * SIGTERM while a scrape is blocked on a read that never returns (a FIFO in the procfs tree):
 * the server's shutdown deadline ends the wait and the process exits 0.
 */

import assert from "node:assert/strict";
import { LOOPBACK_ANY_PORT, startExporter, waitFor } from "../support/exporter_process.ts";
import { blockedOnFifo } from "../support/fifo.ts";
import { onPath } from "../support/tls.ts";

const hasMkfifo = onPath("mkfifo");
if (!hasMkfifo) console.log("shutdown_test: skipped: mkfifo is not on PATH");

Deno.test({
  name:
    "main.ts exits 0 on SIGTERM within the shutdown deadline while a scrape is blocked on a FIFO",
  ignore: !hasMkfifo,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_fifo_" });
    try {
      await Deno.mkdir(`${dir}/kvm/4242-1/vcpu0`, { recursive: true });
      await Deno.writeTextFile(`${dir}/kvm/4242-1/pages_4k`, "1\n");
      await Deno.writeTextFile(`${dir}/kvm/4242-1/vcpu0/pid`, "4243\n");
      // Debugfs stat files are opened non-blocking; a procfs read (vcpu_time's) still waits.
      await Deno.mkdir(`${dir}/proc/4242/task/4243`, { recursive: true });
      const fifo = `${dir}/proc/4242/task/4243/schedstat`;
      const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
      assert.ok(made.success);
      await using exporter = await startExporter([
        LOOPBACK_ANY_PORT,
        `--collector.kvmdebug.dir=${dir}/kvm`,
        `--path.procfs=${dir}/proc`,
      ]);
      const controller = new AbortController();
      let answered = false;
      const scrape = fetch(`${exporter.baseUrl}/metrics`, { signal: controller.signal })
        .then((r) => r.text(), () => "")
        .finally(() => answered = true);
      try {
        await waitFor(() => blockedOnFifo(exporter.pid), {
          what: "the exporter to block opening the FIFO",
        });
        assert.equal(answered, false, "the scrape is blocked on the FIFO");
        const status = await exporter.stop("SIGTERM", 20_000);
        assert.equal(status.code, 0, exporter.stderrText());
        assert.match(exporter.stderrText(), /msg=Stopped/);
      } finally {
        controller.abort();
        await scrape;
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
