/**
 * main.ts as a process over TCP: a scrape checked by promtool, a run with only the permissions of
 * `deno task demo`, and graceful shutdown with a scrape in flight.
 */

import assert from "node:assert/strict";
import {
  fetchText,
  freeLoopbackPort,
  LOOPBACK_ANY_PORT,
  REPO_ROOT,
  SAMPLE_ARGS,
  startExporter,
  waitFor,
} from "../support/exporter_process.ts";
import { blockedOnFifo, releaseFifo, sampleWithFifo } from "../support/fifo.ts";
import { findPromtool, promtoolCheck } from "../support/promtool.ts";

/** Scrapes the real process on the sample tree over TCP. */
async function scrapeOverTcp(): Promise<string> {
  await using exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
  const response = await fetchText(`${exporter.baseUrl}/metrics`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  return response.body;
}

Deno.test("main.ts serves /metrics over TCP", async () => {
  const body = await scrapeOverTcp();
  assert.ok(body.endsWith("\n"));
  assert.match(body, /^kvm_stat_exits_count\{domain="global"\} \d+$/m);
  assert.match(body, /^process_cpu_seconds_total /m, "process metrics in the real process");
});

/** Sends one request with `Connection: close` and reads the answer to its end. */
async function rawRequest(port: number, method: string, path = "/metrics"): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(head));
    return await new Response(conn.readable).text();
  } catch (error) {
    conn.close();
    throw error;
  }
}

Deno.test("main.ts answers HEAD /metrics with a GET's Content-Length and no body", async () => {
  await using exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
  const get = await rawRequest(exporter.port, "GET");
  const head = await rawRequest(exporter.port, "HEAD");
  const length = (text: string) => Number(/^content-length: (\d+)\r$/mi.exec(text)?.[1]);
  const getBody = get.slice(get.indexOf("\r\n\r\n") + 4);
  assert.equal(length(get), new TextEncoder().encode(getBody).length);
  assert.match(head, /^HTTP\/1\.1 200 /);
  assert.ok(head.endsWith("\r\n\r\n"), "no body after the head");
  // Two scrapes: their durations may differ by a digit or so, nothing more.
  assert.ok(Math.abs(length(head) - length(get)) < 50, `HEAD ${length(head)}, GET ${length(get)}`);
});

Deno.test("main.ts answers HEAD on every path with the GET's Content-Length and no body", async () => {
  await using exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
  const length = (text: string) => /^content-length: (\d+)\r$/mi.exec(text)?.[1];
  for (const path of ["/", "/-/healthy", "/-/ready", "/nope"]) {
    const get = await rawRequest(exporter.port, "GET", path);
    const head = await rawRequest(exporter.port, "HEAD", path);
    assert.equal(head.split(" ")[1], get.split(" ")[1], path);
    assert.ok(head.endsWith("\r\n\r\n"), `${path}: no body after the head`);
    assert.equal(length(head), length(get), path);
  }
});

const promtool = findPromtool();
if (promtool === undefined) {
  console.log("process_test: promtool check skipped: promtool is not on PATH");
}

Deno.test({
  name: "main.ts serves /metrics that promtool parses with known lint only",
  ignore: promtool === undefined,
  fn: async () => {
    const body = await scrapeOverTcp();
    const { code, problems } = await promtoolCheck(promtool!, body);
    // 0: clean; 3: lint only, and only the known lint of the compat names. A parse error is 1.
    assert.ok(code === 0 || code === 3, `promtool exited ${code}`);
    assert.deepEqual(problems, []);
  },
});

