/**
 * Reads a byte stream line by line, for talking to child processes.
 *
 * @module
 */

/** Reads lines from a stream. */
export class LineReader {
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  /**
   * Wraps a stream.
   *
   * @param stream The bytes (UTF-8).
   */
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /**
   * The next line, without its newline.
   *
   * @returns The line.
   */
  async next(): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf("\n");
      if (end >= 0) {
        const line = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 1);
        return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("Stream ended before a full line");
      this.#buffer += value;
    }
  }
}
