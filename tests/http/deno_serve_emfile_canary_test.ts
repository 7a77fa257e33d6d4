/**
 * Canary: the exporter has its own HTTP server (`src/http/http_server.ts`) because `Deno.serve`
 * stops accepting for good once `accept` fails with EMFILE. This test pins that behaviour of the
 * Deno it runs on: a bare `Deno.serve` under `prlimit --nofile=64` is flooded past its file limit,
 * the flood released, and a fresh connection tried. The day it is answered, this test fails and
 * says so: then the hand-written server can be retired (docs/web.md, "The server and its bounds").
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { waitFor } from "../support/exporter_process.ts";
import { onPath } from "../support/tls.ts";

const NOFILE = 64;
const CONNECTIONS = 256;
/** How long a fresh connection gets to be answered once the flood is gone. */
const RECOVERY_MS = 10_000;
const SCRIPT = fileURLToPath(new URL("../support/bare_deno_serve.ts", import.meta.url));
const RETIRE =
  "Deno.serve now survives EMFILE: the hand-written server can be retired (docs/web.md)";

const hasPrlimit = onPath("prlimit");
if (!hasPrlimit) console.log("deno_serve_emfile_canary_test: skipped: prlimit is not on PATH");

/** Whether a fresh connection gets `HTTP/1.1 200` within two seconds. */
async function answers(port: number): Promise<boolean> {
  let conn: Deno.Conn | undefined;
  const timer = setTimeout(() => conn?.close(), 2_000);
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(
      new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    const buffer = new Uint8Array(64);
    const n = await conn.read(buffer);
    return n !== null && new TextDecoder().decode(buffer.subarray(0, n)).startsWith("HTTP/1.1 200");
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // Closed by the timer.
    }
  }
}

/** Open file descriptors of a process. */
async function fdCount(pid: number): Promise<number> {
  let count = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) count++;
  return count;
}

Deno.test({
  name:
    `Deno.serve under prlimit --nofile=${NOFILE} stops accepting for good after EMFILE (canary)`,
  ignore: !hasPrlimit,
  async fn() {
    const child = new Deno.Command("prlimit", {
      args: [
        `--nofile=${NOFILE}`,
        Deno.execPath(),
        "run",
        "--no-config",
        "--allow-net=127.0.0.1",
        SCRIPT,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let stdout = "";
    const reading = child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (chunk) => void (stdout += chunk) }),
    );
    let exited = false;
    const status = child.status.finally(() => exited = true);
    const clients: Deno.Conn[] = [];
    let releasing = false;
    try {
      await waitFor(() => /listening \d+/.test(stdout) || exited, { what: "Deno.serve listening" });
      const port = Number(/listening (\d+)/.exec(stdout)?.[1]);
      assert.ok(await answers(port), `answers before the flood: ${stdout}`);

      const connecting = Array.from(
        { length: CONNECTIONS },
        () =>
          Deno.connect({ hostname: "127.0.0.1", port }).then((conn) => {
            if (releasing) conn.close();
            else clients.push(conn);
          }, () => {}),
      );
      // The flood reached the limit: the server stopped, or holds (almost) every descriptor.
      await waitFor(
        async () =>
          stdout.includes("finished:") || exited || await fdCount(child.pid) >= NOFILE - 2,
        { timeoutMs: 30_000, what: `the server at its ${NOFILE} file descriptors` },
      );
      releasing = true;
      for (const conn of clients.splice(0)) conn.close();
      await Promise.all(connecting);

      const deadline = Date.now() + RECOVERY_MS;
      let survived = false;
      while (!survived && Date.now() < deadline && !stdout.includes("finished:") && !exited) {
        survived = await answers(port);
      }
      assert.ok(!survived, RETIRE);
      // What it does today, so that a Deno that fails otherwise is seen too.
      assert.match(
        stdout,
        /finished: .*Too many open files/,
        `Deno.serve stops accepting, but no longer ends server.finished with EMFILE: ${stdout}`,
      );
      assert.equal(await answers(port), false, RETIRE);
    } finally {
      releasing = true;
      for (const conn of clients) conn.close();
      if (!exited) {
        try {
          Deno.kill(child.pid, "SIGKILL");
        } catch {
          // Exited meanwhile.
        }
      }
      await status;
      await reading;
    }
  },
});
