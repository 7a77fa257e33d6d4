/**
 * A minimal QMP (QEMU Machine Protocol) client for short sessions: connect to a monitor's
 * unix socket, read the greeting, negotiate capabilities, run a few commands, close.
 *
 * QEMU serves one client per monitor. A second client is accepted by the kernel but gets no
 * greeting until the first leaves, so every session is bounded by a deadline.
 *
 * @module
 */

import { ByteLimitError, ByteReader } from "../system/byte_reader.ts";
import { ClientError, oneLine } from "../system/client_error.ts";
import { Deadline } from "../system/deadline.ts";
import { SerialQueue } from "../system/serial_queue.ts";
import { connectUnixSocket, isPeerGone } from "../system/unix_socket.ts";

/**
 * Error of a QMP session. `reason` (`ClientErrorReason` in `system/client_error.ts`, shared with libvirt) says
 * what kind of failure it was; QMP raises these:
 * - `timeout`: the deadline passed (e.g. another client holds the monitor);
 * - `refused`: the socket is missing, not a socket, or nobody listens on it;
 * - `closed`: the peer closed the connection (early, in the middle of a message, or reset);
 * - `protocol`: the peer is not QMP, sent something unparsable, or replied with an error (then
 *   `code` is the QMP error class, e.g. `"CommandNotFound"` for `query-stats` on QEMU before
 *   7.1);
 * - `permission`: Deno (a missing `--allow-*` flag) or the OS refused the socket;
 * - `other`: anything else.
 *
 * @example Tell an old QEMU from a broken one
 * ```ts
 * import { ok } from "node:assert";
 * import { QmpError } from "./qmp_client.ts";
 *
 * function isOldQemu(error: unknown): boolean {
 *   return error instanceof QmpError && error.code === "CommandNotFound";
 * }
 * ok(isOldQemu(new QmpError("protocol", "...", { code: "CommandNotFound" })));
 * ```
 */
export class QmpError extends ClientError<string> {}

/** Options of {@linkcode withQmpSession}. */
export interface QmpSessionOptions {
  /** Path of the monitor's unix socket (`-qmp unix:PATH,server=on,wait=off`). */
  path: string;
  /** Deadline for the whole session (connect, greeting, and the callback), in milliseconds. */
  timeoutMs: number;
  /** Longest accepted message line, in bytes. Defaults to 1 MiB. */
  maxLineBytes?: number;
}

/** An open, negotiated QMP session. */
export interface QmpSession {
  /** QEMU version from the greeting. */
  readonly version: { major: number; minor: number; micro: number };
  /**
   * Runs one command and resolves to the `return` member of its reply. Calls are sent one at
   * a time, in call order. Integers beyond 2^53 - 1 in the reply are `bigint`s.
   *
   * @throws {QmpError} `protocol` with `code` when QEMU replies with an error.
   */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown>;
}

/** Default of {@linkcode QmpSessionOptions.maxLineBytes}: 1 MiB. */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

const NEWLINE = 0x0a;

/**
 * Opens a QMP session on a unix socket, runs `fn` with it, and always closes the connection.
 *
 * The whole call (connect, greeting, `qmp_capabilities` and `fn`) is bounded by
 * `options.timeoutMs`: when it expires the connection is closed and a `timeout`
 * {@linkcode QmpError} is thrown, even if the peer never answers. No timer is left running.
 *
 * Deno permissions: connecting needs `--allow-read=PATH --allow-write=PATH
 * --allow-net=unix:PATH` (the last with the absolute path).
 *
 * @param options Socket path, deadline and line limit.
 * @param fn Work to do with the session; its result is returned.
 * @returns What `fn` returned.
 * @throws {QmpError} On timeout, refused connection, protocol failure or missing permission.
 *
 * @example Read the vCPUs of a VM
 * ```ts ignore
 * import { withQmpSession } from "./qmp_client.ts";
 *
 * const cpus = await withQmpSession(
 *   { path: "/run/qemu/vm1.qmp", timeoutMs: 2000 },
 *   (session) => session.execute("query-cpus-fast"),
 * );
 * ```
 */
export async function withQmpSession<T>(
  options: QmpSessionOptions,
  fn: (session: QmpSession) => Promise<T>,
): Promise<T> {
  const { path, timeoutMs, maxLineBytes = DEFAULT_MAX_LINE_BYTES } = options;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`Invalid QMP timeout: expected a positive number of ms, got ${timeoutMs}`);
  }
  if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes <= 0) {
    throw new RangeError(
      `Invalid QMP line limit: expected a positive integer, got ${maxLineBytes}`,
    );
  }

  const state: SessionState = { path, activity: "connecting", closed: false };
  let channel: QmpChannel | undefined;
  const deadline = new Deadline({
    timeoutMs,
    timeoutError: () =>
      new QmpError(
        "timeout",
        `QMP session on "${path}" timed out after ${timeoutMs} ms while ${state.activity}` +
          (state.activity === "waiting for the greeting"
            ? " (another client may hold the monitor)"
            : ""),
      ),
  });

  const work = (async (): Promise<T> => {
    const conn = await connectUnixSocket(path, {
      what: "QMP socket",
      error: (reason, message, options) => new QmpError(reason, message, options),
    });
    if (state.closed) {
      conn.close();
      throw closedError(path);
    }
    channel = new QmpChannel(conn, state, maxLineBytes);
    const session = await handshake(channel);
    return await fn(session);
  })();

  try {
    return await deadline.race(work);
  } finally {
    deadline.clear();
    state.closed = true;
    // A late failure of the abandoned work (reads cut short by the close) is not reported.
    work.catch(() => {});
    if (channel !== undefined) await channel.close();
  }
}

