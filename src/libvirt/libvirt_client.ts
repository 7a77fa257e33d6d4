/**
 * A client for libvirt's RPC protocol over its unix socket, for the few
 * read-only calls the exporter makes. One connection is opened on first use
 * (`REMOTE_PROC_CONNECT_OPEN`, read-only) and reused; any error closes it and
 * the next call opens a new one. Every call is bounded by a deadline.
 *
 * @module
 */

import {
  decodeAuthListRet,
  decodeGetAllDomainStatsRet,
  decodeMessage,
  decodeRemoteError,
  type DomainStatsRecord,
  encodeConnectOpenArgs,
  encodeGetAllDomainStatsArgs,
  encodeGetXmlDescArgs,
  encodeMessage,
  frameBodyLength,
  KEEPALIVE_PROC,
  KEEPALIVE_PROGRAM,
  MESSAGE_STATUS,
  MESSAGE_TYPE,
  REMOTE_AUTH,
  REMOTE_PROC,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  REMOTE_STRING_MAX,
  type RemoteDomain,
  VIR_CONNECT_RO,
  VIR_NET_MESSAGE_LEN_MAX,
  VIR_NET_MESSAGE_MAX,
} from "./remote_protocol.ts";
import { XdrError, type XdrReader } from "./xdr.ts";

/**
 * What kind of failure a {@linkcode LibvirtError} is:
 * - `timeout`: the deadline passed (libvirtd busy or hung, or a peer that never answers);
 * - `refused`: no socket, or nobody listens on it (libvirtd not running);
 * - `closed`: libvirtd closed the connection (restart, or it dropped us);
 * - `protocol`: the peer sent something that is not libvirt's protocol;
 * - `remote`: libvirt answered with an error (then `code` is libvirt's `virErrorNumber`);
 * - `permission`: Deno or the OS refused the socket;
 * - `other`: anything else.
 */
export type LibvirtErrorReason =
  | "timeout"
  | "refused"
  | "closed"
  | "protocol"
  | "remote"
  | "permission"
  | "other";

/** Options of {@linkcode LibvirtError}. */
export interface LibvirtErrorOptions {
  /** libvirt's `virErrorNumber` of an error reply. */
  code?: number;
  /** The underlying error. */
  cause?: unknown;
}

/** A failed libvirt call, with a one-line message saying where and what. */
export class LibvirtError extends Error {
  /** What kind of failure this is. */
  readonly reason: LibvirtErrorReason;
  /** libvirt's `virErrorNumber`, for `remote` errors. */
  readonly code?: number;

  /**
   * Creates an error.
   *
   * @param reason What kind of failure this is.
   * @param message One line saying what happened.
   * @param options The libvirt error code and the cause.
   */
  constructor(reason: LibvirtErrorReason, message: string, options: LibvirtErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "LibvirtError";
    this.reason = reason;
    if (options.code !== undefined) this.code = options.code;
  }
}

/** Options of {@linkcode LibvirtClient}. */
export interface LibvirtClientOptions {
  /** The socket, e.g. `/run/libvirt/libvirt-sock-ro`. */
  path: string;
  /** The URI to open. Defaults to `qemu:///system`. */
  uri?: string;
  /** Deadline of each call, including connecting and opening, in milliseconds. */
  timeoutMs: number;
  /**
   * Largest accepted frame, length word included. Defaults to libvirt's own
   * limit, `VIR_NET_MESSAGE_MAX` + 4 (32 MiB).
   */
  maxFrameBytes?: number;
}

/** Options of one call. */
export interface CallOptions {
  /** Aborts the call (and drops the connection) early. */
  signal?: AbortSignal;
}

/** Default of {@linkcode LibvirtClientOptions.uri}. */
export const DEFAULT_LIBVIRT_URI = "qemu:///system";

/**
 * A libvirt connection, opened read-only on first use and reused.
 *
 * Deno permissions: `--allow-read=PATH --allow-write=PATH --allow-net=unix:PATH`.
 *
 * @example Read every running domain's vCPU and KVM stats
 * ```ts ignore
 * import { LibvirtClient } from "./libvirt_client.ts";
 * import { VIR_CONNECT_GET_ALL_DOMAINS_STATS, VIR_DOMAIN_STATS } from "./remote_protocol.ts";
 *
 * const client = new LibvirtClient({ path: "/run/libvirt/libvirt-sock-ro", timeoutMs: 2000 });
 * const records = await client.getAllDomainStats(
 *   VIR_DOMAIN_STATS.state | VIR_DOMAIN_STATS.vcpu | VIR_DOMAIN_STATS.vm,
 *   VIR_CONNECT_GET_ALL_DOMAINS_STATS.active | VIR_CONNECT_GET_ALL_DOMAINS_STATS.nowait,
 * );
 * client.close();
 * ```
 */
