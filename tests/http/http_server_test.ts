/**
 * The HTTP server over real loopback sockets, with short bounds: slowloris and idle clients are
 * dropped, the connection cap holds, bad requests get their status, keep-alive, pipelining and
 * HEAD work, and shutdown never hangs. Deadlines are generous; no timing is asserted.
 */

import assert from "node:assert/strict";
import { DEFAULT_LIMITS, HttpServer, type ServerLimits } from "../../src/http/http_server.ts";
import { createLogger } from "../../src/log/logger.ts";
import { chunkStream } from "../../src/http/scrape_answer.ts";
import { waitFor } from "../support/exporter_process.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Running extends AsyncDisposable {
  server: HttpServer;
  port: number;
  logs: string[];
}

function start(
  limits: Partial<ServerLimits>,
  handler?: (r: Request) => Promise<Response>,
): Running {
  const logs: string[] = [];
  const server = new HttpServer({
    handler: handler ??
      ((request) =>
        Promise.resolve(new Response(`${request.method} ${new URL(request.url).pathname}\n`))),
    limits: { ...DEFAULT_LIMITS, ...limits },
    logger: createLogger({ level: "debug", write: (line) => logs.push(line) }),
  });
  server.serve(Deno.listen({ hostname: "127.0.0.1", port: 0 }), "http");
  return {
    server,
    port: server.addr.port,
    logs,
    [Symbol.asyncDispose]: () => server.shutdown(100),
  };
}

async function connect(port: number): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: "127.0.0.1", port });
}

/** Reads until the peer closes, or `bytes` arrive; returns the text. */
async function readSome(conn: Deno.Conn, until: (text: string) => boolean): Promise<string> {
  let text = "";
  const buffer = new Uint8Array(65536);
  while (!until(text)) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      break; // Reset by the server.
    }
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n));
  }
  return text;
}

/** Whether `text` holds `count` complete responses (heads plus Content-Length bodies). */
function responses(count: number, head = false): (text: string) => boolean {
  return (text) => {
    let rest = text;
    for (let i = 0; i < count; i++) {
      const end = rest.indexOf("\r\n\r\n");
      if (end < 0) return false;
      const length = head ? 0 : Number(/content-length: (\d+)/i.exec(rest.slice(0, end))?.[1] ?? 0);
      if (rest.length < end + 4 + length) return false;
      rest = rest.slice(end + 4 + length);
    }
    return true;
  };
}

async function closedByPeer(conn: Deno.Conn): Promise<boolean> {
  const text = await readSome(conn, () => false);
  return text === "" || text.startsWith("HTTP/1.1");
}