/**
 * Parses one QMP message line. Integers that do not fit in a double exactly (beyond
 * 2^53 - 1, such as u64 statistics) become `bigint`s with their exact value; every other
 * number stays a `number`.
 *
 * @param text One JSON text, without the line terminator.
 * @returns The parsed value.
 * @throws {SyntaxError} If the text is not JSON.
 *
 * @example Keep a u64 exact
 * ```ts
 * import { deepStrictEqual } from "node:assert";
 * import { parseQmpJson } from "./qmp_client.ts";
 *
 * deepStrictEqual(parseQmpJson('{"value":18446744073709551615}'), { value: 18446744073709551615n });
 * ```
 */
export function parseQmpJson(text: string): unknown {
  return parseWithSource(text, reviveBigIntegers);
}

type ReviverContext = { source?: string } | undefined;
const parseWithSource = JSON.parse as (
  text: string,
  reviver: (this: unknown, key: string, value: unknown, context: ReviverContext) => unknown,
) => unknown;

function reviveBigIntegers(_key: string, value: unknown, context: ReviverContext): unknown {
  if (typeof value !== "number" || Number.isSafeInteger(value) || !Number.isInteger(value)) {
    return value;
  }
  const source = context?.source;
  if (source === undefined) {
    throw new SyntaxError("Cannot keep large JSON integers exact: JSON.parse gives no source text");
  }
  return /^-?\d+$/.test(source) ? BigInt(source) : value;
}

interface SessionState {
  path: string;
  /** What the session is doing, for the timeout message. */
  activity: string;
  closed: boolean;
}

type Message = Record<string, unknown>;

async function handshake(channel: QmpChannel): Promise<QmpSession> {
  channel.state.activity = "waiting for the greeting";
  const greeting = await channel.readMessage();
  if (greeting === undefined) {
    throw new QmpError(
      "closed",
      `QMP peer on "${channel.state.path}" closed the connection before the greeting`,
    );
  }
  const version = parseGreeting(greeting, channel.state.path);
  const session = new Session(channel, version);
  await session.execute("qmp_capabilities");
  return session;
}

function parseGreeting(greeting: Message, path: string): QmpSession["version"] {
  const qmp = greeting.QMP;
  if (!isObject(qmp)) {
    throw new QmpError(
      "protocol",
      `Peer on "${path}" is not a QMP server: its first message has no "QMP" member: ${
        preview(JSON.stringify(greeting, bigintToString))
      }`,
    );
  }
  const qemu = isObject(qmp.version) ? qmp.version.qemu : undefined;
  if (
    !isObject(qemu) || !Number.isInteger(qemu.major) || !Number.isInteger(qemu.minor) ||
    !Number.isInteger(qemu.micro)
  ) {
    throw new QmpError(
      "protocol",
      `QMP greeting on "${path}" has no valid "version.qemu": ${
        preview(JSON.stringify(qmp, bigintToString))
      }`,
    );
  }
  return { major: qemu.major as number, minor: qemu.minor as number, micro: qemu.micro as number };
}

class Session implements QmpSession {
  readonly version: QmpSession["version"];
  #channel: QmpChannel;
  #nextId = 1;
  #calls = new SerialQueue();

  constructor(channel: QmpChannel, version: QmpSession["version"]) {
    this.#channel = channel;
    this.version = version;
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    return this.#calls.run(() => this.#run(command, args));
  }

  async #run(command: string, args: Record<string, unknown> | undefined): Promise<unknown> {
    const channel = this.#channel;
    const path = channel.state.path;
    const id = `kvm_exporter-${this.#nextId++}`;
    const request: Message = { execute: command, id };
    if (args !== undefined) request.arguments = args;
    await channel.write(`${JSON.stringify(request)}\n`);
    channel.state.activity = `waiting for the reply to "${command}"`;
    while (true) {
      const message = await channel.readMessage();
      if (message === undefined) {
        throw new QmpError(
          "closed",
          `QMP peer on "${path}" closed the connection before replying to "${command}"`,
        );
      }
      if ("event" in message) continue;
      if (message.id !== undefined && message.id !== id) {
        throw channel.fail(
          new QmpError(
            "protocol",
            `QMP reply on "${path}" has id ${JSON.stringify(message.id)}, expected "${id}"`,
          ),
        );
      }
      channel.state.activity = "running the session";
      if ("return" in message) return message.return;
      if (isObject(message.error)) {
        const code = String(message.error.class);
        const desc = oneLine(String(message.error.desc));
        throw new QmpError(
          "protocol",
          `QMP command "${command}" on "${path}" failed: ${code}: ${desc}`,
          { code },
        );
      }
      throw channel.fail(
        new QmpError(
          "protocol",
          `QMP reply to "${command}" on "${path}" has neither "return" nor "error": ${
            preview(JSON.stringify(message, bigintToString))
          }`,
        ),
      );
    }
  }
}

