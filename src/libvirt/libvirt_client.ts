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
import { ByteReader } from "../system/byte_reader.ts";
import { ClientError, oneLine } from "../system/client_error.ts";
import { Deadline } from "../system/deadline.ts";
import { SerialQueue } from "../system/serial_queue.ts";
import { connectUnixSocket, isPeerGone } from "../system/unix_socket.ts";

/**
 * A failed libvirt call, with a one-line message saying where and what. libvirt raises every
 * `ClientErrorReason` in `system/client_error.ts`; `remote` is libvirt's error reply, and then `code` is libvirt's
 * `virErrorNumber`.
 */
export class LibvirtError extends ClientError<number> {}

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
  #calls = new SerialQueue();

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
    const deadline = callDeadline(this.#timeoutMs, options.signal, `calling ${procedure}`);
    return this.#calls.run(() => this.#run(procedure, body, decode, deadline))
      .finally(() => deadline.clear());
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
          { onExpire: () => connection.close() },
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
    const conn = await deadline.race(
      connectUnixSocket(this.#path, {
        what: "libvirt socket",
        refusedHint: "is libvirtd running?",
        error: (reason, message, options) => new LibvirtError(reason, message, options),
      }),
      { onLateResult: (late) => late.close() },
    );
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
      { onExpire: () => connection.close() },
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
        { onExpire: () => connection.close() },
      );
    }
    await deadline.race(
      connection.call(
        REMOTE_PROC.connectOpen,
        encodeConnectOpenArgs(this.#uri, VIR_CONNECT_RO),
        () => undefined,
      ),
      { onExpire: () => connection.close() },
    );
  }
}

/** A call's time budget, shared by connecting, opening and the call itself. */
function callDeadline(
  timeoutMs: number,
  signal: AbortSignal | undefined,
  activity: string,
): Deadline {
  const options = {
    timeoutMs,
    timeoutError: () =>
      new LibvirtError("timeout", `libvirt did not answer within ${timeoutMs} ms ${activity}`),
    abortError: (reason: unknown) =>
      new LibvirtError("timeout", `libvirt call aborted ${activity}`, { cause: reason }),
  };
  return new Deadline(signal === undefined ? options : { ...options, signal });
}

/** One open socket: frames out, frames in, one call at a time. */
class Connection {
  readonly #conn: Deno.UnixConn;
  readonly #path: string;
  readonly #maxFrameBytes: number;
  readonly #reader: ByteReader;
  #serial = 1;
  #closed = false;
  /** The procedure whose reply is awaited, for messages. */
  #procedure = 0;
  /** No byte arrived since the last call was sent. */
  silent = true;

  constructor(conn: Deno.UnixConn, path: string, maxFrameBytes: number) {
    this.#conn = conn;
    this.#path = path;
    this.#maxFrameBytes = maxFrameBytes;
    this.#reader = new ByteReader((buffer) => this.#read(buffer));
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
    this.#procedure = procedure;
    await this.#write(encodeMessage({
      program: REMOTE_PROGRAM,
      version: REMOTE_PROTOCOL_VERSION,
      procedure,
      type: MESSAGE_TYPE.call,
      serial,
      status: MESSAGE_STATUS.ok,
    }, body));
    while (true) {
      const message = await this.#readFrame();
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
    const detail = oneLine(error);
    return new LibvirtError(
      isPeerGone(error) ? "closed" : "other",
      `libvirt connection on "${this.#path}" failed while ${activity}: ${detail}`,
      { cause: error },
    );
  }

  /** Reads one whole frame and returns what follows its length word. */
  async #readFrame(): Promise<Uint8Array> {
    await this.#fillTo(4, 0);
    const buffered = this.#reader.buffered;
    const length = new DataView(buffered.buffer, buffered.byteOffset).getUint32(0);
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
    await this.#fillTo(length, length);
    return this.#reader.take(length).subarray(4, 4 + bodyLength);
  }

  /** Reads until `want` bytes are buffered; the peer closing first is a `closed` error. */
  async #fillTo(want: number, frameLength: number): Promise<void> {
    if (await this.#reader.fillTo(want)) return;
    const have = this.#reader.buffered.length;
    const where = have === 0
      ? "before replying"
      : `in the middle of a frame (${have} of ${frameLength || "?"} bytes)`;
    throw new LibvirtError(
      "closed",
      `libvirt closed the connection on "${this.#path}" ${where} to procedure ${this.#procedure}`,
    );
  }

  async #read(buffer: Uint8Array): Promise<number | null> {
    let n: number | null;
    try {
      n = await this.#conn.read(buffer);
    } catch (error) {
      throw this.#ioError(error, `waiting for the reply to procedure ${this.#procedure}`);
    }
    if (n !== null) this.silent = false;
    return n;
  }
}