/** The permissions and arguments of a `deno task` command line in deno.json. */
async function taskCommand(task: string): Promise<{ permissions: string[]; args: string[] }> {
  const config = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`));
  const entry = config.tasks[task];
  const command: string = typeof entry === "string" ? entry : entry.command;
  const words = command.split(/\s+/);
  const main = words.indexOf("main.ts");
  assert.ok(words[0] === "deno" && words[1] === "run" && main > 1, command);
  return { permissions: words.slice(2, main), args: words.slice(main + 1) };
}

/** Runs with the permissions of `deno task demo`, maybe changed, and where metrics must be. */
const LEAST_PRIVILEGE: {
  name: string;
  env?: Record<string, string>;
  withoutEnvPermission?: boolean;
  path: string;
}[] = [
  { name: "only the permissions of deno task demo", path: "/metrics" },
  {
    name: "the permissions of deno task demo and KVM_EXPORTER_WEB_TELEMETRY_PATH",
    env: { KVM_EXPORTER_WEB_TELEMETRY_PATH: "/kvm" },
    path: "/kvm",
  },
  {
    name: "no --allow-env, ignoring KVM_EXPORTER_WEB_TELEMETRY_PATH without a prompt",
    env: { KVM_EXPORTER_WEB_TELEMETRY_PATH: "/kvm" },
    withoutEnvPermission: true,
    path: "/metrics",
  },
];

for (const { name, env, withoutEnvPermission, path } of LEAST_PRIVILEGE) {
  Deno.test(`main.ts serves metrics with ${name}`, async () => {
    const demo = await taskCommand("demo");
    assert.ok(!demo.permissions.some((p) => p === "-A" || p === "--allow-all"), "least privilege");
    assert.equal(demo.permissions.filter((p) => p.startsWith("--allow-net=")).length, 1);
    assert.equal(demo.permissions.filter((p) => p.startsWith("--allow-env")).length, 1);

    // The task allows :9900 only; allow a free port the same way (a race with another process
    // taking it is retried).
    for (let attempt = 1;; attempt++) {
      const port = freeLoopbackPort();
      const permissions = demo.permissions
        .filter((p) => !(withoutEnvPermission && p.startsWith("--allow-env")))
        .map((p) => p.startsWith("--allow-net=") ? `--allow-net=127.0.0.1:${port}` : p);
      let exporter;
      try {
        exporter = await startExporter(
          [...demo.args, `--web.listen-address=127.0.0.1:${port}`],
          { permissions, ...(env === undefined ? {} : { env }) },
        );
      } catch (error) {
        if (attempt < 3 && /address already in use/.test((error as Error).message)) continue;
        throw error;
      }
      await using running = exporter;
      assert.equal(running.port, port);
      const metrics = await fetchText(`${running.baseUrl}${path}`);
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /^kvm_stat_exits_count\{domain="global"\} \d+$/m);
      assert.match(metrics.body, /^kvm_scrape_collector_success\{collector="kvm_stat"\} 1$/m);
      assert.doesNotMatch(metrics.body, /^kvm_exporter_stat_read_errors\{.*\} [1-9]/m);
      assert.equal((await fetchText(`${running.baseUrl}/`)).status, 200);
      // Nothing was refused: no permission warning or error in the log.
      assert.doesNotMatch(running.stderrText(), / level=(warn|error) /);
      return;
    }
  });
}

async function connectionRefused(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return false;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return true;
    throw error;
  }
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`main.ts finishes the scrape in flight on ${signal}, then exits 0`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_shutdown_" });
    try {
      // A vCPU thread's schedstat becomes a FIFO: a scrape blocks on it until this test writes.
      const { fifo, args } = await sampleWithFifo(dir);
      await using exporter = await startExporter([
        ...args,
        "--web.scrape-timeout=60s", // The FIFO is released long before.
        LOOPBACK_ANY_PORT,
      ]);
      const inFlight = fetchText(`${exporter.baseUrl}/metrics`);
      inFlight.catch(() => {}); // Awaited below; this only keeps an early failure readable.
      try {
        await waitFor(() => blockedOnFifo(exporter.pid), {
          what: "the exporter to block opening the FIFO",
        });
        Deno.kill(exporter.pid, signal);
        await waitFor(() => exporter.stderrText().includes('msg="Shutting down'), {
          what: "the shutdown log line",
        });
        await waitFor(() => connectionRefused(exporter.port), {
          what: "new connections to be refused while the scrape is in flight",
        });
      } finally {
        // A writer unblocks the open; the FIFO is then skipped, not being a regular file.
        await releaseFifo(fifo);
      }

      const response = await inFlight;
      assert.equal(response.status, 200);
      assert.ok(response.body.endsWith("\n"), "complete body");
      assert.doesNotMatch(
        response.body,
        /^kvm_vcpu_cpu_seconds_total\{domain="web-01",vcpu="0"\}/m,
      );
      assert.match(response.body, /^kvm_scrape_collector_success\{collector="vcpu_time"\} 1$/m);
      assert.match(response.body, /^kvm_exporter_build_info\{/m, "the last families too");

      const status = await exporter.waitForExit();
      assert.equal(status.code, 0, exporter.stderrText());
      const messages = exporter.stderrText().trimEnd().split("\n").map((line) =>
        /msg=("[^"]*"|\S+)/.exec(line)?.[1]
      );
      assert.equal(messages.at(-1), "Stopped");
      assert.ok(messages.includes('"Shutting down; waiting for scrapes in flight"'));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Connections a scraper may leave open at shutdown; none may hold the exit up. */
const OPEN_CONNECTIONS: { name: string; request: string; answered: boolean }[] = [
  {
    name: "an idle keep-alive connection",
    request: "GET /-/healthy HTTP/1.1\r\nHost: exporter\r\n\r\n",
    answered: true,
  },
  { name: "a half-sent request", request: "GET /metrics HTTP/1.1\r\n", answered: false },
];

for (const { name, request, answered } of OPEN_CONNECTIONS) {
  Deno.test(`main.ts exits 0 on SIGTERM with ${name} open`, async () => {
    await using exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: exporter.port });
    try {
      await conn.write(new TextEncoder().encode(request));
      const buffer = new Uint8Array(64 * 1024);
      if (answered) {
        let head = "";
        await waitFor(async () => {
          const n = await conn.read(buffer);
          if (n === null) throw new Error("closed before answering");
          head += new TextDecoder().decode(buffer.subarray(0, n));
          return head.includes("\r\n\r\nOK\n");
        }, { what: "the answer on the kept-alive connection" });
        assert.match(head, /^HTTP\/1\.1 200 /);
        assert.doesNotMatch(head, /^connection: close/im, "kept alive");
      }
      const status = await exporter.stop("SIGTERM", 10_000);
      assert.equal(status.code, 0, exporter.stderrText());
      assert.match(exporter.stderrText(), / msg=Stopped\n$/);
      // The exporter closed the connection.
      const closed = await conn.read(buffer).then((n) => n === null, (error) => {
        if (error instanceof Deno.errors.ConnectionReset) return true;
        throw error;
      });
      assert.ok(closed, "connection closed by the exporter");
    } finally {
      conn.close();
    }
  });
}

/** Signals a supervisor may send as soon as the exporter says it listens. */
const EARLY_SIGNALS: { signal: Deno.Signal; stops: boolean }[] = [
  { signal: "SIGTERM", stops: true },
  { signal: "SIGINT", stops: true },
  { signal: "SIGHUP", stops: false },
];

for (const { signal, stops } of EARLY_SIGNALS) {
  Deno.test(`main.ts handles ${signal} sent right after its Listening line`, async () => {
    // The window being probed is short: several processes at once make a miss unlikely.
    const runs = 6;
    const exporters = await Promise.all(
      Array.from({ length: runs }, () => startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT])),
    );
    try {
      for (const exporter of exporters) Deno.kill(exporter.pid, signal);
      for (const exporter of exporters) {
        if (stops) {
          const status = await exporter.waitForExit();
          assert.equal(status.code, 0, `exit code ${status.code}:\n${exporter.stderrText()}`);
          assert.match(exporter.stderrText(), / msg=Stopped\n$/);
        } else {
          await waitFor(
            () => / msg="Loaded vm\.yaml" .*reason=SIGHUP/.test(exporter.stderrText()),
            {
              what: "the reload on SIGHUP",
            },
          );
          assert.equal((await fetchText(`${exporter.baseUrl}/-/healthy`)).status, 200);
        }
      }
    } finally {
      for (const exporter of exporters) await exporter[Symbol.asyncDispose]();
    }
  });
}
