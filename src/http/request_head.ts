/**
 * Parses the head of an HTTP/1.x request (request line and header fields) and decides what the
 * server does with its body. Pure: the connection handling is in `http_server.ts`.
 *
 * @module
 */

/** A parsed request head. */
export interface RequestHead {
  /** The method, e.g. `GET`. */
  method: string;
  /** The request target in origin form, e.g. `/metrics?x=1`. */
  target: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  version: "HTTP/1.1" | "HTTP/1.0";
  /** Header fields in order, names as sent. */
  headers: [string, string][];
  /** Body length from `Content-Length` (0 without one). */
  contentLength: number;
  /** Whether the connection stays open after the response. */
  keepAlive: boolean;
}

/** A request the server refuses, with the status to answer and a one-line reason. */
export class BadRequestError extends Error {
  /** The error's name. */
  override name = "BadRequestError";
  /** The HTTP status to answer: 400, 413, 431, 501 or 505. */
  readonly status: number;

  /**
   * Creates the error.
   *
   * @param status The HTTP status to answer.
   * @param message What is wrong.
   */
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, obs-text, spaces and tabs; no control characters (CR, LF, NUL).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TARGET = /^\/[\x21-\x7e]*$/;
// RFC 3986 pchar without pct-encoded: what a path segment may hold here.
const SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]*$/;
// Visible ASCII but "#": a query never routes, so it may hold what clients send, "%" included.
const QUERY = /^[\x21\x22\x24-\x7e]*$/;
// A name or IPv4 address (RFC 3986 reg-name without "%" and sub-delims), or a bracketed IPv6
// address, then an optional port.
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~]+)(?::(\d{0,5}))?$/;

/** The methods the server implements; methods are case-sensitive, so `head` is none of them. */
export const METHODS: readonly string[] = ["GET", "HEAD", "POST"];

/**
 * Finds the blank line that ends a request head.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { findHeadEnd } from "./request_head.ts";
 * assert.equal(findHeadEnd(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n")), 14);
 * ```
 *
 * @param bytes The bytes received so far.
 * @returns The offset of the `\r\n\r\n`, or -1 when the head is not complete yet.
 */
export function findHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

/**
 * Parses a request head (without its final blank line), strictly: CRLF line ends, token
 * field names, one of {@linkcode METHODS} (else 501), origin-form targets whose path is routed
 * as written (see {@linkcode pathProblem}), no obsolete line folding, one well-formed `Host`
 * (required on HTTP/1.1), one `Content-Length` at most `maxBodyBytes`, and no
 * `Transfer-Encoding` (no request to this exporter has a body worth streaming).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRequestHead } from "./request_head.ts";
 * const head = parseRequestHead("GET /metrics HTTP/1.1\r\nHost: a", { maxBodyBytes: 0 });
 * assert.equal(head.target, "/metrics");
 * assert.equal(head.keepAlive, true);
 * ```
 *
 * @param text The head as latin1 text (one character per byte).
 * @param options `maxBodyBytes`: the largest `Content-Length` accepted.
 * @returns The parsed head.
 * @throws {BadRequestError} With the status to answer.
 */
export function parseRequestHead(text: string, options: { maxBodyBytes: number }): RequestHead {
  const lines = text.split("\r\n");
  const requestLine = lines[0] ?? "";
  const parts = requestLine.split(" ");
  if (parts.length !== 3) throw new BadRequestError(400, "malformed request line");
  const [method, target, version] = parts as [string, string, string];
  if (!TOKEN.test(method)) throw new BadRequestError(400, "malformed method");
  if (!/^HTTP\/\d\.\d$/.test(version)) throw new BadRequestError(400, "malformed HTTP version");
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    throw new BadRequestError(505, `HTTP version ${version} not supported`);
  }
  if (!METHODS.includes(method)) {
    throw new BadRequestError(
      501,
      `method not implemented: only ${METHODS.join(", ")} (methods are case-sensitive)`,
    );
  }
  checkTarget(target);
  const headers = lines.slice(1).map(parseField);
  const values = (name: string): string[] =>
    headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
  if (values("transfer-encoding").length > 0) {
    throw new BadRequestError(501, "Transfer-Encoding is not supported: send Content-Length");
  }
  const hosts = values("host");
  if (hosts.length > 1 || (version === "HTTP/1.1" && hosts.length !== 1)) {
    throw new BadRequestError(400, "one Host header at most, and exactly one on HTTP/1.1");
  }
  // Not echoed: the client knows what it sent, and the answer is no place for its bytes.
  if (hosts.length === 1 && !isHost(hosts[0]!)) {
    throw new BadRequestError(400, "malformed Host header");
  }
  const contentLength = parseContentLength(values("content-length"), options.maxBodyBytes);
  const connection = values("connection").join(",").toLowerCase().split(",").map((t) => t.trim());
  const keepAlive = version === "HTTP/1.1"
    ? !connection.includes("close")
    : connection.includes("keep-alive");
  return { method, target, version, headers, contentLength, keepAlive };
}

