/**
 * XDR (RFC 4506), the encoding of libvirt's RPC messages: big-endian 4-byte
 * units, 8-byte hypers, strings and opaques with a length and padding to 4
 * bytes. Only the types libvirt's remote protocol uses here. Every length a
 * decoder reads is checked against a cap before anything is allocated.
 *
 * @module
 */

/** The peer sent bytes that are not the XDR the protocol says. */
export class XdrError extends Error {
  /**
   * Creates an error.
   *
   * @param message What is wrong, with the offset.
   */
  constructor(message: string) {
    super(message);
    this.name = "XdrError";
  }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

function padding(length: number): number {
  return (4 - (length % 4)) % 4;
}

/**
 * Builds an XDR byte string.
 *
 * @example Encode an int and a string
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { XdrWriter } from "./xdr.ts";
 *
 * const bytes = new XdrWriter().int(1).string("ab").bytes();
 * deepStrictEqual([...bytes], [0, 0, 0, 1, 0, 0, 0, 2, 97, 98, 0, 0]);
 * ```
 */
export class XdrWriter {
  #chunks: Uint8Array[] = [];
  #length = 0;

  #push(chunk: Uint8Array): this {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    return this;
  }

  /**
   * Appends a signed 32-bit int.
   *
   * @param value The value, within int32 range.
   * @returns This writer.
   */
  int(value: number): this {
    if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) {
      throw new RangeError(`Cannot encode XDR int: "${value}" is not a 32-bit integer`);
    }
    const chunk = new Uint8Array(4);
    new DataView(chunk.buffer).setInt32(0, value);
    return this.#push(chunk);
  }

  /**
   * Appends an unsigned 32-bit int.
   *
   * @param value The value, within uint32 range.
   * @returns This writer.
   */
  uint(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new RangeError(
        `Cannot encode XDR unsigned int: "${value}" is not a 32-bit unsigned integer`,
      );
    }
    const chunk = new Uint8Array(4);
    new DataView(chunk.buffer).setUint32(0, value);
    return this.#push(chunk);
  }

  /**
   * Appends a fixed-length opaque (no length prefix), padded to 4 bytes.
   *
   * @param value The bytes.
   * @returns This writer.
   */
  fixedOpaque(value: Uint8Array): this {
    const chunk = new Uint8Array(value.length + padding(value.length));
    chunk.set(value);
    return this.#push(chunk);
  }

  /**
   * Appends a string: its UTF-8 length, bytes and padding.
   *
   * @param value The string.
   * @returns This writer.
   */
  string(value: string): this {
    const bytes = textEncoder.encode(value);
    return this.uint(bytes.length).fixedOpaque(bytes);
  }

  /**
   * Appends an optional value (`type *name` in the `.x` file): a boolean, then
   * the value when present.
   *
   * @param present Whether the value follows.
   * @returns This writer.
   */
  optional(present: boolean): this {
    return this.uint(present ? 1 : 0);
  }

  /**
   * The bytes written so far, in one array.
   *
   * @returns A new array.
   */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let offset = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

/**
 * Reads XDR values from a byte string, front to back. Every read checks that
 * the bytes are there, and every length against the caller's cap.
 *
 * @example Decode an int and a string
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { XdrReader } from "./xdr.ts";
 *
 * const reader = new XdrReader(new Uint8Array([0, 0, 0, 7, 0, 0, 0, 2, 104, 105, 0, 0]));
 * strictEqual(reader.int(), 7);
 * strictEqual(reader.string(16), "hi");
 * strictEqual(reader.remaining, 0);
 * ```
 */
export class XdrReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;

  /**
   * Creates a reader.
   *
   * @param bytes The encoded bytes.
   */
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes read so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  #take(length: number, what: string): number {
    if (length > this.remaining) {
      throw new XdrError(
        `Truncated XDR ${what} at byte ${this.#offset}: needs ${length} bytes, ${this.remaining} left`,
      );
    }
    const at = this.#offset;
    this.#offset += length;
    return at;
  }

  /**
   * Reads a signed 32-bit int.
   *
   * @returns The value.
   */
  int(): number {
    return this.#view.getInt32(this.#take(4, "int"));
  }

  /**
   * Reads an unsigned 32-bit int.
   *
   * @returns The value.
   */
  uint(): number {
    return this.#view.getUint32(this.#take(4, "unsigned int"));
  }

  /**
   * Reads a signed 64-bit hyper.
   *
   * @returns The exact value.
   */
  hyper(): bigint {
    return this.#view.getBigInt64(this.#take(8, "hyper"));
  }

  /**
   * Reads an unsigned 64-bit hyper.
   *
   * @returns The exact value.
   */
  unsignedHyper(): bigint {
    return this.#view.getBigUint64(this.#take(8, "unsigned hyper"));
  }

  /**
   * Reads a double.
   *
   * @returns The value.
   */
  double(): number {
    return this.#view.getFloat64(this.#take(8, "double"));
  }

  /**
   * Reads a boolean, which XDR encodes as the int 0 or 1.
   *
   * @returns The value.
   * @throws {XdrError} For any other int.
   */
  bool(): boolean {
    const at = this.#offset;
    const value = this.int();
    if (value !== 0 && value !== 1) {
      throw new XdrError(`Invalid XDR boolean at byte ${at}: "${value}"`);
    }
    return value === 1;
  }

  /**
   * Reads a fixed-length opaque and its padding.
   *
   * @param length The length the protocol fixes.
   * @returns A copy of the bytes.
   */
  fixedOpaque(length: number): Uint8Array {
    const at = this.#take(length + padding(length), "opaque");
    return this.#bytes.slice(at, at + length);
  }

  /**
   * Reads a variable-length array's count and checks it against a cap.
   *
   * @param max The protocol's upper bound.
   * @param what What is counted, for the error message.
   * @returns The count.
   * @throws {XdrError} If the count exceeds `max`.
   */
  count(max: number, what: string): number {
    const at = this.#offset;
    const count = this.uint();
    if (count > max) {
      throw new XdrError(`Too many ${what} at byte ${at}: "${count}", the limit is ${max}`);
    }
    return count;
  }

  /**
   * Reads a UTF-8 string of at most `max` bytes.
   *
   * @param max The protocol's upper bound on its length.
   * @returns The string.
   * @throws {XdrError} If it is longer than `max`, truncated or not UTF-8.
   */
  string(max: number): string {
    const at = this.#offset;
    const length = this.uint();
    if (length > max) {
      throw new XdrError(
        `XDR string at byte ${at} too long: "${length}" bytes, the limit is ${max}`,
      );
    }
    const bytes = this.fixedOpaque(length);
    try {
      return textDecoder.decode(bytes);
    } catch {
      throw new XdrError(`XDR string at byte ${at} is not UTF-8`);
    }
  }

  /**
   * Reads an optional value's presence flag (`type *name` in the `.x` file).
   *
   * @returns Whether the value follows.
   */
  optional(): boolean {
    return this.bool();
  }
}