Deno.test("HttpServer answers, keeps the connection alive, pipelines and honours Connection: close", async () => {
  await using running = start({});
  const conn = await connect(running.port);
  try {
    await conn.write(encoder.encode("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    const first = await readSome(conn, responses(1));
    assert.match(first, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(first, /content-length: 7\r\n/);
    assert.ok(first.endsWith("\r\n\r\nGET /a\n"), first);
    // Two pipelined requests in one write, the second one closing.
    await conn.write(
      encoder.encode(
        "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ),
    );
    const rest = await readSome(conn, () => false);
    const [headResponse, getResponse] = rest.split(/(?=HTTP\/1\.1 )/);
    // The handler saw a GET ("GET /b\n", 7 bytes): the head carries its length, without the body.
    assert.match(headResponse!, /content-length: 7\r\n\r\n$/, "HEAD: the GET's length, no body");
    assert.match(getResponse!, /connection: close\r\n\r\nGET \/c\n$/);
  } finally {
    conn.close();
  }
});

Deno.test("HttpServer refuses bad requests with their status and closes", async () => {
  await using running = start({ maxHeadBytes: 1024, maxBodyBytes: 16 });
  const cases: [string, number][] = [
    [`GET / HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(2000)}\r\n\r\n`, 431],
    ["POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n", 413],
    ["POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501],
    ["GET / HTTP/1.1\r\n\r\n", 400],
    ["GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400],
    ["garbage\r\n\r\n", 400],
  ];
  for (const [request, status] of cases) {
    const conn = await connect(running.port);
    try {
      await conn.write(encoder.encode(request));
      const text = await readSome(conn, () => false); // Until the server closes.
      assert.match(
        text,
        new RegExp(`^HTTP/1\\.1 ${status} `),
        JSON.stringify(request.slice(0, 40)),
      );
      assert.match(text, /Connection: close/);
    } finally {
      conn.close();
    }
  }
});

Deno.test("HttpServer drops a slowloris client (1 byte per 100 ms) at the header timeout", async () => {
  await using running = start({ headerTimeoutMs: 500 });
  const conn = await connect(running.port);
  let sent = 0;
  let closed = false;
  const drip = (async () => {
    await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "));
    // Bounded: 600 bytes at most, a minute at 100 ms each; the server must close long before.
    for (; sent < 600 && !closed; sent++) {
      try {
        await conn.write(encoder.encode("a"));
      } catch {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    assert.ok(await closedByPeer(conn), "closed without a response");
    closed = true;
    await drip;
    assert.ok(sent < 600, `the server waited for all ${sent} bytes`);
    // The server still serves others.
    const other = await connect(running.port);
    await other.write(encoder.encode("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    assert.match(await readSome(other, () => false), /^HTTP\/1\.1 200 /);
    other.close();
  } finally {
    closed = true;
    conn.close();
  }
});

Deno.test("HttpServer closes a kept-alive connection after the idle timeout", async () => {
  await using running = start({ idleTimeoutMs: 300 });
  const conn = await connect(running.port);
  try {
    await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.match(await readSome(conn, responses(1)), /^HTTP\/1\.1 200 /);
    await waitFor(() => running.server.connectionCount === 1, { what: "the connection open" });
    // Silent from now on: the server closes it (read returns EOF), within a generous deadline.
    const eof = await readSome(conn, () => false);
    assert.equal(eof, "");
    await waitFor(() => running.server.connectionCount === 0, { what: "no connection left" });
  } finally {
    conn.close();
  }
});

Deno.test("HttpServer holds --web.max-connections: 503 beyond it, served again once they go", async () => {
  await using running = start({ maxConnections: 4, headerTimeoutMs: 1_500 });
  const idle: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 4; i++) idle.push(await connect(running.port));
    await waitFor(() => running.server.connectionCount === 4, { what: "4 connections served" });
    for (let i = 0; i < 3; i++) {
      const over = await connect(running.port);
      try {
        const text = await readSome(over, () => false);
        assert.match(text, /^HTTP\/1\.1 503 .*\r\n[\s\S]*--web\.max-connections/);
      } finally {
        over.close();
      }
    }
    assert.equal(running.server.connectionCount, 4);
    assert.equal(running.logs.filter((l) => l.includes("Too many connections")).length, 1);
    // The idle ones time out (header timeout): a new client is served again.
    await waitFor(async () => {
      const conn = await connect(running.port);
      try {
        await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        return /^HTTP\/1\.1 200 /.test(await readSome(conn, () => false));
      } finally {
        conn.close();
      }
    }, { timeoutMs: 20_000, what: "a 200 after the idle connections timed out" });
  } finally {
    for (const conn of idle) conn.close();
  }
});

Deno.test("HttpServer.shutdown() closes idle connections, waits for a request up to the deadline", async () => {
  const never = Promise.withResolvers<Response>();
  let handling = false;
  const running = start({}, () => {
    handling = true;
    return never.promise;
  });
  const idle = await connect(running.port);
  const busy = await connect(running.port);
  try {
    await busy.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await waitFor(() => running.server.connectionCount === 2 && handling, {
      what: "2 connections, one request in the handler",
    });
    const done = running.server.shutdown(300);
    assert.equal(await readSome(idle, () => false), "", "the idle connection closes at once");
    await done; // The blocked request does not hold shutdown past the deadline.
    assert.equal(await readSome(busy, () => false), "", "the blocked request's socket is closed");
    assert.equal(running.server.connectionCount, 0);
    await assert.rejects(connect(running.port), "no longer listening");
  } finally {
    never.resolve(new Response("late"));
    idle.close();
    busy.close();
  }
});

/** Sends one request on a fresh connection and reads until the server closes. */
async function exchange(port: number, request: string): Promise<string> {
  const conn = await connect(port);
  try {
    await conn.write(encoder.encode(request));
    return await readSome(conn, () => false);
  } finally {
    conn.close();
  }
}

/** A server whose handler counts the requests that reach it. */
function counting(): Running & { handled: string[] } {
  const handled: string[] = [];
  // A short idle timeout: a request wrongly kept alive fails the test in 2 s, not 60.
  const running = start({ idleTimeoutMs: 2_000 }, (request) => {
    const url = new URL(request.url);
    handled.push(`${request.method} ${url.pathname}${url.search}`);
    return Promise.resolve(new Response(`${url.pathname}${url.search}\n`));
  });
  return Object.assign(running, { handled });
}

/** Asserts a response of the server's own: its status, the security headers, no echo. */
function assertOwnAnswer(text: string, status: number, notEchoed: string): void {
  assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), text);
  assert.match(text, /\r\nX-Content-Type-Options: nosniff\r\n/i, text);
  assert.match(text, /\r\nX-Frame-Options: DENY\r\n/i, text);
  assert.match(text, /\r\nContent-Security-Policy: default-src 'none'/i, text);
  assert.match(text, /\r\nContent-Length: [1-9]\d*\r\n/i, text);
  assert.match(text, /\r\nConnection: close\r\n/i, text);
  if (notEchoed !== "") assert.ok(!text.includes(notEchoed), `echoes ${notEchoed}: ${text}`);
}

Deno.test("HttpServer refuses targets a proxy would route otherwise with 400, before the handler", async () => {
  await using running = counting();
  // Each was normalised by the URL parser (or decoded by the router) into /-/reload or /metrics,
  // past a proxy in front that blocks the literal paths.
  const targets = [
    "POST //x/-/reload",
    "POST /%2d/reload",
    "POST /a/../-/reload",
    "POST /%2e/-/reload",
    "POST /-//reload",
    "POST /./-/reload",
    "POST /\\-/reload",
    "GET //evil/metrics",
    "GET /%6detrics",
    "GET /metrics#x",
  ];
  for (const target of targets) {
    const text = await exchange(running.port, `${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertOwnAnswer(text, 400, "");
  }
  assert.deepEqual(running.handled, []);
});

Deno.test("HttpServer routes queries as sent, percent-encoding and dots in them included", async () => {
  await using running = counting();
  const targets = ["/metrics?collect%5B%5D=qmp", "/metrics?x=../%2e//y", "/metrics/?a=b?c"];
  for (const target of targets) {
    const text = await exchange(
      running.port,
      `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    assert.match(text, /^HTTP\/1\.1 200 /, target);
    assert.ok(text.endsWith(`\r\n\r\n${target}\n`), text);
  }
  assert.deepEqual(running.handled, targets.map((target) => `GET ${target}`));
});

Deno.test("HttpServer answers an unparsable or empty Host with a plain 400, security headers, no echo", async () => {
  await using running = counting();
  for (const host of ["[::1", "", "[::1]:99999", "<script>x", "a@evil", "[1:2:3]"]) {
    const text = await exchange(running.port, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    assertOwnAnswer(text, 400, host === "" ? "" : host);
  }
  assert.deepEqual(running.handled, []);
});

Deno.test("HttpServer hands obs-text bytes 0x80-0xff in a field value to the handler as sent", async () => {
  // Found by tests/hostile/http_request_property_test.ts: the head was decoded with
  // TextDecoder("latin1"), which is windows-1252, so 0x80 became U+20AC and got a 400.
  await using running = start({}, (request) => {
    const codes = [...request.headers.get("x-obs") ?? ""].map((c) => c.charCodeAt(0));
    return Promise.resolve(new Response(`${codes.join(",")}\n`));
  });
  for (const byte of [0x80, 0x8f, 0x9f, 0xa0, 0xff]) {
    const conn = await connect(running.port);
    try {
      const head = encoder.encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Obs: a");
      await conn.write(Uint8Array.from([...head, byte, ...encoder.encode("b\r\n\r\n")]));
      const text = await readSome(conn, () => false);
      assert.match(text, /^HTTP\/1\.1 200 /, `byte ${byte}: ${text}`);
      assert.ok(text.endsWith(`\r\n\r\n97,${byte},98\n`), text);
    } finally {
      conn.close();
    }
  }
});

Deno.test("HttpServer answers lower-case and unimplemented methods 501 before the handler", async () => {
  await using running = counting();
  // Methods are case-sensitive (RFC 9110 9.1): "head" is an unknown method, not HEAD.
  for (const method of ["head", "get", "PUT", "DELETE", "OPTIONS", "TRACE"]) {
    const text = await exchange(running.port, `${method} /metrics HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertOwnAnswer(text, 501, "");
    assert.match(text, /GET, HEAD, POST/, text);
  }
  assert.deepEqual(running.handled, []);
});

Deno.test("HttpServer answers at the connection cap with the security headers", async () => {
  await using running = start({ maxConnections: 1, headerTimeoutMs: 5_000 });
  const held = await connect(running.port);
  try {
    await waitFor(() => running.server.connectionCount === 1, { what: "1 connection served" });
    assertOwnAnswer(await exchange(running.port, ""), 503, "");
  } finally {
    held.close();
  }
});

Deno.test("HttpServer puts the headers it is given on its own answers", async () => {
  const server = new HttpServer({
    handler: () => new Response("ok"),
    limits: { ...DEFAULT_LIMITS, idleTimeoutMs: 2_000 },
    logger: createLogger({ level: "error", write: () => {} }),
    headers: () => [["X-Frame-Options", "sameorigin"], ["Strict-Transport-Security", "max-age=60"]],
  });
  server.serve(Deno.listen({ hostname: "127.0.0.1", port: 0 }), "http");
  try {
    const text = await exchange(server.addr.port, "GET /a/../b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /\r\nX-Frame-Options: sameorigin\r\n/);
    assert.match(text, /\r\nStrict-Transport-Security: max-age=60\r\n/);
    assert.doesNotMatch(text, /DENY/);
  } finally {
    await server.shutdown(100);
  }
});

/** A handler answering with one large body, streamed as the app streams a scrape's answer. */
function bigBody(bytes: Uint8Array): (r: Request) => Promise<Response> {
  return () => Promise.resolve(new Response(chunkStream(bytes)));
}

const BIG = 32 * 1024 * 1024; // Far more than loopback's socket buffers take.

Deno.test("HttpServer writes a large body from the handler's own bytes, not a copy", async () => {
  const bytes = new Uint8Array(BIG).fill(0x61); // "a"
  await using running = start({}, bigBody(bytes));
  const conn = await connect(running.port);
  try {
    await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    const buffer = new Uint8Array(65536);
    const first = await conn.read(buffer);
    assert.ok(first !== null && first > 0);
    // The server is writing now, held back by this client; change what it has yet to write.
    bytes.fill(0x62); // "b"
    let last = 0;
    let total = first;
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      total += n;
      last = buffer[n - 1]!;
    }
    assert.ok(total > BIG, `${total} bytes`);
    // A copy made before writing would still end in "a".
    assert.equal(String.fromCharCode(last), "b");
  } finally {
    conn.close();
  }
});

Deno.test("HttpServer cuts a client that never reads a large body at the write timeout", async () => {
  await using running = start({ writeTimeoutMs: 300 }, bigBody(new Uint8Array(BIG)));
  const conns = await Promise.all(Array.from({ length: 3 }, () => connect(running.port)));
  try {
    for (const conn of conns) {
      await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    await waitFor(() => running.server.connectionCount === 3, { what: "three connections" });
    // Never read: each write stalls on a full socket buffer until the deadline closes it.
    await waitFor(() => running.server.connectionCount === 0, {
      timeoutMs: 10_000,
      what: "every non-reading connection closed",
    });
    assert.ok(running.logs.some((line) => /Connection closed/.test(line)), running.logs.join("\n"));
  } finally {
    for (const conn of conns) conn.close();
  }
});
