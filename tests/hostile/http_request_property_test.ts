/**
 * Hostile HTTP requests: random bytes, HTTP-shaped soup, request-smuggling shapes (CL+TE, two
 * Content-Lengths, obsolete line folding, bare LF or CR, NUL) and valid heads, given to the pure
 * parser and written to a real {@linkcode HttpServer} on a loopback port. Invariants: the parser
 * returns a head or throws a `BadRequestError` (nothing else); every smuggling shape is refused
 * with its status; a valid head parses back to what it was built from; and the server answers
 * exactly as the parser decides: one refusal status line and a closed connection, or nothing and
 * a closed connection when the head never completes.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { DEFAULT_LIMITS, HttpServer } from "../../src/http/http_server.ts";
import {
  BadRequestError,
  findHeadEnd,
  METHODS,
  parseRequestHead,
  type RequestHead,
} from "../../src/http/request_head.ts";
import { createLogger } from "../../src/log/logger.ts";
import { propertyParams } from "../support/property.ts";

/** Small bounds, so that random input reaches the 413 and 431 answers too. */
const LIMITS = { ...DEFAULT_LIMITS, maxHeadBytes: 256, maxBodyBytes: 16, headerTimeoutMs: 60_000 };
/** Far below the header timeout: a close seen before it is the server's own decision. */
const READ_DEADLINE_MS = 5_000;
/**
 * A failing run may wait `READ_DEADLINE_MS`: shrinking stops after this long, with the smallest
 * counterexample found so far (passing runs take well under a second).
 */
const SOCKET_PARAMS = { interruptAfterTimeLimit: 30_000, markInterruptAsFailure: true };
const REFUSALS = [400, 413, 431, 501, 505];

/** The bytes as ISO-8859-1 (`TextDecoder`'s "latin1" is windows-1252). */
function latin1(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => String.fromCharCode(b)).join("");
}

function latin1Bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function chars(ranges: [number, number][]): string[] {
  return ranges.flatMap(([from, to]) =>
    Array.from({ length: to - from + 1 }, (_, i) => String.fromCharCode(from + i))
  );
}

const ALNUM = chars([[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]]);
const TCHAR = [...ALNUM, ..."!#$%&'*+-.^_`|~"];
const PCHAR = [...ALNUM, ..."-._~!$&'()*+,;=:@"];
// Visible ASCII but "#", the query's alphabet.
const QCHAR = chars([[0x21, 0x22], [0x24, 0x7e]]);
// A field value's characters: visible ASCII, obs-text, and inside a value SP and HTAB.
const VCHAR = chars([[0x21, 0x7e], [0x80, 0xff]]);

/** Header names the head generator sets itself. */
const FRAMING = ["host", "content-length", "transfer-encoding", "connection"];

/** A header line as sent: name, optional whitespace, value, optional whitespace. */
interface Field {
  name: string;
  value: string;
  before: string;
  after: string;
}

/** A valid head, as built: its text is `serialise(model)`. */
interface HeadModel {
  method: string;
  target: string;
  version: "HTTP/1.1" | "HTTP/1.0";
  /** Header lines in order. */
  lines: Field[];
  /** Connection options sent, which decide keep-alive. */
  connection: string[];
  contentLength: number;
}

const token = fc.string({ unit: fc.constantFrom(...TCHAR), minLength: 1, maxLength: 10 });
const segment = fc.string({ unit: fc.constantFrom(...PCHAR), minLength: 1, maxLength: 6 })
  .filter((s) => s !== "." && s !== "..");
const path = fc.tuple(fc.array(segment, { maxLength: 4 }), fc.boolean())
  .map(([segments, slash]) => `/${segments.join("/")}${slash && segments.length > 0 ? "/" : ""}`);
