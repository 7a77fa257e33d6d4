/**
 * Gzip for the metrics response: node:zlib's asynchronous gzip, which runs
 * on a worker thread, not on the event loop as `CompressionStream` does.
 *
 * @module
 */

/**
 * The gzip level of `/metrics` (docs/performance.md): on a 100×16 host's
 * 1.08 MB text, level 4 gives 121 kB in 4.3 ms, level 6 (zlib's default)
 * 118 kB in 7.8 ms, level 1 172 kB in 1.9 ms.
 */
export const GZIP_LEVEL = 4;

/**
 * Whether an `Accept-Encoding` header accepts gzip: named with a q-value
 * above 0, or covered by `*` when not named.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptsGzip } from "./gzip_body.ts";
 * assert.equal(acceptsGzip("gzip, deflate"), true);
 * assert.equal(acceptsGzip("gzip;q=0, *"), false);
 * assert.equal(acceptsGzip(undefined), false);
 * ```
 *
 * @param header The request's `Accept-Encoding`, if any.
 * @returns true when the response may be gzipped.
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let wildcard = false;
  for (const part of header.split(",")) {
    const [coding = "", ...params] = part.split(";");
    const name = coding.trim().toLowerCase();
    if (name !== "gzip" && name !== "*") continue;
    const q = params.map((p) => /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p)?.[1]).find((v) => v);
    const accepted = q === undefined || Number(q) > 0;
    if (name === "gzip") return accepted;
    wildcard = accepted;
  }
  return wildcard;
}

let zlib: Promise<typeof import("node:zlib")> | undefined;

/**
 * Gzips a body off the event loop.
 *
 * @param body The bytes.
 * @returns The gzip member.
 */
export async function gzipBody(body: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  // Loaded on the first gzip'd scrape, not at start: node:zlib adds to idle RSS.
  const { gzip } = await (zlib ??= import("node:zlib"));
  return await new Promise((resolve, reject) =>
    gzip(body, { level: GZIP_LEVEL }, (error, zipped) => {
      if (error) return reject(error);
      resolve(new Uint8Array(zipped.buffer as ArrayBuffer, zipped.byteOffset, zipped.byteLength));
    })
  );
}
