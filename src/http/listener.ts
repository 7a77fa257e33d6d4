/**
 * Opens the TCP or TLS listener the HTTP server accepts from.
 *
 * @module
 */

import type { TlsSettings } from "./web_config.ts";

/** Options of {@linkcode openListener}. */
export interface ListenerOptions {
  /** The host; undefined for every interface (dual-stack where the host has IPv6). */
  hostname: string | undefined;
  /** The port; 0 picks a free one. */
  port: number;
  /** TLS certificate and key, or undefined for plain TCP. */
  tls: TlsSettings | undefined;
}

/**
 * Opens a listener.
 *
 * @param options Where to listen, and the TLS settings if any.
 * @returns The listener.
 * @throws {Deno.errors.AddrInUse} When the port is taken; other errors from `Deno.listen` or
 *   `Deno.listenTls` (a certificate that does not parse, no net permission).
 */
export function openListener(options: ListenerOptions): Deno.Listener {
  const { hostname, port, tls } = options;
  const open = (host: string): Deno.Listener =>
    tls === undefined
      ? Deno.listen({ hostname: host, port, transport: "tcp" })
      : Deno.listenTls({ hostname: host, port, transport: "tcp", cert: tls.cert, key: tls.key });
  if (hostname !== undefined) return open(hostname);
  try {
    return open("::"); // Dual-stack: IPv4 and IPv6 where the host has IPv6.
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.NotCapable) {
      throw error;
    }
    return open("0.0.0.0");
  }
}
