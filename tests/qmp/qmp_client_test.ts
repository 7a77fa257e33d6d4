import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert";
import {
  parseQmpJson,
  QmpError,
  type QmpSession,
  withQmpSession,
} from "../../src/qmp/qmp_client.ts";
import type { ClientErrorReason } from "../../src/system/client_error.ts";

const GREETING = `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, ` +
  `"package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}\r\n`;
const EVENT = `{"timestamp": {"seconds": 1700000000, "microseconds": 1}, "event": "RESUME"}\r\n`;

/** The far end of a fake QMP monitor: raw writes and line reads. */
class Peer {
  #conn: Deno.UnixConn;
  #buffer = "";
  #decoder = new TextDecoder();
  #encoder = new TextEncoder();

  constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
  }

  async send(text: string): Promise<void> {
    let bytes = this.#encoder.encode(text);
    while (bytes.length > 0) bytes = bytes.subarray(await this.#conn.write(bytes));
  }

  /** Reads one line from the client; `null` when it closed the connection. */
  async readLine(): Promise<string | null> {
    while (!this.#buffer.includes("\n")) {
      const chunk = new Uint8Array(4096);
      let n: number | null;
      try {
        n = await this.#conn.read(chunk);
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionReset) return null;
        throw error;
      }
      if (n === null) return null;
      this.#buffer += this.#decoder.decode(chunk.subarray(0, n));
    }
    const end = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, end);
    this.#buffer = this.#buffer.slice(end + 1);
    return line;
  }

  /** Reads a command, checks its name and returns its id. */
  async expect(command: string, args?: unknown): Promise<string> {
    const line = await this.readLine();
    ok(line !== null, `client closed before sending "${command}"`);
    const message = JSON.parse(line) as { execute: string; id: string; arguments?: unknown };
    strictEqual(message.execute, command);
    deepStrictEqual(message.arguments, args);
    return message.id;
  }

  /** Waits until the client closes the connection. */
  async waitForClose(): Promise<void> {
    while (await this.readLine() !== null) {
      // Drain.
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

type Handler = (peer: Peer) => Promise<void>;

/** Runs `body` with the path of a fake QMP socket whose single client is served by `handler`. */
async function withFakeQmp(handler: Handler, body: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "qmp_client_test_" });
  const path = `${dir}/qmp.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  let accepted = false;
  const served = (async (): Promise<void> => {
    const conn = await listener.accept();
    accepted = true;
    const peer = new Peer(conn);
    try {
      await handler(peer);
    } finally {
      peer.close();
    }
  })();
  let serverError: unknown;
  try {
    await body(path);
  } finally {
    listener.close();
    serverError = await served.then(() => undefined, (error: unknown) => error);
    await Deno.remove(dir, { recursive: true });
  }
  // A failed accept only means the client never connected; a failed handler fails the test.
  if (accepted && serverError !== undefined) throw serverError;
}

function hasReason(reason: ClientErrorReason, message: RegExp): (error: unknown) => boolean {
  return (error: unknown): boolean => {
    ok(error instanceof QmpError, `expected a QmpError, got ${error}`);
    strictEqual(error.reason, reason, error.message);
    ok(message.test(error.message), `message ${JSON.stringify(error.message)} !~ ${message}`);
    ok(!error.message.includes("\n"), "message must be one line");
    return true;
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("parseQmpJson() keeps integers exact", async (t) => {
  const cases: { name: string; text: string; want: unknown }[] = [
    {
      name: "u64 max",
      text: `{"value":18446744073709551615}`,
      want: { value: 18446744073709551615n },
    },
    { name: "2^53 + 1", text: `[9007199254740993]`, want: [9007199254740993n] },
    {
      name: "safe integers stay numbers",
      text: `[0, 42, -7, 9007199254740991]`,
      want: [0, 42, -7, 9007199254740991],
    },
    { name: "negative beyond 2^53", text: `[-9007199254740993]`, want: [-9007199254740993n] },
    { name: "fractions stay numbers", text: `[1.5, -0.25]`, want: [1.5, -0.25] },
    { name: "exponent notation stays a number", text: `[1e300]`, want: [1e300] },
    {
      name: "nested in a reply",
      text:
        `{"return": [{"stats": [{"name": "h", "value": [1, 18446744073709551615]}]}], "id": "x"}`,
      want: { return: [{ stats: [{ name: "h", value: [1, 18446744073709551615n] }] }], id: "x" },
    },
    {
      name: "strings and literals untouched",
      text: `["18446744073709551615", true, null]`,
      want: ["18446744073709551615", true, null],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      deepStrictEqual(parseQmpJson(c.text), c.want);
    });
  }
});

Deno.test("parseQmpJson() throws SyntaxError on invalid JSON", () => {
  throws(() => parseQmpJson("{nope"), SyntaxError);
});

Deno.test("withQmpSession() runs commands over split, batched and interleaved messages", async () => {
  await withFakeQmp(async (peer) => {
    // Greeting split across writes.
    await peer.send(GREETING.slice(0, 25));
    await delay(20);
    await peer.send(GREETING.slice(25, 60));
    await delay(20);
    await peer.send(GREETING.slice(60));
    // Reply and an event in one write.
    const capabilities = await peer.expect("qmp_capabilities");
    await peer.send(`{"return": {}, "id": "${capabilities}"}\r\n${EVENT}`);
    // An event between command and reply; the reply split inside a u64.
    const stats = await peer.expect("query-stats", { target: "vm" });
    await peer.send(EVENT);
    const reply = `{"return": [{"provider": "kvm", "stats": [{"name": "exits", ` +
      `"value": 18446744073709551615}]}], "id": "${stats}"}\r\n`;
    await peer.send(reply.slice(0, reply.indexOf("1844") + 6));
    await delay(20);
    await peer.send(reply.slice(reply.indexOf("1844") + 6));
    // Concurrent calls are sent one at a time; an event and a reply in one write.
    const cpus = await peer.expect("query-cpus-fast");
    await peer.send(`${EVENT}{"return": [], "id": "${cpus}"}\n`);
    const version = await peer.expect("query-version");
    await peer.send(`{"return": {"qemu": {"major": 7}}, "id": "${version}"}\n`);
    await peer.waitForClose();
  }, async (path) => {
    const result = await withQmpSession({ path, timeoutMs: 5000 }, async (session) => {
      deepStrictEqual(session.version, { major: 7, minor: 2, micro: 22 });
      const stats = await session.execute("query-stats", { target: "vm" });
      const [cpus, version] = await Promise.all([
        session.execute("query-cpus-fast"),
        session.execute("query-version"),
      ]);
      return { stats, cpus, version };
    });
    deepStrictEqual(result, {
      stats: [{ provider: "kvm", stats: [{ name: "exits", value: 18446744073709551615n }] }],
      cpus: [],
      version: { qemu: { major: 7 } },
    });
  });
});

Deno.test("withQmpSession() reports a QMP error reply with its class and stays usable", async () => {
  await withFakeQmp(async (peer) => {
    await peer.send(GREETING);
    await peer.send(`{"return": {}, "id": "${await peer.expect("qmp_capabilities")}"}\r\n`);
    const id = await peer.expect("query-stats", { target: "vcpu" });
    await peer.send(
      `{"id": "${id}", "error": {"class": "CommandNotFound", ` +
        `"desc": "The command query-stats has not been found"}}\r\n`,
    );
    await peer.send(`{"return": [], "id": "${await peer.expect("query-cpus-fast")}"}\r\n`);
    await peer.waitForClose();
  }, async (path) => {
    await withQmpSession({ path, timeoutMs: 5000 }, async (session) => {
      await rejects(session.execute("query-stats", { target: "vcpu" }), (error: unknown) => {
        hasReason("protocol", /CommandNotFound: The command query-stats has not been found/)(
          error,
        );
        strictEqual((error as QmpError).code, "CommandNotFound");
        return true;
      });
      deepStrictEqual(await session.execute("query-cpus-fast"), []);
    });
  });
});

Deno.test("withQmpSession() closes the connection when the callback throws", async () => {
  let sawClose = false;
  await withFakeQmp(async (peer) => {
    await peer.send(GREETING);
    await peer.send(`{"return": {}, "id": "${await peer.expect("qmp_capabilities")}"}\r\n`);
    await peer.waitForClose();
    sawClose = true;
  }, async (path) => {
    const boom = new Error("boom");
    await rejects(withQmpSession({ path, timeoutMs: 5000 }, () => Promise.reject(boom)), boom);
  });
  ok(sawClose);
});

Deno.test("withQmpSession() rejects a closed session", async () => {
  let kept: QmpSession | undefined;
  await withFakeQmp(async (peer) => {
    await peer.send(GREETING);
    await peer.send(`{"return": {}, "id": "${await peer.expect("qmp_capabilities")}"}\r\n`);
    await peer.waitForClose();
  }, async (path) => {
    await withQmpSession({ path, timeoutMs: 5000 }, (session) => {
      kept = session;
      return Promise.resolve();
    });
  });
  await rejects(kept!.execute("query-status"), hasReason("other", /is closed/));
});

Deno.test("withQmpSession() fails cleanly", async (t) => {
  const cases: {
    name: string;
    handler: Handler;
    timeoutMs?: number;
    maxLineBytes?: number;
    fn?: (session: QmpSession) => Promise<unknown>;
    reason: ClientErrorReason;
    message: RegExp;
  }[] = [
    {
      name: "busy monitor (connection accepted, no greeting) times out",
      handler: (peer) => peer.waitForClose(),
      timeoutMs: 300,
      reason: "timeout",
      message: /timed out after 300 ms while waiting for the greeting \(another client/,
    },
    {
      name: "no reply to a command times out",
      handler: async (peer) => {
        await peer.send(GREETING);
        await peer.send(`{"return": {}, "id": "${await peer.expect("qmp_capabilities")}"}\r\n`);
        await peer.waitForClose();
      },
      timeoutMs: 300,
      fn: (session) => session.execute("query-stats", { target: "vm" }),
      reason: "timeout",
      message: /timed out after 300 ms while waiting for the reply to "query-stats"/,
    },
    {
      name: "slow callback times out",
      handler: async (peer) => {
        await peer.send(GREETING);
        await peer.send(`{"return": {}, "id": "${await peer.expect("qmp_capabilities")}"}\r\n`);
        await peer.waitForClose();
      },
      timeoutMs: 300,
      fn: () => new Promise<never>(() => {}),
      reason: "timeout",
      message: /timed out after 300 ms while running the session/,
    },
    {
      name: "garbage instead of a greeting",
      handler: async (peer) => {
        await peer.send("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
        await peer.waitForClose();
      },
      reason: "protocol",
      message: /Invalid JSON from QMP peer on ".*": .*: "SSH-2\.0-OpenSSH_9\.2p1 Debian-2"/,
    },
    {
      name: "non-QEMU JSON greeting",
      handler: async (peer) => {
        await peer.send(`{"jsonrpc": "2.0", "method": "hello"}\n`);
        await peer.waitForClose();
      },
      reason: "protocol",
      message: /is not a QMP server: its first message has no "QMP" member/,
    },
    {
      name: "greeting without a version",
      handler: async (peer) => {
        await peer.send(`{"QMP": {"capabilities": []}}\n`);
        await peer.waitForClose();
      },
      reason: "protocol",
      message: /QMP greeting on ".*" has no valid "version\.qemu"/,
    },
    {
      name: "a JSON array instead of an object",
      handler: async (peer) => {
        await peer.send(`[1, 2]\n`);
        await peer.waitForClose();
      },
      reason: "protocol",
      message: /sent a non-object message: "\[1, 2\]"/,
    },
    // The peer closing the connection is `closed`, as for libvirt (system/client_error.ts).
    {
      name: "half a JSON line then close",
      handler: (peer) => peer.send(GREETING.slice(0, 40)),
      reason: "closed",
      message: /closed the connection in the middle of a message/,
    },
    {
      name: "close before the greeting",
      handler: () => Promise.resolve(),
      reason: "closed",
      message: /closed the connection before the greeting/,
    },
    {
      name: "close before a reply",
      handler: async (peer) => {
        await peer.send(GREETING);
        await peer.expect("qmp_capabilities");
      },
      reason: "closed",
      message: /closed the connection before replying to "qmp_capabilities"/,
    },
    {
      // Closing with the client's command unread resets the connection (ECONNRESET).
      name: "reset before a reply",
      handler: async (peer) => {
        await peer.send(GREETING);
        await delay(200);
      },
      reason: "closed",
      message: /closed the connection: /,
    },
    {
      name: "a huge line without newline stops buffering",
      handler: async (peer) => {
        await peer.send(`{"QMP": "${"x".repeat(8192)}`);
        await peer.waitForClose();
      },
      maxLineBytes: 1024,
      reason: "protocol",
      message: /sent a line longer than 1024 bytes/,
    },
    {
      name: "a huge complete line",
      handler: async (peer) => {
        await peer.send(`{"QMP": "${"x".repeat(2048)}"}\n`);
        await peer.waitForClose();
      },
      maxLineBytes: 1024,
      reason: "protocol",
      message: /sent a line longer than 1024 bytes/,
    },
    {
      name: "a reply with another id",
      handler: async (peer) => {
        await peer.send(GREETING);
        await peer.expect("qmp_capabilities");
        await peer.send(`{"return": {}, "id": "someone-else"}\n`);
        await peer.waitForClose();
      },
      reason: "protocol",
      message: /has id "someone-else", expected "kvm_exporter-1"/,
    },
    {
      name: "a reply with neither return nor error",
      handler: async (peer) => {
        await peer.send(GREETING);
        await peer.expect("qmp_capabilities");
        await peer.send(`{"retrun": {}}\n`);
        await peer.waitForClose();
      },
      reason: "protocol",
      message: /has neither "return" nor "error"/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const timeoutMs = c.timeoutMs ?? 5000;
      await withFakeQmp(c.handler, async (path) => {
        const started = performance.now();
        await rejects(
          withQmpSession(
            c.maxLineBytes === undefined
              ? { path, timeoutMs }
              : { path, timeoutMs, maxLineBytes: c.maxLineBytes },
            c.fn ?? (() => Promise.resolve()),
          ),
          hasReason(c.reason, c.message),
        );
        const elapsed = performance.now() - started;
        // Only what a busy machine cannot turn around: a timeout is not early, and a failure
        // that has a cause does not wait for the timeout.
        if (c.reason === "timeout") ok(elapsed >= timeoutMs - 5, `gave up early: ${elapsed} ms`);
        else ok(elapsed < timeoutMs, `took ${elapsed} ms: it waited for the timeout`);
      });
    });
  }
});