const query = fc.option(fc.string({ unit: fc.constantFrom(...QCHAR), maxLength: 12 }), {
  nil: undefined,
});
const target = fc.tuple(path, query).map(([p, q]) => q === undefined ? p : `${p}?${q}`);
const label = fc.tuple(
  fc.constantFrom(...chars([[0x61, 0x7a]])),
  fc.string({ unit: fc.constantFrom(...ALNUM), maxLength: 6 }),
).map(([first, rest]) => first + rest);
const host = fc.tuple(
  fc.oneof(
    fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => labels.join(".")),
    fc.constantFrom("127.0.0.1", "[::1]", "[2001:db8::1]"),
  ),
  fc.option(fc.integer({ min: 0, max: 65_535 }), { nil: undefined }),
).map(([name, port]) => port === undefined ? name : `${name}:${port}`);
const ows: fc.Arbitrary<string> = fc.constantFrom("", " ", "\t", "  ", " \t");
const fieldValue = fc.oneof(
  fc.constant(""),
  fc.tuple(
    fc.constantFrom(...VCHAR),
    fc.string({ unit: fc.constantFrom(...VCHAR, " ", "\t"), maxLength: 10 }),
    fc.constantFrom(...VCHAR),
  ).map(([a, b, c]) => a + b + c),
);
const otherField = fc.record({
  name: token.filter((n) => !FRAMING.includes(n.toLowerCase())),
  value: fieldValue,
  before: ows,
  after: ows,
});

/** A valid head: one of the implemented methods, a routable target, the Host its version needs. */
const validHead: fc.Arbitrary<HeadModel> = fc.record({
  method: fc.constantFrom(...METHODS),
  target,
  version: fc.constantFrom("HTTP/1.1" as const, "HTTP/1.0" as const),
  host: fc.option(host, { nil: undefined }),
  contentLength: fc.option(fc.integer({ min: 0, max: LIMITS.maxBodyBytes }), { nil: undefined }),
  connection: fc.array(
    fc.oneof(fc.constantFrom("close", "Close", "keep-alive", "Keep-Alive", "TE"), token),
    { maxLength: 3 },
  ),
  others: fc.array(otherField, { maxLength: 4 }),
}).chain((h) => {
  const lines: Field[] = [...h.others];
  const field = (name: string, value: string): Field => ({ name, value, before: " ", after: "" });
  const hostValue = h.host ?? (h.version === "HTTP/1.1" ? "localhost" : undefined);
  if (hostValue !== undefined) lines.push(field("Host", hostValue));
  if (h.contentLength !== undefined) lines.push(field("Content-Length", `${h.contentLength}`));
  if (h.connection.length > 0) lines.push(field("Connection", h.connection.join(", ")));
  return fc.shuffledSubarray(lines, { minLength: lines.length }).map((shuffled) => ({
    method: h.method,
    target: h.target,
    version: h.version,
    lines: shuffled,
    connection: h.connection,
    contentLength: h.contentLength ?? 0,
  }));
});

function serialise(model: HeadModel): string {
  const fields = model.lines.map((l) => `${l.name}:${l.before}${l.value}${l.after}`);
  return [`${model.method} ${model.target} ${model.version}`, ...fields].join("\r\n");
}

/** What the parser must make of a model: RFC 9112 §9.3 keep-alive, values without their OWS. */
function expectedHead(model: HeadModel): RequestHead {
  const options = model.connection.map((o) => o.toLowerCase());
  return {
    method: model.method,
    target: model.target,
    version: model.version,
    headers: model.lines.map((l) => [l.name, l.value]),
    contentLength: model.contentLength,
    keepAlive: model.version === "HTTP/1.1"
      ? !options.includes("close")
      : options.includes("keep-alive"),
  };
}

/** A valid head's text turned into a smuggling shape, with the status it must be refused with. */
interface Smuggled {
  shape: string;
  text: string;
  status: number;
}

/** The model without its Content-Length: the shapes bring their own. */
function withoutLength(model: HeadModel): HeadModel {
  return {
    ...model,
    lines: model.lines.filter((l) => l.name.toLowerCase() !== "content-length"),
    contentLength: 0,
  };
}

/** Inserts `line` among the header lines, at `at` (modulo their count plus one). */
function insertLine(text: string, line: string, at: number): string {
  const lines = text.split("\r\n");
  const index = 1 + (at % lines.length);
  return [...lines.slice(0, index), line, ...lines.slice(index)].join("\r\n");
}

const chunked = fc.constantFrom("chunked", "gzip, chunked", "identity", "chunked, identity", "x");
const teName = fc.constantFrom("Transfer-Encoding", "transfer-encoding", "TRANSFER-ENCODING");
const clName = fc.constantFrom("Content-Length", "content-length", "CONTENT-LENGTH");
const length = fc.integer({ min: 0, max: LIMITS.maxBodyBytes });

