/**
 * The connection cap fits the open file limit: the pure rule, reading `<procfs>/self/limits`,
 * and main.ts under `prlimit --nofile=256` (below the default cap of 512) holding 1,000 idle
 * connections without reaching EMFILE, still answering a fresh connection.
 */

import assert from "node:assert/strict";
import { effectiveMaxConnections, FD_RESERVE, readFdLimit } from "../../src/http/connection_cap.ts";
import { keptFilesMax } from "../../src/system/kept_file.ts";
import { LOOPBACK_ANY_PORT, startExporter, waitFor } from "../support/exporter_process.ts";
import { onPath } from "../support/tls.ts";

Deno.test("effectiveMaxConnections() keeps the flag unless the fd limit, less the reserve and the kept files, is smaller", () => {
  const cases: [number, number | undefined, number][] = [
    [512, undefined, 512],
    [512, 1024, 512],
    [512, 800, 800 - FD_RESERVE - 200],
    [512, 2048, 512],
    [512, 256, 256 - FD_RESERVE - 64],
    [512, FD_RESERVE, 1],
    [512, 10, 1],
    [5, 256, 5],
  ];
  for (const [flag, limit, want] of cases) {
    assert.equal(effectiveMaxConnections(flag, limit), want, `${flag} ${limit}`);
  }
});

Deno.test("readFdLimit() reads the soft limit of this process, and undefined without one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_fdlimit_" });
  try {
    await Deno.mkdir(`${dir}/a/self`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/a/self/limits`,
      "Limit                     Soft Limit           Hard Limit           Units     \n" +
        "Max open files            256                  4096                 files     \n",
    );
    await Deno.mkdir(`${dir}/b/self`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/b/self/limits`,
      "Max open files            unlimited            unlimited            files     \n",
    );
    assert.equal(await readFdLimit(`${dir}/a`), 256);
    assert.equal(await readFdLimit(`${dir}/b`), undefined);
    assert.equal(await readFdLimit(`${dir}/missing`), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // The real thing: this test process's own limit.
  const real = await readFdLimit("/proc");
  assert.ok(real !== undefined && real > 0, String(real));
});

const CONNECTIONS = 1_000;

/** The status line of a GET on a new connection, waiting at most 20 s for it. */
async function rawGet(port: number, path: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), 20_000);
  try {
    await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`))
      .catch(() => {}); // Refused at the cap: the 503 may come and the socket close first.
    let text = "";
    const buffer = new Uint8Array(4096);
    while (!text.includes("\r\n")) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return text.split("\r\n")[0]!;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
  }
}
const hasPrlimit = onPath("prlimit");
if (!hasPrlimit) console.log("connection_cap_test: skipped: prlimit (util-linux) is not on PATH");

Deno.test({
  name: "main.ts under prlimit --nofile=256 lowers the cap and answers while 1,000 are held",
  ignore: !hasPrlimit,
  async fn() {
    await using exporter = await startExporter([
      "--collector.kvmdebug.dir=tests/fixtures/sample/kvm",
      "--collector.vmmap.path=tests/fixtures/sample/vm.yaml",
      "--path.sysfs=tests/fixtures/sample/sys",
      // The real procfs, for <procfs>/self/limits.
      "--path.procfs=/proc",
      LOOPBACK_ANY_PORT,
      "--web.read-header-timeout=60s",
    ], { prefix: ["prlimit", "--nofile=256"] });
    const cap = 256 - FD_RESERVE - keptFilesMax(256);
    assert.match(
      exporter.stderrText(),
      new RegExp(`Lowered the connection cap.* max_connections=${cap} flag=512 fd_limit=256`),
    );
    // Idle connections, held open: those past the cap are answered 503 and closed.
    const clients: Deno.Conn[] = [];
    let closing = false;
    let settled = 0;
    const connecting = Array.from(
      { length: CONNECTIONS },
      () =>
        Deno.connect({ hostname: "127.0.0.1", port: exporter.port }).then((conn) => {
          if (closing) conn.close();
          else clients.push(conn);
        }, () => {}).finally(() => settled++),
    );
    try {
      await waitFor(() => exporter.stderrText().includes("Too many connections"), {
        timeoutMs: 30_000,
        what: "the cap reached",
      });
      // Every connect settled (a SYN dropped past the backlog is retried after 1, 3, 7 s).
      await waitFor(() => settled === CONNECTIONS, {
        timeoutMs: 60_000,
        what: "the 1,000 connects settled",
        intervalMs: 200,
      });
      // A fresh connection is answered (503 at the cap), not left waiting for a descriptor.
      // Raw, since the 503 at the cap comes before the request is read, which fetch refuses.
      const status = await rawGet(exporter.port, "/-/healthy");
      console.log(`connection_cap_test: a fresh /-/healthy got ${status}`);
      assert.match(status, /^HTTP\/1\.1 (200|503) /);
    } finally {
      closing = true;
      for (const conn of clients) conn.close();
    }
    await Promise.all(connecting);
    const log = exporter.stderrText();
    assert.doesNotMatch(log, /Cannot accept connections|Too many open files/, "no EMFILE");
    assert.doesNotMatch(log, /Uncaught|panicked/);
    const status = await exporter.stop();
    assert.equal(status.code, 0, log);
  },
});
