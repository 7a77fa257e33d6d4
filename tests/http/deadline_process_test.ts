/**
 * main.ts as a process with a procfs file that blocks for good (a FIFO nobody
 * writes): scrapes answer at their deadline, free their --web.max-requests
 * slot, and SIGTERM still exits.
 */

import assert from "node:assert/strict";
import { fetchText, LOOPBACK_ANY_PORT, startExporter } from "../support/exporter_process.ts";
import { sampleWithFifo } from "../support/fifo.ts";

const MAX_REQUESTS = 2;

Deno.test("main.ts answers /metrics after --web.max-requests scrapes blocked on a FIFO, then exits on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_deadline_" });
  try {
    const { args } = await sampleWithFifo(dir);
    await using exporter = await startExporter([
      ...args,
      `--web.max-requests=${MAX_REQUESTS}`,
      "--web.scrape-timeout=1s",
      LOOPBACK_ANY_PORT,
    ]);
    const scrape = () =>
      fetchText(`${exporter.baseUrl}/metrics`, { signal: AbortSignal.timeout(30_000) });
    // Before: these never answered, and every later scrape got 503.
    const blocked = await Promise.all(Array.from({ length: MAX_REQUESTS }, scrape));
    for (const { status, body } of blocked) {
      assert.equal(status, 200);
      assert.match(body, /^kvm_scrape_collector_success\{collector="vcpu_time"\} 0$/m);
      assert.match(body, /^kvm_scrape_collector_success\{collector="kvm_stat"\} 1$/m);
      assert.match(body, /^kvm_stat_exits_count\{domain="target_vm"\} \d+$/m, "the rest");
    }
    const after = await scrape();
    assert.equal(after.status, 200);
    assert.match(after.body, /^kvm_exporter_blocked_reads 1$/m);
    // Not read again while blocked: the scrape after the deadline does not wait for it.
    assert.match(after.body, /^kvm_scrape_collector_success\{collector="vcpu_time"\} 1$/m);
    assert.match(after.body, /^kvm_exporter_scrape_timeouts_total [12]$/m);
    assert.equal((await fetchText(`${exporter.baseUrl}/-/healthy`)).status, 200);

    const status = await exporter.stop("SIGTERM", 15_000);
    assert.equal(status.code, 0, exporter.stderrText());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