const smuggled: fc.Arbitrary<Smuggled> = fc.tuple(validHead, fc.nat(), fc.nat()).chain(
  ([model, at, at2]) => {
    const text = serialise(withoutLength(model));
    const shapes: fc.Arbitrary<Smuggled>[] = [
      // CL+TE and TE alone: no framing but Content-Length is taken (RFC 9112 §6.1 allows 501).
      fc.tuple(teName, chunked, fc.option(fc.tuple(clName, length), { nil: undefined })).map(
        ([name, value, cl]) => {
          const withTe = insertLine(text, `${name}: ${value}`, at);
          return {
            shape: "CL+TE",
            text: cl === undefined ? withTe : insertLine(withTe, `${cl[0]}: ${cl[1]}`, at2),
            status: 501,
          };
        },
      ),
      // Two Content-Lengths, equal or not, as two lines or as a list.
      fc.tuple(clName, clName, length, length, fc.boolean())
        .map(([n1, n2, a, b, asList]) => ({
          shape: "two Content-Lengths",
          text: asList
            ? insertLine(text, `${n1}: ${a}, ${b}`, at)
            : insertLine(insertLine(text, `${n1}: ${a}`, at), `${n2}: ${b}`, at2),
          status: 400,
        })),
      // A Content-Length a proxy may read another way.
      fc.constantFrom("+5", "-1", "0x5", "5 5", "", "1e1", "5;", " 5\t5", "999999999999999999")
        .map((value) => ({
          shape: "malformed Content-Length",
          text: insertLine(text, `Content-Length: ${value}`, at),
          status: 400,
        })),
      // Obsolete line folding, and whitespace that hides a name: both smuggle headers past a peer.
      fc.tuple(fc.constantFrom(" ", "\t"), fc.constantFrom("x", "chunked", "Host: b", "a: b"))
        .map(([space, rest]) => ({
          shape: "obs-fold",
          text: insertLine(text, `${space}${rest}`, at),
          status: 400,
        })),
      fc.tuple(teName, fc.constantFrom(" :", "\t:")).map(([name, colon]) => ({
        shape: "whitespace before colon",
        text: insertLine(text, `${name}${colon} chunked`, at),
        status: 400,
      })),
      // A bare LF or CR where a line ends: a peer that ends lines there sees other headers.
      fc.tuple(fc.constantFrom("\n", "\r"), fc.constantFrom("X: y", "Transfer-Encoding: chunked"))
        .map(([end, line]) => {
          const lines = insertLine(text, line, at).split("\r\n");
          const i = at2 % (lines.length - 1);
          const joined = [...lines.slice(0, i), `${lines[i]}${end}${lines[i + 1]}`];
          return {
            shape: "bare LF or CR",
            text: [...joined, ...lines.slice(i + 2)].join("\r\n"),
            status: 400,
          };
        }),
      // A NUL anywhere.
      fc.constant(at % (text.length + 1)).map((i) => ({
        shape: "NUL",
        text: `${text.slice(0, i)}\0${text.slice(i)}`,
        status: 400,
      })),
      // Two Hosts, which a proxy and the server may route by differently.
      host.map((other) => {
        const withHost = text.includes("\r\nHost:") ? text : insertLine(text, "Host: a", 0);
        return {
          shape: "two Hosts",
          text: insertLine(withHost, `Host: ${other}`, at),
          status: 400,
        };
      }),
    ];
    return fc.oneof(...shapes);
  },
);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** HTTP-shaped soup: the parser's delimiters and keywords in random order, with random bytes. */
const soup = fc.array(
  fc.oneof(
    fc.constantFrom(
      "GET",
      "HEAD",
      "POST",
      "PUT",
      "get",
      " ",
      "\t",
      "/",
      "//",
      "/..",
      "%2e",
      "?",
      "#",
      "HTTP/1.1",
      "HTTP/1.0",
      "HTTP/2.0",
      "\r\n",
      "\n",
      "\r",
      "\0",
      ":",
      "Host: a",
      "Host:",
      "Content-Length: ",
      "Transfer-Encoding: chunked",
      "Connection: close",
      "5",
      "99999",
      ",",
    ),
    fc.uint8Array({ minLength: 1, maxLength: 3 }),
  ),
  { maxLength: 24 },
).map((parts) => concat(parts.map((p) => typeof p === "string" ? latin1Bytes(p) : p)));

/** What the parser makes of a head's text: the head, or the status it is refused with. */
function verdict(text: string): RequestHead | number {
  try {
    return parseRequestHead(text, { maxBodyBytes: LIMITS.maxBodyBytes });
  } catch (error) {
    if (error instanceof BadRequestError) return error.status;
    throw error;
  }
}

