/**
 * A connection flood past the process's file limit: main.ts under `prlimit --nofile=256` with
 * 1,000 idle connections. Accept fails with EMFILE; the exporter logs it once, keeps running,
 * and answers again once the connections close.
 */

import assert from "node:assert/strict";
import {
  LOOPBACK_ANY_PORT,
  SAMPLE_ARGS,
  startExporter,
  waitFor,
} from "../support/exporter_process.ts";
import { onPath } from "../support/tls.ts";

const CONNECTIONS = 1_000;
const hasPrlimit = onPath("prlimit");
if (!hasPrlimit) console.log("emfile_test: skipped: prlimit (util-linux) is not on PATH");

Deno.test({
  name: "main.ts under prlimit --nofile=256 survives 1,000 idle connections and answers after",
  ignore: !hasPrlimit,
  async fn() {
    await using exporter = await startExporter(
      [...SAMPLE_ARGS, LOOPBACK_ANY_PORT, "--web.read-header-timeout=60s"],
      { prefix: ["prlimit", "--nofile=256"] },
    );
    // In parallel: past the accept backlog, the kernel drops SYNs and a connect waits for its
    // retransmission; those still pending when the test moves on are closed as they complete.
    const clients: Deno.Conn[] = [];
    let closing = false;
    const connecting = Array.from(
      { length: CONNECTIONS },
      () =>
        Deno.connect({ hostname: "127.0.0.1", port: exporter.port }).then((conn) => {
          if (closing) conn.close();
          else clients.push(conn);
        }, () => {}),
    );
    try {
      await waitFor(() => exporter.stderrText().includes("Cannot accept connections"), {
        timeoutMs: 30_000,
        what: "the EMFILE log line",
      });
      assert.match(exporter.stderrText(), /Too many open files/);
      await waitFor(() => clients.length >= 300, { timeoutMs: 30_000, what: "300 connections" });
    } finally {
      closing = true;
      for (const conn of clients) conn.close();
    }
    // Still the same process, serving again from a new connection.
    await waitFor(async () => {
      const response = await fetch(`${exporter.baseUrl}/-/healthy`, {
        signal: AbortSignal.timeout(5_000),
      });
      await response.body?.cancel();
      return response.status === 200;
    }, { timeoutMs: 60_000, what: "/-/healthy answering 200 after the flood" });
    await waitFor(() => exporter.stderrText().includes("Accepting connections again"), {
      what: "the recovery log line",
    });
    await Promise.all(connecting);
    const log = exporter.stderrText();
    assert.equal(log.split("Cannot accept connections").length - 1, 1, "logged once");
    assert.doesNotMatch(log, /Uncaught|panicked/);
    const status = await exporter.stop();
    assert.equal(status.code, 0, log);
  },
});
