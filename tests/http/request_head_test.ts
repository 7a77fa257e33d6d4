/** Table-driven tests of the request head parser: what is accepted, and what status is refused. */

import assert from "node:assert/strict";
import {
  BadRequestError,
  findHeadEnd,
  parseRequestHead,
  type RequestHead,
} from "../../src/http/request_head.ts";

const OPTIONS = { maxBodyBytes: 100 };

const GOOD: { head: string; want: Partial<RequestHead> }[] = [
  {
    head: "GET /metrics HTTP/1.1\r\nHost: a:9900",
    want: { method: "GET", target: "/metrics", version: "HTTP/1.1", keepAlive: true },
  },
  { head: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close", want: { keepAlive: false } },
  { head: "GET / HTTP/1.1\r\nHost: a\r\nConnection: TE, Close", want: { keepAlive: false } },
  { head: "GET / HTTP/1.0", want: { version: "HTTP/1.0", keepAlive: false } },
  { head: "GET / HTTP/1.0\r\nConnection: keep-alive", want: { keepAlive: true } },
  {
    head: "HEAD /metrics?x=1 HTTP/1.1\r\nHost: a",
    want: { method: "HEAD", target: "/metrics?x=1" },
  },
  { head: "POST /-/reload HTTP/1.1\r\nHost: a\r\nContent-Length: 5", want: { contentLength: 5 } },
  {
    head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5",
    want: { contentLength: 5 },
  },
  {
    head: "GET / HTTP/1.1\r\nHost:a\r\nX-Empty:\r\nUser-Agent:  curl/8 ",
    want: { headers: [["Host", "a"], ["X-Empty", ""], ["User-Agent", "curl/8"]] },
  },
];

for (const { head, want } of GOOD) {
  Deno.test(`parseRequestHead() accepts ${JSON.stringify(head)}`, () => {
    const parsed = parseRequestHead(head, OPTIONS);
    for (const [key, value] of Object.entries(want)) {
      assert.deepEqual(parsed[key as keyof RequestHead], value, key);
    }
  });
}

const BAD: { head: string; status: number }[] = [
  { head: "", status: 400 },
  { head: "GET /", status: 400 },
  { head: "GET  / HTTP/1.1\r\nHost: a", status: 400 },
  { head: "G(T / HTTP/1.1\r\nHost: a", status: 400 },
  { head: "GET / HTTP/2.0\r\nHost: a", status: 505 },
  { head: "GET / HTTPS/1.1\r\nHost: a", status: 400 },
  { head: "GET http://a/ HTTP/1.1\r\nHost: a", status: 400 },
  { head: "GET * HTTP/1.1\r\nHost: a", status: 400 },
  { head: "GET /a\x01 HTTP/1.1\r\nHost: a", status: 400 },
  { head: "GET / HTTP/1.1", status: 400 },
  { head: "GET / HTTP/1.1\r\nHost: a\r\nHost: b", status: 400 },
  { head: "GET / HTTP/1.1\r\nHost : a", status: 400 },
  { head: "GET / HTTP/1.1\r\nHost: a\r\n folded", status: 400 },
  { head: "GET / HTTP/1.1\r\nHost: a\r\nNoColon", status: 400 },
  { head: "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b", status: 400 },
  { head: "GET / HTTP/1.1\r\nHost: a\r\nX: a\nb", status: 400 },
  { head: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked", status: 501 },
  { head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101", status: 413 },
  { head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1", status: 400 },
  { head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3", status: 400 },
  { head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6", status: 400 },
  { head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999", status: 400 },
];

for (const { head, status } of BAD) {
  Deno.test(`parseRequestHead() refuses ${JSON.stringify(head)} with ${status}`, () => {
    assert.throws(
      () => parseRequestHead(head, OPTIONS),
      (error) => error instanceof BadRequestError && error.status === status,
    );
  });
}

Deno.test("findHeadEnd() finds the first blank line, or -1", () => {
  const cases: [string, number][] = [
    ["GET / HTTP/1.1\r\n\r\n", 14],
    ["GET / HTTP/1.1\r\nHost: a\r\n\r\nbody\r\n\r\n", 23],
    ["GET / HTTP/1.1\r\nHost: a\r\n", -1],
    ["GET / HTTP/1.1\n\n", -1],
    ["", -1],
  ];
  for (const [text, want] of cases) {
    assert.equal(findHeadEnd(new TextEncoder().encode(text)), want, JSON.stringify(text));
  }
});