Deno.test("findHeadEnd() of random bytes: the first CRLFCRLF, or -1", () => {
  const bytes = fc.array(
    fc.oneof(fc.constantFrom(13, 10, 13, 10), fc.integer({ min: 0, max: 255 })),
    { maxLength: 64 },
  ).map((b) => Uint8Array.from(b));
  fc.assert(
    fc.property(bytes, (b) => {
      assert.equal(findHeadEnd(b), latin1(b).indexOf("\r\n\r\n"));
    }),
    propertyParams(1_000),
  );
});

Deno.test("parseRequestHead() of random bytes and soup: a valid head or a refusal status", () => {
  const text = fc.oneof(fc.uint8Array({ maxLength: 200 }), soup).map(latin1);
  fc.assert(
    fc.property(text, (t) => {
      const outcome = verdict(t);
      if (typeof outcome === "number") {
        assert.ok([400, 413, 501, 505].includes(outcome), `status ${outcome}`);
        return;
      }
      // Whatever is accepted is a head this server implements, as sent.
      assert.ok(METHODS.includes(outcome.method));
      assert.ok(t.startsWith(`${outcome.method} ${outcome.target} ${outcome.version}`));
      assert.ok(outcome.contentLength <= LIMITS.maxBodyBytes);
      for (const [name, value] of outcome.headers) assert.doesNotMatch(name + value, /[\0\r\n]/);
    }),
    propertyParams(2_000),
  );
});

Deno.test("parseRequestHead() of request-smuggling shapes: each refused with its status", () => {
  fc.assert(
    fc.property(smuggled, ({ shape, text, status }) => {
      assert.equal(verdict(text), status, `${shape}: ${JSON.stringify(text)}`);
    }),
    propertyParams(2_000),
  );
});

Deno.test("parseRequestHead() of valid heads: exactly what they were built from", () => {
  fc.assert(
    fc.property(validHead, (model) => {
      const text = serialise(model);
      assert.deepEqual(verdict(text), expectedHead(model), JSON.stringify(text));
    }),
    propertyParams(1_000),
  );
});

/** What the server may do with a client's bytes: refuse with a status, stay silent, or answer. */
type Outcome = number | "silent" | "answered";

/**
 * The outcomes the parser allows for `bytes` sent at once and the writing side then closed.
 * A head ending within 3 bytes of the cap may also be refused 431 if it arrives in two reads.
 */
function allowedOutcomes(bytes: Uint8Array): Outcome[] {
  const max = LIMITS.maxHeadBytes;
  const end = findHeadEnd(bytes);
  if (end < 0) return bytes.length > max ? [431] : ["silent"];
  if (end > max) return [431];
  const head = verdict(latin1(bytes.subarray(0, end)));
  const bodyBytes = bytes.length - end - 4;
  const outcome = typeof head === "number"
    ? head
    : bodyBytes < head.contentLength
    ? "silent"
    : "answered";
  return end > max - 3 ? [outcome, 431] : [outcome];
}

/** Everything the server sends until it closes, or a timeout after `READ_DEADLINE_MS`. */
async function readUntilClosed(conn: Deno.Conn): Promise<{ bytes: Uint8Array; closed: boolean }> {
  const parts: Uint8Array[] = [];
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, READ_DEADLINE_MS);
  try {
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      parts.push(buffer.slice(0, n));
    }
  } catch (error) {
    // A reset is the server closing too; a read cut by the timer is not.
    if (timedOut) return { bytes: concat(parts), closed: false };
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  } finally {
    clearTimeout(timer);
  }
  return { bytes: concat(parts), closed: true };
}

/** The one response the server sends before closing: its status; anything after it fails. */
function onlyResponse(text: string): number {
  const end = text.indexOf("\r\n\r\n");
  assert.ok(end > 0, `a complete head: ${JSON.stringify(text)}`);
  const head = text.slice(0, end);
  const status = /^HTTP\/1\.1 (\d{3}) [^\r\n]*(?:\r\n|$)/.exec(head);
  assert.ok(status !== null, `a status line: ${JSON.stringify(head)}`);
  assert.match(head, /\r\nConnection: close(?:\r\n|$)/);
  const length = Number(/\r\nContent-Length: (\d+)/.exec(head)?.[1]);
  assert.equal(text.length, end + 4 + length, `one response and nothing after: ${text}`);
  return Number(status[1]);
}

