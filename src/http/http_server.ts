/**
 * A small HTTP/1.1 server over `Deno.listen` / `Deno.listenTls` with the bounds `Deno.serve`
 * lacks: a header-read timeout, an idle keep-alive timeout, a write timeout, head and body size
 * caps, a connection cap, accept errors (EMFILE) survived with a backoff, and a graceful
 * shutdown with a deadline. It serves any fetch-style handler, e.g. a Hono app's `app.fetch`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { Logger } from "../log/logger.ts";
import {
  BadRequestError,
  findHeadEnd,
  parseRequestHead,
  type RequestHead,
} from "./request_head.ts";
import { DEFAULT_HEADERS } from "./security_headers.ts";

/** Bounds of {@linkcode HttpServer}. */
export interface ServerLimits {
  /** Time from a connection's first byte (or its accept) to a complete request head and body. */
  headerTimeoutMs: number;
  /** Time a kept-alive connection may wait for its next request. */
  idleTimeoutMs: number;
  /** Time to write one response to a client that does not read. */
  writeTimeoutMs: number;
  /** Connections served at once; more are answered 503 and closed. */
  maxConnections: number;
  /** Largest request head. */
  maxHeadBytes: number;
  /** Largest request body. */
  maxBodyBytes: number;
}

/** Defaults of {@linkcode ServerLimits}. */
export const DEFAULT_LIMITS: ServerLimits = {
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  writeTimeoutMs: 30_000,
  maxConnections: 512,
  maxHeadBytes: 16_384,
  maxBodyBytes: 1_024,
};

/** Options of {@linkcode HttpServer}. */
export interface HttpServerOptions {
  /** Answers a request, e.g. a Hono app's `fetch`. */
  handler: (request: Request) => Response | Promise<Response>;
  /** Bounds. */
  limits: ServerLimits;
  /** Logger. */
  logger: Logger;
  /**
   * Headers of the server's own answers (malformed requests, the connection cap), asked for
   * each; default {@linkcode DEFAULT_HEADERS}.
   */
  headers?: () => readonly [string, string][];
}

/** Connections answered 503 at once beyond the cap; past this many they are closed unanswered. */
export const MAX_REFUSING = 64;
const MAX_ACCEPT_BACKOFF_MS = 1_000;
/** Accepts that work this long after a failure end an accept failure episode. */
const ACCEPT_QUIET_MS = 5_000;
const encoder = new TextEncoder();

/** One accepted connection and whether a request on it is being answered. */
interface Connection {
  conn: Deno.Conn;
  busy: boolean;
}

/** Closes a connection when its deadline passes. */
class CloseTimer {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #conn: Deno.Conn;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => closeQuietly(this.#conn), ms);
  }

  disarm(): void {
    clearTimeout(this.#timer);
  }
}

function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // Closed already.
  }
}

/**
 * The server. Call {@linkcode HttpServer.serve} with a listener; call it again with a new
 * listener to move (e.g. on a new TLS certificate): connections already open are kept.
 */
export class HttpServer {
  #options: HttpServerOptions;
  #listener: Deno.Listener | undefined;
  #accepting: Promise<void> = Promise.resolve();
  #scheme = "http";
  #connections = new Set<Connection>();
  #refusing = 0;
  #atCap = false;
  #acceptFailing = false;
  #recovery: ReturnType<typeof setTimeout> | undefined;
  #closing = false;
  #drained: (() => void) | undefined;

  /**
   * Creates a server that is not listening yet.
   *
   * @param options The handler, bounds and logger.
   */
  constructor(options: HttpServerOptions) {
    this.#options = options;
  }