export class LibvirtClient {
  readonly #path: string;
  readonly #uri: string;
  readonly #timeoutMs: number;
  readonly #maxFrameBytes: number;
  #connection: Connection | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * Creates a client; nothing is opened until the first call.
   *
   * @param options Socket, URI, deadline and frame limit.
   */
  constructor(options: LibvirtClientOptions) {
    const { timeoutMs, maxFrameBytes = VIR_NET_MESSAGE_LEN_MAX + VIR_NET_MESSAGE_MAX } = options;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(
        `Invalid libvirt timeout: expected a positive number of ms, got ${timeoutMs}`,
      );
    }
    if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 28) {
      throw new RangeError(
        `Invalid libvirt frame limit: expected an integer ≥ 28, got ${maxFrameBytes}`,
      );
    }
    this.#path = options.path;
    this.#uri = options.uri ?? DEFAULT_LIBVIRT_URI;
    this.#timeoutMs = timeoutMs;
    this.#maxFrameBytes = maxFrameBytes;
  }

  /**
   * Calls `REMOTE_PROC_CONNECT_GET_ALL_DOMAIN_STATS` for all domains.
   *
   * @param stats `virDomainStatsTypes` bits ({@linkcode VIR_DOMAIN_STATS}).
   * @param flags `virConnectGetAllDomainStatsFlags` bits.
   * @param options An abort signal.
   * @returns One record per domain.
   * @throws {LibvirtError} On any failure.
   */
  getAllDomainStats(
    stats: number,
    flags: number,
    options: CallOptions = {},
  ): Promise<DomainStatsRecord[]> {
    return this.#call(
      "connectGetAllDomainStats",
      encodeGetAllDomainStatsArgs(stats, flags),
      decodeGetAllDomainStatsRet,
      options,
    );
  }

  /**
   * Calls `REMOTE_PROC_DOMAIN_GET_XML_DESC`: the live domain XML, without
   * secrets (flags 0, which a read-only connection may ask for).
   *
   * @param domain The domain, as a stats record names it.
   * @param options An abort signal.
   * @returns The XML text.
   * @throws {LibvirtError} On any failure.
   */
  getDomainXml(domain: RemoteDomain, options: CallOptions = {}): Promise<string> {
    return this.#call(
      "domainGetXmlDesc",
      encodeGetXmlDescArgs(domain, 0),
      (reader) => reader.string(REMOTE_STRING_MAX),
      options,
    );
  }

  /** Closes the connection, if open. The client stays usable: a later call reconnects. */
  close(): void {
    this.#connection?.close();
    this.#connection = undefined;
  }

  #call<T>(
    procedure: keyof typeof REMOTE_PROC,
    body: Uint8Array,
    decode: (reader: XdrReader) => T,
    options: CallOptions,
  ): Promise<T> {
    const deadline = new Deadline(this.#timeoutMs, options.signal, `calling ${procedure}`);
    const run = this.#tail.then(() => this.#run(procedure, body, decode, deadline));
    this.#tail = run.catch(() => {});
    return run.finally(() => deadline.clear());
  }

  async #run<T>(
    procedure: keyof typeof REMOTE_PROC,
    body: Uint8Array,
    decode: (reader: XdrReader) => T,
    deadline: Deadline,
  ): Promise<T> {
    const attempt = async (): Promise<T> => {
      try {
        const connection = await this.#open(deadline);
        return await deadline.race(
          connection.call(REMOTE_PROC[procedure], body, decode),
          () => connection.close(),
        );
      } catch (error) {
        this.close();
        throw error;
      }
    };
    const reused = this.#connection;
    try {
      return await attempt();
    } catch (error) {
      // A connection that idled across a libvirtd restart is dead before we speak: one retry.
      if (reused?.silent && error instanceof LibvirtError && error.reason === "closed") {
        return await attempt();
      }
      throw error;
    }
  }

  async #open(deadline: Deadline): Promise<Connection> {
    if (this.#connection !== undefined) return this.#connection;
    const conn = await deadline.race(connectSocket(this.#path), undefined, (late) => late.close());
    const connection = new Connection(conn, this.#path, this.#maxFrameBytes);
    try {
      await this.#handshake(connection, deadline);
    } catch (error) {
      connection.close();
      throw error;
    }
    this.#connection = connection;
    return connection;
  }

  /** Authenticates (none, or polkit) and opens the URI read-only. */
  async #handshake(connection: Connection, deadline: Deadline): Promise<void> {
    const authTypes = await deadline.race(
      connection.call(REMOTE_PROC.authList, new Uint8Array(0), decodeAuthListRet),
      () => connection.close(),
    );
    if (!authTypes.includes(REMOTE_AUTH.none)) {
      // A non-root client of a polkit-enabled build (Debian's): libvirtd asks polkit, whose
      // default policy lets anyone monitor (org.libvirt.unix.monitor).
      if (!authTypes.includes(REMOTE_AUTH.polkit)) {
        throw new LibvirtError(
          "permission",
          `libvirt socket "${this.#path}" requires authentication the exporter lacks (types ${
            authTypes.join(", ")
          }; 1 is SASL): set auth_unix_ro = "none" or "polkit"`,
        );
      }
      await deadline.race(
        connection.call(REMOTE_PROC.authPolkit, new Uint8Array(0), (reader) => reader.int()),
        () => connection.close(),
      );
    }
    await deadline.race(
      connection.call(
        REMOTE_PROC.connectOpen,
        encodeConnectOpenArgs(this.#uri, VIR_CONNECT_RO),
        () => undefined,
      ),
      () => connection.close(),
    );
  }
}

/** A call's time budget, shared by connecting, opening and the call itself. */
class Deadline {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expired: Promise<never>;
  #onAbort: (() => void) | undefined;
  #signal: AbortSignal | undefined;

  constructor(timeoutMs: number, signal: AbortSignal | undefined, activity: string) {
    this.#signal = signal;
    this.#expired = new Promise<never>((_, reject) => {
      this.#timer = setTimeout(
        () =>
          reject(
            new LibvirtError(
              "timeout",
              `libvirt did not answer within ${timeoutMs} ms ${activity}`,
            ),
          ),
        timeoutMs,
      );
      if (signal !== undefined) {
        this.#onAbort = () =>
          reject(
            new LibvirtError("timeout", `libvirt call aborted ${activity}`, {
              cause: signal.reason,
            }),
          );
        if (signal.aborted) this.#onAbort();
        else signal.addEventListener("abort", this.#onAbort, { once: true });
      }
    });
    this.#expired.catch(() => {});
  }

  /** Waits for `work`, or rejects when the deadline passes, after running `onExpire`. */
  async race<T>(
    work: Promise<T>,
    onExpire?: () => void,
    onLateResult?: (value: T) => void,
  ): Promise<T> {
    try {
      return await Promise.race([work, this.#expired]);
    } catch (error) {
      if (error instanceof LibvirtError && error.reason === "timeout") {
        onExpire?.();
        work.then((value) => onLateResult?.(value), () => {});
      }
      throw error;
    }
  }

  clear(): void {
    clearTimeout(this.#timer);
    if (this.#onAbort !== undefined) this.#signal?.removeEventListener("abort", this.#onAbort);
  }
}

async function connectSocket(path: string): Promise<Deno.UnixConn> {
  try {
    return await Deno.connect({ transport: "unix", path });
  } catch (error) {
    throw connectError(path, error);
  }
}

function connectError(path: string, error: unknown): LibvirtError {
  const detail = oneLine(error instanceof Error ? error.message : String(error));
  if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.ConnectionRefused) {
    return new LibvirtError(
      "refused",
      `Cannot connect to libvirt socket "${path}" (is libvirtd running?): ${detail}`,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.NotCapable || /--allow-/.test(detail)) {
    const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
    return new LibvirtError(
      "permission",
      `Deno lacks permission to connect to libvirt socket "${path}": run with --allow-read=${path} --allow-write=${path} --allow-net=unix:${absolute}`,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new LibvirtError(
      "permission",
      `Permission denied by the OS on libvirt socket "${path}" (check its owner and mode): ${detail}`,
      { cause: error },
    );
  }
  return new LibvirtError("other", `Cannot connect to libvirt socket "${path}": ${detail}`, {
    cause: error,
  });
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

const READ_CHUNK_BYTES = 64 * 1024;

/** One open socket: frames out, frames in, one call at a time. */
class Connection {
  readonly #conn: Deno.UnixConn;
  readonly #path: string;
  readonly #maxFrameBytes: number;
  #serial = 1;
  #buffered: Uint8Array = new Uint8Array(0);
  #closed = false;
  /** No byte arrived since the last call was sent. */
  silent = true;

  constructor(conn: Deno.UnixConn, path: string, maxFrameBytes: number) {
    this.#conn = conn;
    this.#path = path;
    this.#maxFrameBytes = maxFrameBytes;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer.
    }
  }

  async call<T>(procedure: number, body: Uint8Array, decode: (reader: XdrReader) => T): Promise<T> {
    const serial = this.#serial++;
    this.silent = true;
    await this.#write(encodeMessage({
      program: REMOTE_PROGRAM,
      version: REMOTE_PROTOCOL_VERSION,
      procedure,
      type: MESSAGE_TYPE.call,
      serial,
      status: MESSAGE_STATUS.ok,
    }, body));
    while (true) {
      const message = await this.#readFrame(procedure);
      const { header, body: reader } = this.#decode(() => decodeMessage(message), procedure);
      if (header.program === KEEPALIVE_PROGRAM) {
        await this.#answerKeepalive(header.procedure);
        continue;
      }
      // Events (type MESSAGE) and stray replies are not ours to handle.
      if (header.program !== REMOTE_PROGRAM || header.type !== MESSAGE_TYPE.reply) continue;
      if (header.serial !== serial || header.procedure !== procedure) {
        throw this.#protocolError(
          `reply to serial ${header.serial} procedure ${header.procedure}, expected serial ${serial} procedure ${procedure}`,
        );
      }
      if (header.status === MESSAGE_STATUS.error) {
        const remote = this.#decode(() => decodeRemoteError(reader), procedure);
        throw new LibvirtError(
          "remote",
          `libvirt error ${remote.code} (domain ${remote.domain}) in procedure ${procedure}: ${
            oneLine(remote.message ?? "no message")
          }`,
          { code: remote.code },
        );
      }
      if (header.status !== MESSAGE_STATUS.ok) {
        throw this.#protocolError(`reply with status ${header.status} to procedure ${procedure}`);
      }
      const value = this.#decode(() => decode(reader), procedure);
      if (reader.remaining !== 0) {
        throw this.#protocolError(
          `${reader.remaining} bytes left over in the reply to procedure ${procedure}`,
        );
      }
      return value;
    }
  }

  #decode<T>(fn: () => T, procedure: number): T {
    try {
      return fn();
    } catch (error) {
      if (error instanceof XdrError) {
        throw this.#protocolError(`in the reply to procedure ${procedure}: ${error.message}`);
      }
      throw error;
    }
  }

  #protocolError(detail: string): LibvirtError {
    return new LibvirtError("protocol", `Invalid libvirt message on "${this.#path}": ${detail}`);
  }

  async #answerKeepalive(procedure: number): Promise<void> {
    if (procedure !== KEEPALIVE_PROC.ping) return;
    await this.#write(encodeMessage({
      program: KEEPALIVE_PROGRAM,
      version: 1,
      procedure: KEEPALIVE_PROC.pong,
      type: MESSAGE_TYPE.message,
      serial: 0,
      status: MESSAGE_STATUS.ok,
    }, new Uint8Array(0)));
  }

  async #write(bytes: Uint8Array): Promise<void> {
    try {
      while (bytes.length > 0) bytes = bytes.subarray(await this.#conn.write(bytes));
    } catch (error) {
      throw this.#ioError(error, "writing");
    }
  }

  #ioError(error: unknown, activity: string): LibvirtError {
    const detail = oneLine(error instanceof Error ? error.message : String(error));
    const closed = error instanceof Deno.errors.BrokenPipe ||
      error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BadResource;
    return new LibvirtError(
      closed ? "closed" : "other",
      `libvirt connection on "${this.#path}" failed while ${activity}: ${detail}`,
      { cause: error },
    );
  }

  /** Reads one whole frame and returns what follows its length word. */
  async #readFrame(procedure: number): Promise<Uint8Array> {
    await this.#fill(4, procedure, 0);
    const length = new DataView(this.#buffered.buffer, this.#buffered.byteOffset).getUint32(0);
    let bodyLength: number;
    try {
      bodyLength = frameBodyLength(length);
    } catch (error) {
      throw this.#protocolError((error as Error).message);
    }
    if (length > this.#maxFrameBytes) {
      throw this.#protocolError(
        `frame of ${length} bytes exceeds the limit of ${this.#maxFrameBytes}`,
      );
    }
    await this.#fill(length, procedure, length);
    const frame = this.#buffered.slice(4, 4 + bodyLength);
    this.#buffered = this.#buffered.slice(length);
    return frame;
  }

  /** Reads until `want` bytes are buffered. */
  async #fill(want: number, procedure: number, frameLength: number): Promise<void> {
    const chunks: Uint8Array[] = [this.#buffered];
    let have = this.#buffered.length;
    const chunk = new Uint8Array(READ_CHUNK_BYTES);
    while (have < want) {
      let n: number | null;
      try {
        n = await this.#conn.read(chunk);
      } catch (error) {
        throw this.#ioError(error, `waiting for the reply to procedure ${procedure}`);
      }
      if (n === null) {
        const where = have === 0
          ? "before replying"
          : `in the middle of a frame (${have} of ${frameLength || "?"} bytes)`;
        throw new LibvirtError(
          "closed",
          `libvirt closed the connection on "${this.#path}" ${where} to procedure ${procedure}`,
        );
      }
      this.silent = false;
      chunks.push(chunk.slice(0, n));
      have += n;
    }
    if (chunks.length > 1) {
      const joined = new Uint8Array(have);
      let offset = 0;
      for (const part of chunks) {
        joined.set(part, offset);
        offset += part.length;
      }
      this.#buffered = joined;
    }
  }
}
