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
  // Queries keep working as Prometheus and browsers send them, percent-encoding included.
  {
    head: "GET /metrics?collect%5B%5D=qmp&x=a%20b/c?d HTTP/1.1\r\nHost: a",
    want: { target: "/metrics?collect%5B%5D=qmp&x=a%20b/c?d" },
  },
  { head: "GET /metrics/ HTTP/1.1\r\nHost: a", want: { target: "/metrics/" } },
  { head: "GET /a.b/..c/.d/~e-f_g:h@i!$&'()*+,;= HTTP/1.1\r\nHost: a", want: {} },
  { head: "GET /?x=../..//%2e HTTP/1.1\r\nHost: a", want: { target: "/?x=../..//%2e" } },
  // Host: a name, an IPv4 or bracketed IPv6 address, with or without a port.
  ...["a.example", "127.0.0.1:9900", "[::1]:9900", "[::ffff:127.0.0.1]", "a:", "a-b_c~d:65535"]
    .map((host) => ({ head: `GET / HTTP/1.1\r\nHost: ${host}`, want: {} })),
  { head: "POST /-/reload HTTP/1.0", want: { method: "POST" } },
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
  { head: "GET / HTTP/1.0\r\nHost: a\r\nHost: b", status: 400 },
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
  // Equal values too: a proxy in front may have framed the body by only one of them.
  { head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5", status: 400 },
  { head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5", status: 400 },
  { head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999", status: 400 },
  // Targets a proxy and this server would route differently: refused before routing.
  ...[
    "//x/-/reload",
    "//evil/metrics",
    "/%2d/reload",
    "/%6detrics",
    "/a/../-/reload",
    "/%2e/-/reload",
    "/./metrics",
    "/metrics/.",
    "/metrics/..",
    "/-//reload",
    "/\\evil/metrics",
    "/-\\reload",
    "/metrics#x",
    "/metrics?x#y",
    "/a%",
    '/a"b',
    "/a<b>",
    "/a{b}",
    "/a^b",
    "/a|b",
    "/a`b",
  ].map((target) => ({ head: `GET ${target} HTTP/1.1\r\nHost: a`, status: 400 })),
  // Unparsable or empty Host.
  ...[
    "",
    "[::1",
    "::1",
    "a b",
    "a/b",
    "a@b",
    "[::1]x",
    "a:99999",
    "a:1:2",
    "[zz]",
    "a%41",
    "a\\b",
    "[1:2:3]",
    "[::1::2]",
  ]
    .map((host) => ({ head: `GET / HTTP/1.1\r\nHost: ${host}`, status: 400 })),
  // Methods are case-sensitive: "head" is not HEAD. Only GET, HEAD and POST are implemented.
  ...["head", "get", "Post", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "BREW"].map(
    (method) => ({ head: `${method} / HTTP/1.1\r\nHost: a`, status: 501 }),
  ),
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