Deno.test("withQmpSession() refuses paths that are not listening sockets", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "qmp_client_test_" });
  try {
    await Deno.writeTextFile(`${dir}/regular`, "not a socket\n");
    // Deno removes its socket file on close: keep a second link to get a socket nobody serves.
    const stale = Deno.listen({ transport: "unix", path: `${dir}/live.sock` });
    await Deno.link(`${dir}/live.sock`, `${dir}/stale.sock`);
    stale.close();
    const cases: { name: string; path: string; message: RegExp }[] = [
      { name: "missing path", path: `${dir}/missing.sock`, message: /does not exist/ },
      { name: "missing directory", path: `${dir}/nope/qmp.sock`, message: /does not exist/ },
      { name: "regular file", path: `${dir}/regular`, message: /not a socket, or nobody listens/ },
      { name: "directory", path: dir, message: /not a socket, or nobody listens/ },
      {
        name: "a path below a regular file",
        path: `${dir}/regular/qmp.sock`,
        message: /does not exist/,
      },
      { name: "socket nobody listens on", path: `${dir}/stale.sock`, message: /nobody listens/ },
    ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        await rejects(
          withQmpSession({ path: c.path, timeoutMs: 2000 }, () => Promise.resolve()),
          hasReason("refused", c.message),
        );
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("withQmpSession() validates its options", async (t) => {
  const cases: { name: string; timeoutMs: number; maxLineBytes?: number }[] = [
    { name: "zero timeout", timeoutMs: 0 },
    { name: "NaN timeout", timeoutMs: NaN },
    { name: "fractional line limit", timeoutMs: 100, maxLineBytes: 1.5 },
    { name: "zero line limit", timeoutMs: 100, maxLineBytes: 0 },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const options = c.maxLineBytes === undefined
        ? { path: "/nonexistent", timeoutMs: c.timeoutMs }
        : { path: "/nonexistent", timeoutMs: c.timeoutMs, maxLineBytes: c.maxLineBytes };
      await rejects(withQmpSession(options, () => Promise.resolve()), RangeError);
    });
  }
});

