/**
 * The error base of the socket clients (QMP, libvirt): one vocabulary of reasons, so the same
 * condition has the same label in logs and in `kvm_exporter_*_errors{reason}`.
 *
 * @module
 */

/**
 * What kind of failure a {@linkcode ClientError} is:
 * - `timeout`: the deadline passed or the call was aborted (a busy or hung peer);
 * - `refused`: no socket at the path, not a socket, or nobody listens on it;
 * - `closed`: the peer closed the connection (a restart, or it dropped us);
 * - `protocol`: the peer sent something that is not the protocol;
 * - `remote`: the peer answered with an error reply;
 * - `permission`: Deno (a missing `--allow-*` flag) or the OS (owner, mode) refused the socket;
 * - `other`: anything else.
 *
 * A client documents which of them it raises.
 */
export type ClientErrorReason =
  | "timeout"
  | "refused"
  | "closed"
  | "protocol"
  | "remote"
  | "permission"
  | "other";

/** Options of {@linkcode ClientError}. */
export interface ClientErrorOptions<Code = never> {
  /** The underlying error. */
  cause?: unknown;
  /** The peer's own name for the error of an error reply. */
  code?: Code;
}

/**
 * A failed call of a socket client, with a one-line message saying where and what. A client
 * subclasses it, naming the type of its peer's error codes (QMP's error class is a string,
 * libvirt's `virErrorNumber` a number).
 *
 * @example Tell a stopped peer from a broken one
 * ```ts
 * import { ok } from "node:assert";
 * import { ClientError } from "./client_error.ts";
 *
 * const error: unknown = new ClientError("refused", 'Cannot connect to socket "/run/x.sock"');
 * ok(error instanceof ClientError && error.reason === "refused");
 * ```
 */
export class ClientError<Code = never> extends Error {
  /** What kind of failure this is. */
  readonly reason: ClientErrorReason;
  /** The peer's own name for the error, when it sent an error reply. */
  readonly code?: Code;

  /**
   * Creates an error.
   *
   * @param reason What kind of failure this is.
   * @param message One line saying what happened.
   * @param options The cause, and the peer's code of an error reply.
   */
  constructor(
    reason: ClientErrorReason,
    message: string,
    options: ClientErrorOptions<Code> = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.reason = reason;
    if (options.code !== undefined) this.code = options.code;
  }
}

/** Makes a client's own subclass of {@linkcode ClientError}, for the shared I/O helpers. */
export type ClientErrorFactory = (
  reason: ClientErrorReason,
  message: string,
  options: ClientErrorOptions,
) => ClientError<unknown>;

/**
 * An error's message on one line: runs of white space (newlines included) become one space.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { oneLine } from "./client_error.ts";
 *
 * strictEqual(oneLine(new Error("Requires read access\n  to x")), "Requires read access to x");
 * strictEqual(oneLine("a\tb "), "a b");
 * ```
 *
 * @param error An error, or text.
 * @returns Its message, on one line.
 */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s+/g, " ").trim();
}