/**
 * Refuses a target that a proxy in front and this server could route differently: the server
 * routes the path exactly as sent (no decoding, no normalising), so a path with `//`, a dot
 * segment, percent-encoding or a backslash, which a URL parser would rewrite, is refused.
 */
function checkTarget(target: string): void {
  if (!TARGET.test(target)) throw new BadRequestError(400, "request target must be a path");
  const question = target.indexOf("?");
  const path = question < 0 ? target : target.slice(0, question);
  const problem = pathProblem(path);
  if (problem !== undefined) throw new BadRequestError(400, `request target path ${problem}`);
  if (question >= 0 && !QUERY.test(target.slice(question + 1))) {
    throw new BadRequestError(400, "request target has a fragment (#)");
  }
}

/**
 * Why a path would not be routed as sent, if it would not: a URL parser (and many proxies)
 * would collapse `//`, resolve `.` and `..`, decode `%2d`, or read `\` as `/`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { pathProblem } from "./request_head.ts";
 * assert.equal(pathProblem("/metrics"), undefined);
 * assert.equal(pathProblem("/%2d/reload"), "is percent-encoded");
 * ```
 *
 * @param path A path, without query.
 * @returns What is wrong, or undefined when the path is routed exactly as written.
 */
export function pathProblem(path: string): string | undefined {
  if (!path.startsWith("/")) return 'does not start with "/"';
  const segments = path.slice(1).split("/");
  for (const [i, segment] of segments.entries()) {
    // A trailing slash is routed as sent (`/metrics/` is not `/metrics`); `//` is not.
    if (segment === "" && i < segments.length - 1) return "has an empty segment (//)";
    if (segment === "." || segment === "..") return "has a dot segment (. or ..)";
    if (segment.includes("%")) return "is percent-encoded";
    if (!SEGMENT.test(segment)) return "has a character outside RFC 3986 pchar";
  }
  return undefined;
}

/**
 * Whether a Host header is a name or address with an optional port of at most 65535, which
 * the URL parser takes too (it alone knows a well-formed IPv6 address).
 */
function isHost(value: string): boolean {
  const match = HOST.exec(value);
  return match !== null && Number(match[1] ?? 0) <= 65_535 && URL.canParse(`http://${value}/`);
}

function parseField(line: string): [string, string] {
  const colon = line.indexOf(":");
  if (colon <= 0) throw new BadRequestError(400, "malformed header field");
  const name = line.slice(0, colon);
  // A space before the colon or at the start (obsolete folding) is how requests get smuggled.
  if (!TOKEN.test(name)) throw new BadRequestError(400, "malformed header field name");
  const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
  if (!FIELD_VALUE.test(value)) throw new BadRequestError(400, "malformed header field value");
  return [name, value];
}

function parseContentLength(values: string[], maxBodyBytes: number): number {
  if (values.length === 0) return 0;
  // One field with one value: RFC 9112 lets a server merge repeated equal values, but a proxy in
  // front may not have, and the exporter takes no body worth that risk.
  const [only] = values;
  if (values.length !== 1 || only === undefined || !/^\d{1,15}$/.test(only.trim())) {
    throw new BadRequestError(400, "malformed Content-Length");
  }
  const length = Number(only);
  if (length > maxBodyBytes) {
    throw new BadRequestError(413, `request body over ${maxBodyBytes} bytes`);
  }
  return length;
}