Deno.test("withQmpSession() names the Deno flags a unix socket needs", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "qmp_client_test_" });
  try {
    const script = `${dir}/probe.ts`;
    const module = new URL("../../src/qmp/qmp_client.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { withQmpSession } from ${JSON.stringify(module)};
try {
  const v = await withQmpSession({ path: Deno.args[0]!, timeoutMs: 5000 }, (s) => Promise.resolve(s.version));
  console.log(JSON.stringify({ ok: v }));
} catch (e) {
  console.log(JSON.stringify({ reason: e.reason, message: e.message }));
}
`,
    );
    const probe = async (path: string, flags: string[]): Promise<unknown> => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--no-config", ...flags, script, path],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(output.stdout).trim();
      ok(output.success, new TextDecoder().decode(output.stderr));
      return JSON.parse(stdout);
    };
    const serve = (peer: Peer): Promise<void> =>
      peer.send(GREETING).then(async () => {
        await peer.send(`{"return": {}, "id": "${await peer.expect("qmp_capabilities")}"}\r\n`);
        await peer.waitForClose();
      });

    const cases: { name: string; flags: (path: string) => string[]; missing: string }[] = [
      { name: "no flags", flags: () => [], missing: "read" },
      { name: "read only", flags: (p) => [`--allow-read=${p}`], missing: "write" },
      {
        name: "read and write",
        flags: (p) => [`--allow-read=${p}`, `--allow-write=${p}`],
        missing: "net",
      },
      {
        name: "read and net",
        flags: (p) => [`--allow-read=${p}`, `--allow-net=unix:${p}`],
        missing: "write",
      },
    ];
    for (const c of cases) {
      await t.step(`${c.name} fails with reason "permission" naming the flags`, async () => {
        await withFakeQmp(serve, async (path) => {
          const result = await probe(path, c.flags(path)) as { reason: string; message: string };
          strictEqual(result.reason, "permission");
          ok(
            result.message.includes(
              `run with --allow-read=${path} --allow-write=${path} --allow-net=unix:${path}`,
            ),
            result.message,
          );
          ok(result.message.includes(`Requires ${c.missing} access`), result.message);
        });
      });
    }
    await t.step("the three named flags are enough", async () => {
      await withFakeQmp(serve, async (path) => {
        const flags = [`--allow-read=${path}`, `--allow-write=${path}`, `--allow-net=unix:${path}`];
        deepStrictEqual(await probe(path, flags), { ok: { major: 7, minor: 2, micro: 22 } });
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
