/**
 * One scrape's rendered answer, shared by every request that joined the scrape: the text, and
 * its gzip made once, when a client that takes gzip first asks for it.
 *
 * @module
 */

import { gzipBody } from "./gzip_body.ts";

/**
 * The answer to the scrapes of one moment. Its bytes are never copied per client: each response
 * streams the same `Uint8Array`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ScrapeAnswer } from "./scrape_answer.ts";
 * const answer = new ScrapeAnswer(new TextEncoder().encode("up 1\n"));
 * assert.equal(await answer.gzipped(), await answer.gzipped());
 * ```
 */
export class ScrapeAnswer {
  /** The text exposition. */
  readonly text: Uint8Array;
  readonly #around: <T>(work: () => Promise<T>) => Promise<T>;
  #gzipped: Promise<Uint8Array> | undefined;

  /**
   * Wraps a rendered text.
   *
   * @param text The text exposition's bytes; not copied, so not to be changed afterwards.
   * @param around Runs the gzip when it is made (e.g. the idle heap release's `around`).
   */
  constructor(
    text: Uint8Array,
    around: <T>(work: () => Promise<T>) => Promise<T> = (work) => work(),
  ) {
    this.text = text;
    this.#around = around;
  }

  /**
   * The text gzipped, made on the first call.
   *
   * @returns The gzip member, the same bytes on every call.
   */
  gzipped(): Promise<Uint8Array> {
    return this.#gzipped ??= this.#around(() => gzipBody(this.text));
  }
}

/**
 * A response body stream of one chunk that is `bytes` itself, not a copy (a `Response` made from
 * a `Uint8Array` copies it).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { chunkStream } from "./scrape_answer.ts";
 * const bytes = new Uint8Array([1, 2, 3]);
 * const { value } = await chunkStream(bytes).getReader().read();
 * assert.equal(value, bytes);
 * ```
 *
 * @param bytes The body.
 * @returns A stream that yields `bytes` once.
 */
export function chunkStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}