  /** The address of the current listener. */
  get addr(): Deno.NetAddr {
    if (this.#listener === undefined) throw new Error("The server is not listening");
    return this.#listener.addr as Deno.NetAddr;
  }

  /** Connections open now (not counting those refused at the cap). */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Serves connections from `listener` from now on, closing the previous listener.
   *
   * @param listener A TCP or TLS listener.
   * @param scheme `http` or `https`, for the request URLs.
   */
  serve(listener: Deno.Listener, scheme: "http" | "https"): void {
    const previous = this.#listener;
    this.#listener = listener;
    this.#scheme = scheme;
    if (previous !== undefined) closeQuietly(previous);
    this.#accepting = this.#acceptLoop(listener);
  }

  /**
   * Stops accepting (until the next {@linkcode HttpServer.serve}); open connections stay.
   *
   * @returns When the accept loop has let go of the listener, so its port can be bound again.
   */
  async closeListener(): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    if (listener !== undefined) closeQuietly(listener);
    await this.#accepting;
  }

  /**
   * Stops accepting, closes idle connections, lets requests in flight finish until the
   * deadline, then closes whatever is left.
   *
   * @param deadlineMs How long requests in flight may take.
   * @returns When every connection is closed.
   */
  async shutdown(deadlineMs: number): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#recovery);
    if (this.#listener !== undefined) closeQuietly(this.#listener);
    for (const connection of this.#connections) {
      if (!connection.busy) closeQuietly(connection.conn);
    }
    if (this.#connections.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
        timer = setTimeout(resolve, deadlineMs);
      });
      clearTimeout(timer);
    }
    // Past the deadline: a handler still blocked (a read on a FIFO) is abandoned with its socket.
    for (const connection of this.#connections) closeQuietly(connection.conn);
    this.#connections.clear();
  }

  #headers(): readonly [string, string][] {
    return this.#options.headers?.() ?? DEFAULT_HEADERS;
  }

  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    let backoffMs = 10;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (this.#closing || this.#listener !== listener) return;
        if (error instanceof Deno.errors.BadResource) return;
        // EMFILE, ENFILE, ENOBUFS: transient; connections closing free what accept needs.
        this.#acceptFailed(error as Error);
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(backoffMs * 2, MAX_ACCEPT_BACKOFF_MS);
        continue;
      }
      this.#acceptWorked();
      backoffMs = 10;
      if (this.#closing) {
        closeQuietly(conn);
        continue;
      }
      if (this.#connections.size >= this.#options.limits.maxConnections) {
        this.#refuse(conn);
        continue;
      }
      if (this.#atCap) this.#options.logger.info("Below --web.max-connections again");
      this.#atCap = false;
      void this.#serveConnection(conn, this.#scheme);
    }
  }

  /**
   * Logs the first failure of an episode; a flood fails and recovers many times over as
   * connections come and go, so the episode ends only after a quiet spell.
   */
  #acceptFailed(error: Error): void {
    clearTimeout(this.#recovery);
    this.#recovery = undefined;
    if (this.#acceptFailing) return;
    this.#acceptFailing = true;
    this.#options.logger.error("Cannot accept connections; retrying until it works again", {
      err: error.message,
    });
  }

  #acceptWorked(): void {
    if (!this.#acceptFailing || this.#recovery !== undefined) return;
    this.#recovery = setTimeout(() => {
      this.#acceptFailing = false;
      this.#recovery = undefined;
      this.#options.logger.info("Accepting connections again");
    }, ACCEPT_QUIET_MS);
  }

  /** Answers 503 and closes, without waiting on the client for more than a second. */
  #refuse(conn: Deno.Conn): void {
    if (!this.#atCap) {
      this.#options.logger.warn("Too many connections; answering 503 to new ones", {
        limit: this.#options.limits.maxConnections,
      });
    }
    this.#atCap = true;
    if (this.#refusing >= MAX_REFUSING) return closeQuietly(conn);
    this.#refusing++;
    const deadline = new CloseTimer(conn);
    deadline.arm(1_000);
    const text = "Too many open connections (--web.max-connections)\n";
    writeAll(conn, plainResponse(503, text, this.#headers()))
      .catch(() => {})
      .finally(() => {
        deadline.disarm();
        closeQuietly(conn);
        this.#refusing--;
      });
  }

  async #serveConnection(conn: Deno.Conn, scheme: string): Promise<void> {
    const connection: Connection = { conn, busy: false };
    this.#connections.add(connection);
    const deadline = new CloseTimer(conn);
    const reader = new HeadReader(conn);
    try {
      for (let first = true; !this.#closing; first = false) {
        const keepAlive = await this.#serveRequest({ connection, reader, deadline, scheme, first });
        if (!keepAlive) break;
      }
    } catch (error) {
      // A client gone, a deadline passed, a reset: nothing to answer.
      this.#options.logger.debug("Connection closed", { err: (error as Error).message });
    } finally {
      deadline.disarm();
      closeQuietly(conn);
      this.#connections.delete(connection);
      if (this.#connections.size === 0) this.#drained?.();
    }
  }

  /** Reads, answers and writes one request; returns whether the connection stays open. */
  async #serveRequest(
    args: {
      connection: Connection;
      reader: HeadReader;
      deadline: CloseTimer;
      scheme: string;
      first: boolean;
    },
  ): Promise<boolean> {
    const { connection, reader, deadline, scheme, first } = args;
    const { limits } = this.#options;
    deadline.arm(first ? limits.headerTimeoutMs : limits.idleTimeoutMs);
    let head: RequestHead;
    let body: Uint8Array<ArrayBuffer>;
    try {
      const text = await reader.readHead({
        maxHeadBytes: limits.maxHeadBytes,
        onFirstByte: () => deadline.arm(limits.headerTimeoutMs),
      });
      if (text === undefined) return false;
      connection.busy = true;
      head = parseRequestHead(text, { maxBodyBytes: limits.maxBodyBytes });
      body = await reader.readBody(head.contentLength);
    } catch (error) {
      if (!(error instanceof BadRequestError)) throw error;
      deadline.arm(limits.writeTimeoutMs);
      const response = plainResponse(error.status, `${error.message}\n`, this.#headers());
      await writeAll(connection.conn, response);
      return false;
    }
    deadline.disarm();
    const response = await this.#answer(head, body, scheme);
    const keepAlive = head.keepAlive && !this.#closing;
    deadline.arm(limits.writeTimeoutMs);
    await writeResponse(connection.conn, await serialise(response, { head, keepAlive }));
    deadline.disarm();
    connection.busy = false;
    return keepAlive;
  }

  async #answer(head: RequestHead, body: Uint8Array, scheme: string): Promise<Response> {
    let request: Request;
    try {
      const headers = new Headers(head.headers);
      const host = headers.get("host") ?? "localhost";
      const withBody = head.method !== "GET" && head.method !== "HEAD" && body.length > 0;
      request = new Request(new URL(head.target, `${scheme}://${host}`), {
        // HEAD is answered as a GET whose body is left out: its head then carries the GET's
        // Content-Length on every path (RFC 9110 §9.3.2), not only where a handler sets one.
        method: head.method === "HEAD" ? "GET" : head.method,
        headers,
        ...(withBody ? { body: body as Uint8Array<ArrayBuffer> } : {}),
      });
    } catch {
      // The parser checked the Host and target, so this is a gap in it; the URL parser's
      // message would echo the client's bytes.
      return new Response("Bad request: cannot make a URL of the Host and target\n", {
        status: 400,
        headers: [...this.#headers()],
      });
    }
    try {
      return await this.#options.handler(request);
    } catch (error) {
      this.#options.logger.error("Request failed", { err: (error as Error).message });
      return new Response("Internal server error\n", { status: 500 });
    }
  }
}

/** Reads request heads and bodies off a connection, keeping what a client pipelined. */
class HeadReader {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** The next head as latin1 text, or undefined when the client closed between requests. */
  async readHead(
    options: { maxHeadBytes: number; onFirstByte: () => void },
  ): Promise<string | undefined> {
    if (this.#buffer.length > 0) options.onFirstByte();
    for (;;) {
      const end = findHeadEnd(this.#buffer);
      if (end > options.maxHeadBytes) {
        throw new BadRequestError(431, `request head over ${options.maxHeadBytes} bytes`);
      }
      if (end >= 0) {
        const text = latin1(this.#buffer.subarray(0, end));
        this.#buffer = this.#buffer.slice(end + 4);
        return text;
      }
      if (this.#buffer.length > options.maxHeadBytes) {
        throw new BadRequestError(431, `request head over ${options.maxHeadBytes} bytes`);
      }
      const empty = this.#buffer.length === 0;
      if (!await this.#fill()) {
        if (empty) return undefined;
        throw new Error("client closed mid-request");
      }
      if (empty) options.onFirstByte();
    }
  }

  /** Exactly `length` body bytes. */
  async readBody(length: number): Promise<Uint8Array<ArrayBuffer>> {
    while (this.#buffer.length < length) {
      if (!await this.#fill()) throw new Error("client closed mid-body");
    }
    const body = this.#buffer.slice(0, length);
    this.#buffer = this.#buffer.slice(length);
    return body;
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(4096);
    const n = await this.#conn.read(chunk);
    if (n === null) return false;
    const grown = new Uint8Array(this.#buffer.length + n);
    grown.set(this.#buffer);
    grown.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = grown;
    return true;
  }
}

/**
 * The bytes as ISO-8859-1, one code point per byte, as the parser reads them: `TextDecoder`'s
 * "latin1" is windows-1252, which turns bytes 0x80-0x9f (obs-text in a field value) into code
 * points such as U+20AC that the parser refuses. Node's "latin1" is ISO-8859-1, and native.
 */
function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** A complete `Connection: close` response with a text body and the security headers. */
function plainResponse(
  status: number,
  text: string,
  headers: readonly [string, string][],
): Uint8Array {
  const body = encoder.encode(text);
  const head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n` +
    headers.map(([name, value]) => `${name}: ${value}\r\n`).join("") +
    `Connection: close\r\n\r\n`;
  return concat(encoder.encode(head), body);
}

// Framing is ours: what the handler says about it is replaced.
const FRAMING_HEADERS = new Set([
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
]);

/** A response as written: its head, then its body's chunks as the handler made them. */
interface Serialised {
  head: Uint8Array;
  chunks: Uint8Array[];
}

/**
 * Bodies up to this size go out in one write with the head; a larger body is written from the
 * handler's own chunks, never copied: a scrape's answer is one buffer shared by every client
 * that asked in the same moment, and a client that does not read must not cost a copy of it.
 */
const COALESCE_BYTES = 64 * 1024;

/** The response's head and body: bodies here are bounded (a scrape's text), so they are read. */
async function serialise(
  response: Response,
  options: { head: RequestHead; keepAlive: boolean },
): Promise<Serialised> {
  const { head, keepAlive } = options;
  const chunks: Uint8Array[] = [];
  let length = 0;
  if (response.body !== null) {
    for await (const chunk of response.body) {
      chunks.push(chunk);
      length += chunk.length;
    }
  }
  const status = response.status;
  let text = `HTTP/1.1 ${status} ${response.statusText || STATUS_TEXT[status] || "Status"}\r\n`;
  for (const [name, value] of response.headers) {
    if (FRAMING_HEADERS.has(name)) continue;
    text += `${name}: ${value.replace(/[\r\n]/g, " ")}\r\n`;
  }
  text += `content-length: ${length}\r\n`;
  if (!keepAlive) text += "connection: close\r\n";
  else if (head.version === "HTTP/1.0") text += "connection: keep-alive\r\n";
  text += "\r\n";
  const bytes = encoder.encode(text);
  if (head.method === "HEAD") return { head: bytes, chunks: [] };
  if (length > COALESCE_BYTES) return { head: bytes, chunks };
  return { head: concat(bytes, ...chunks), chunks: [] };
}

async function writeResponse(conn: Deno.Conn, response: Serialised): Promise<void> {
  await writeAll(conn, response.head);
  for (const chunk of response.chunks) await writeAll(conn, chunk);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