/** Bytes a client may send: random, soup, smuggling shapes, and valid heads with their bodies. */
const clientBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: LIMITS.maxHeadBytes + 40 }),
  soup,
  smuggled.map(({ text }) => latin1Bytes(`${text}\r\n\r\n`)),
  fc.tuple(validHead, fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8 }))).map(
    ([model, missing]) => {
      // The body whole, or `missing` bytes short: then the server waits for them and gets EOF.
      const body = new Uint8Array(Math.max(0, model.contentLength - missing)).fill(0x61);
      return concat([latin1Bytes(`${serialise(model)}\r\n\r\n`), body]);
    },
  ),
);

Deno.test("HttpServer with random client bytes: the parser's status line or nothing, then closed", async () => {
  const server = new HttpServer({
    handler: () => new Response("ok\n"),
    limits: LIMITS,
    logger: createLogger({ level: "error", write: () => {} }),
  });
  server.serve(Deno.listen({ hostname: "127.0.0.1", port: 0 }), "http");
  const seen = new Map<Outcome, number>();
  try {
    await fc.assert(
      fc.asyncProperty(clientBytes, async (bytes) => {
        const allowed = allowedOutcomes(bytes);
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
        try {
          let offset = 0;
          while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
          // A refusal must close the connection by itself; otherwise the server needs the EOF.
          if (!allowed.every((o) => typeof o === "number")) await conn.closeWrite();
          const { bytes: reply, closed } = await readUntilClosed(conn);
          assert.ok(closed, `closed within ${READ_DEADLINE_MS} ms`);
          const text = latin1(reply);
          let outcome: Outcome;
          if (text === "") outcome = "silent";
          else if (allowed.includes("answered")) {
            assert.match(text, /^HTTP\/1\.1 200 /);
            outcome = "answered";
          } else outcome = onlyResponse(text);
          assert.ok(allowed.includes(outcome), `${outcome} not in ${allowed}: ${text}`);
          if (typeof outcome === "number") assert.ok(REFUSALS.includes(outcome));
          seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
        } finally {
          try {
            conn.close();
          } catch {
            // Closed by the read deadline.
          }
        }
      }),
      { ...propertyParams(300), ...SOCKET_PARAMS },
    );
  } finally {
    await server.shutdown(100);
  }
  // The generators reach the interesting answers, not only one kind.
  for (const outcome of [400, 501, "silent", "answered"] as const) {
    assert.ok((seen.get(outcome) ?? 0) > 0, `no ${outcome} in ${JSON.stringify([...seen])}`);
  }
});

Deno.test("HttpServer with valid heads: the handler gets the method, target and headers sent", async () => {
  const server = new HttpServer({
    handler: (request) => {
      const url = new URL(request.url);
      const seen = { method: request.method, target: url.pathname + url.search };
      return Response.json({ ...seen, headers: [...request.headers] });
    },
    limits: LIMITS,
    logger: createLogger({ level: "error", write: () => {} }),
  });
  server.serve(Deno.listen({ hostname: "127.0.0.1", port: 0 }), "http");
  try {
    await fc.assert(
      fc.asyncProperty(validHead.filter((m) => m.method !== "HEAD"), async (model) => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
        try {
          const body = new Uint8Array(model.contentLength);
          const sent = concat([latin1Bytes(`${serialise(model)}\r\n\r\n`), body]);
          let offset = 0;
          while (offset < sent.length) offset += await conn.write(sent.subarray(offset));
          await conn.closeWrite();
          const { bytes, closed } = await readUntilClosed(conn);
          assert.ok(closed, `closed within ${READ_DEADLINE_MS} ms`);
          // The head is ASCII and the JSON body UTF-8.
          const text = new TextDecoder().decode(bytes);
          assert.match(text, /^HTTP\/1\.1 200 /, JSON.stringify(serialise(model)));
          const json = text.slice(text.indexOf("\r\n\r\n") + 4);
          const want = expectedHead(model);
          const url = new URL(want.target, "http://localhost");
          assert.deepEqual(JSON.parse(json), {
            method: want.method,
            target: url.pathname + url.search,
            // As the Fetch API shows them: a Request made from a Headers trims a combined value
            // ("a," of "a" and ""), as the server makes it.
            headers: [...new Request(url, { headers: new Headers(want.headers) }).headers],
          });
        } finally {
          conn.close();
        }
      }),
      { ...propertyParams(200), ...SOCKET_PARAMS },
    );
  } finally {
    await server.shutdown(100);
  }
});