/** Line-framed JSON over one connection; remembers the first framing failure. */
class QmpChannel {
  readonly state: SessionState;
  #conn: Deno.UnixConn;
  #maxLineBytes: number;
  #reader: ByteReader;
  #decoder = new TextDecoder("utf-8", { fatal: true });
  #encoder = new TextEncoder();
  #pending = new Set<Promise<unknown>>();
  #failure: QmpError | undefined;
  #connClosed = false;

  constructor(conn: Deno.UnixConn, state: SessionState, maxLineBytes: number) {
    this.#conn = conn;
    this.state = state;
    this.#maxLineBytes = maxLineBytes;
    this.#reader = new ByteReader((buffer) => {
      this.#check();
      return this.#track(this.#conn.read(buffer));
    });
  }

  /** Records a failure that leaves the stream unusable, and returns it. */
  fail(error: QmpError): QmpError {
    this.#failure ??= error;
    return error;
  }

  /** Reads the next message; `undefined` at a clean end of stream. */
  async readMessage(): Promise<Message | undefined> {
    while (true) {
      const line = await this.#readLine();
      if (line === undefined) return undefined;
      if (line.trim() === "") continue;
      let value: unknown;
      try {
        value = parseQmpJson(line);
      } catch (error) {
        throw this.fail(
          new QmpError(
            "protocol",
            `Invalid JSON from QMP peer on "${this.state.path}": ${oneLine(error)}: ${
              preview(line)
            }`,
            { cause: error },
          ),
        );
      }
      if (!isObject(value)) {
        throw this.fail(
          new QmpError(
            "protocol",
            `QMP peer on "${this.state.path}" sent a non-object message: ${preview(line)}`,
          ),
        );
      }
      return value;
    }
  }

  async write(text: string): Promise<void> {
    this.#check();
    let bytes = this.#encoder.encode(text);
    while (bytes.length > 0) {
      const written = await this.#track(this.#conn.write(bytes));
      bytes = bytes.subarray(written);
    }
  }

  /** Closes the connection and waits for its in-flight reads and writes to settle. */
  async close(): Promise<void> {
    if (!this.#connClosed) {
      this.#connClosed = true;
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
    }
    await Promise.allSettled([...this.#pending]);
  }

  async #readLine(): Promise<string | undefined> {
    this.#check();
    let raw: Uint8Array | undefined;
    try {
      raw = await this.#reader.readUntil(NEWLINE, this.#maxLineBytes);
    } catch (error) {
      if (error instanceof ByteLimitError) throw this.#tooLong();
      throw error;
    }
    if (raw === undefined) {
      const rest = this.#reader.buffered;
      if (rest.length === 0) return undefined;
      throw this.fail(
        new QmpError(
          "closed",
          `QMP peer on "${this.state.path}" closed the connection in the middle of a message: ${
            preview(new TextDecoder().decode(rest))
          }`,
        ),
      );
    }
    try {
      return this.#decoder.decode(raw).replace(/\r$/, "");
    } catch (error) {
      throw this.fail(
        new QmpError("protocol", `QMP peer on "${this.state.path}" sent invalid UTF-8`, {
          cause: error,
        }),
      );
    }
  }

  async #track<T>(op: Promise<T>): Promise<T> {
    this.#pending.add(op);
    try {
      return await op;
    } catch (error) {
      this.#check();
      throw this.fail(this.#ioError(error));
    } finally {
      this.#pending.delete(op);
    }
  }

  #ioError(error: unknown): QmpError {
    const detail = oneLine(error);
    return isPeerGone(error)
      ? new QmpError(
        "closed",
        `QMP peer on "${this.state.path}" closed the connection: ${detail}`,
        {
          cause: error,
        },
      )
      : new QmpError("other", `I/O error on QMP socket "${this.state.path}": ${detail}`, {
        cause: error,
      });
  }

  #check(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.state.closed || this.#connClosed) throw closedError(this.state.path);
  }

  #tooLong(): QmpError {
    return this.fail(
      new QmpError(
        "protocol",
        `QMP peer on "${this.state.path}" sent a line longer than ${this.#maxLineBytes} bytes`,
      ),
    );
  }
}

function closedError(path: string): QmpError {
  return new QmpError("other", `QMP session on "${path}" is closed`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function preview(text: string): string {
  const line = oneLine(text);
  return JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}...` : line);
}

function bigintToString(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}
