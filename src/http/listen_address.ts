/**
 * Parses `--web.listen-address` values as Go's net.Listen takes them.
 *
 * @module
 */

/** Where to listen. `hostname` undefined means every interface. */
export interface ListenAddress {
  /** The host, without brackets; undefined for all interfaces. */
  hostname: string | undefined;
  /** The TCP port; 0 picks a free one. */
  port: number;
}

/**
 * Parses `host:port`, `:port` or `[v6addr]:port`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseListenAddress } from "./listen_address.ts";
 * assert(parseListenAddress("[::1]:9900").hostname === "::1");
 * ```
 *
 * @param text The address.
 * @returns The parsed address.
 * @throws {RangeError} Without a port, or with a port out of range.
 */
export function parseListenAddress(text: string): ListenAddress {
  const match = /^(?:\[([^\]]*)\]|([^:\[\]]*)):(\d+)$/.exec(text);
  if (match === null) throw new RangeError("expected host:port, :port or [ipv6]:port");
  const port = Number(match[3]);
  if (port > 65535) throw new RangeError(`port ${port} out of range`);
  const hostname = match[1] ?? match[2];
  return { hostname: hostname === "" || hostname === undefined ? undefined : hostname, port };
}
