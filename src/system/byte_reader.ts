/**
 * A growing byte buffer over a stream: fill it, take a number of bytes, or read up to a
 * delimiter with a cap. The framing of both socket clients (QMP's lines, libvirt's
 * length-prefixed frames) sits on it.
 *
 * @module
 */

/** Reads into `buffer`; the count read, or null at the end of the stream. Like `Deno.Conn.read`. */
export type ReadFn = (buffer: Uint8Array) => Promise<number | null>;

/** Options of {@linkcode ByteReader}. */
export interface ByteReaderOptions {
  /** The most one read asks for. Defaults to 64 KiB. */
  chunkBytes?: number;
}

/** Thrown by {@linkcode ByteReader.readUntil} when no delimiter comes within the cap. */
export class ByteLimitError extends RangeError {
  /**
   * Creates an error.
   *
   * @param maxBytes The cap that was passed.
   */
  constructor(maxBytes: number) {
    super(`No delimiter within ${maxBytes} bytes`);
    this.name = "ByteLimitError";
  }
}

const DEFAULT_CHUNK_BYTES = 64 * 1024;
/** A buffer this many times the read size is replaced by a small one once emptied. */
const SHRINK_FACTOR = 4;

/**
 * Buffers what a stream yields. Nothing is read but by {@linkcode ByteReader.fill},
 * {@linkcode ByteReader.fillTo} and {@linkcode ByteReader.readUntil}; errors of the read function
 * pass through.
 *
 * @example Lines, then a frame
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { ByteReader } from "./byte_reader.ts";
 *
 * const data = new TextEncoder().encode("hello\nworld");
 * let offset = 0;
 * const reader = new ByteReader(async (buffer) => {
 *   if (offset === data.length) return null;
 *   const n = Math.min(3, buffer.length, data.length - offset);
 *   buffer.set(data.subarray(offset, offset + n));
 *   offset += n;
 *   return n;
 * });
 * const line = await reader.readUntil(0x0a, 100);
 * strictEqual(new TextDecoder().decode(line), "hello");
 * strictEqual(await reader.fillTo(5), true);
 * deepStrictEqual(new TextDecoder().decode(reader.take(5)), "world");
 * strictEqual(await reader.readUntil(0x0a, 100), undefined);
 * ```
 */
export class ByteReader {
  #read: ReadFn;
  #chunkBytes: number;
  #storage: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;

  /**
   * Creates a reader with nothing buffered.
   *
   * @param read Reads from the stream.
   * @param options The read size.
   */
  constructor(read: ReadFn, options: ByteReaderOptions = {}) {
    this.#read = read;
    this.#chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.#storage = new Uint8Array(this.#chunkBytes);
  }

  /** What is buffered and not taken (a view: valid until the next read or take). */
  get buffered(): Uint8Array {
    return this.#storage.subarray(this.#start, this.#end);
  }

  /** Whether the stream has ended. */
  get eof(): boolean {
    return this.#eof;
  }

  /**
   * Reads once from the stream and buffers what came.
   *
   * @returns The count read, or null at the end of the stream.
   */
  async fill(): Promise<number | null> {
    if (this.#eof) return null;
    this.#reserve(this.#chunkBytes);
    const n = await this.#read(this.#storage.subarray(this.#end, this.#end + this.#chunkBytes));
    if (n === null) {
      this.#eof = true;
      return null;
    }
    this.#end += n;
    return n;
  }

  /**
   * Reads until at least `want` bytes are buffered.
   *
   * @param want How many bytes.
   * @returns False if the stream ended first (what came stays buffered).
   */
  async fillTo(want: number): Promise<boolean> {
    while (this.#end - this.#start < want) {
      if (await this.fill() === null) return false;
    }
    return true;
  }

  /**
   * Takes `count` buffered bytes.
   *
   * @param count How many; at most what is buffered.
   * @returns A copy of them.
   * @throws {RangeError} If fewer are buffered.
   */
  take(count: number): Uint8Array {
    if (count > this.#end - this.#start) {
      throw new RangeError(`Cannot take ${count} bytes: ${this.#end - this.#start} buffered`);
    }
    const bytes = this.#storage.slice(this.#start, this.#start + count);
    this.#start += count;
    this.#release();
    return bytes;
  }

  /**
   * Reads up to the next `delimiter` and takes it.
   *
   * @param delimiter The byte that ends a record, e.g. `0x0a`.
   * @param maxBytes The longest record accepted, delimiter not counted.
   * @returns The bytes before the delimiter; undefined if the stream ended first (then
   *   {@linkcode ByteReader.buffered} holds an unfinished record, or nothing).
   * @throws {ByteLimitError} If more than `maxBytes` come before a delimiter.
   */
  async readUntil(delimiter: number, maxBytes: number): Promise<Uint8Array | undefined> {
    let scanFrom = 0;
    while (true) {
      const buffered = this.buffered;
      const end = buffered.indexOf(delimiter, scanFrom);
      if (end >= 0) {
        if (end > maxBytes) throw new ByteLimitError(maxBytes);
        const record = this.#storage.slice(this.#start, this.#start + end);
        this.#start += end + 1;
        this.#release();
        return record;
      }
      if (buffered.length > maxBytes) throw new ByteLimitError(maxBytes);
      scanFrom = buffered.length;
      if (await this.fill() === null) return undefined;
    }
  }

  /** Once empty, starts over at the front; a buffer grown for a large record is let go. */
  #release(): void {
    if (this.#start !== this.#end) return;
    this.#start = this.#end = 0;
    if (this.#storage.length > SHRINK_FACTOR * this.#chunkBytes) {
      this.#storage = new Uint8Array(this.#chunkBytes);
    }
  }

  /** Makes room for `count` more bytes after what is buffered. */
  #reserve(count: number): void {
    if (this.#end + count <= this.#storage.length) return;
    const used = this.#end - this.#start;
    if (used + count <= this.#storage.length) {
      this.#storage.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(Math.max(used + count, this.#storage.length * 2));
      grown.set(this.#storage.subarray(this.#start, this.#end));
      this.#storage = grown;
    }
    this.#start = 0;
    this.#end = used;
  }
}
