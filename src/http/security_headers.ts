/**
 * The security headers every response carries: the defaults the web config does not set, then
 * the web config's own. Both the app's answers and the server's own (a 400 for a malformed
 * request, a 503 at the connection cap, which no handler sees) carry them.
 *
 * @module
 */

/**
 * Headers on every response unless the web config sets them: the status page runs no script,
 * loads nothing and may not be framed.
 */
export const DEFAULT_HEADERS: readonly [string, string][] = [
  [
    "Content-Security-Policy",
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  ],
  ["X-Content-Type-Options", "nosniff"],
  ["X-Frame-Options", "DENY"],
];

/**
 * The headers of a response: the defaults whose names the web config does not set, then the
 * web config's own.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { responseHeaders } from "./security_headers.ts";
 * const headers = responseHeaders([["x-frame-options", "sameorigin"]]);
 * assert.deepEqual(headers.filter(([name]) => /frame/i.test(name)), [
 *   ["x-frame-options", "sameorigin"],
 * ]);
 * ```
 *
 * @param configured The web config's headers (`http_server_config.headers`).
 * @returns The headers to set, names as written.
 */
export function responseHeaders(configured: readonly [string, string][]): [string, string][] {
  const names = new Set(configured.map(([name]) => name.toLowerCase()));
  return [...DEFAULT_HEADERS.filter(([name]) => !names.has(name.toLowerCase())), ...configured];
}
