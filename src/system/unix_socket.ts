/**
 * Connecting to a unix socket with one classification of what went wrong, and one hint naming
 * the Deno flags a socket needs. Shared by the QMP and libvirt clients.
 *
 * @module
 */

import { type ClientErrorFactory, oneLine } from "./client_error.ts";

/** Options of {@linkcode connectUnixSocket}. */
export interface ConnectUnixOptions {
  /** What the socket is, for messages, e.g. `"QMP socket"`. */
  what: string;
  /** Said where nobody listens, e.g. `"is libvirtd running?"`. */
  refusedHint?: string;
  /** Makes the client's error. */
  error: ClientErrorFactory;
}

/**
 * Connects to a unix socket. A failure is the client's error with one line saying what to do:
 * - `refused`: the path does not exist, is not a socket, or nobody listens on it;
 * - `permission`: Deno lacks a flag (the message names the three flags a socket needs), or the
 *   OS refused (owner, mode);
 * - `other`: anything else.
 *
 * Deno permissions: `--allow-read=PATH --allow-write=PATH --allow-net=unix:PATH`.
 *
 * @example A missing socket is `refused`
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { ClientError } from "./client_error.ts";
 * import { connectUnixSocket } from "./unix_socket.ts";
 *
 * await rejects(
 *   connectUnixSocket("/nonexistent/x.sock", {
 *     what: "test socket",
 *     error: (reason, message, options) => new ClientError(reason, message, options),
 *   }),
 *   (e: ClientError) => e.reason === "refused" && /does not exist/.test(e.message),
 * );
 * ```
 *
 * @param path The socket.
 * @param options What it is (the start of a sentence, e.g. `"QMP socket"`), and the error to make.
 * @returns The connection.
 * @throws {ClientError} As above, made by `options.error`.
 */
export async function connectUnixSocket(
  path: string,
  options: ConnectUnixOptions,
): Promise<Deno.UnixConn> {
  try {
    return await Deno.connect({ transport: "unix", path });
  } catch (error) {
    throw connectError(path, error, options);
  }
}

function connectError(path: string, error: unknown, options: ConnectUnixOptions): Error {
  const { what, refusedHint } = options;
  const detail = oneLine(error);
  const hint = refusedHint === undefined ? "" : ` (${refusedHint})`;
  const make = (reason: Parameters<ClientErrorFactory>[0], message: string) =>
    options.error(reason, message, { cause: error });
  if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
    return make(
      "refused",
      `Cannot connect to ${what} "${path}"${hint}: it does not exist: ${detail}`,
    );
  }
  if (error instanceof Deno.errors.ConnectionRefused) {
    return make(
      "refused",
      `Cannot connect to ${what} "${path}"${hint}: not a socket, or nobody listens: ${detail}`,
    );
  }
  const missingFlag = error instanceof Deno.errors.NotCapable ||
    (error instanceof Deno.errors.PermissionDenied && /--allow-/.test(detail));
  if (missingFlag) {
    return make(
      "permission",
      `Deno lacks permission to connect to ${what} "${path}": run with ${
        socketFlags(path)
      }; the compiled kvm_exporter reaches sockets under /run and /var/run only (${detail})`,
    );
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return make(
      "permission",
      `Permission denied by the OS on ${what} "${path}" (check its owner and mode): ${detail}`,
    );
  }
  return make("other", `Cannot connect to ${what} "${path}": ${detail}`);
}

/**
 * The Deno flags that connecting to a unix socket needs (`--allow-net=unix:` wants an absolute
 * path).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { socketFlags } from "./unix_socket.ts";
 *
 * strictEqual(
 *   socketFlags("/run/a.sock"),
 *   "--allow-read=/run/a.sock --allow-write=/run/a.sock --allow-net=unix:/run/a.sock",
 * );
 * ```
 *
 * @param path The socket.
 * @returns The three flags, space-separated.
 */
export function socketFlags(path: string): string {
  const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  return `--allow-read=${path} --allow-write=${path} --allow-net=unix:${absolute}`;
}

/**
 * Whether an I/O error on a connection means the peer closed it (reset, broken pipe, early end).
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { isPeerGone } from "./unix_socket.ts";
 *
 * ok(isPeerGone(new Deno.errors.BrokenPipe("")));
 * ok(!isPeerGone(new Error("EIO")));
 * ```
 *
 * @param error What a read or write threw.
 * @returns True when the peer is gone.
 */
export function isPeerGone(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.ConnectionAborted || error instanceof Deno.errors.BadResource;
}
