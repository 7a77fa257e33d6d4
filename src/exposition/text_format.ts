/**
 * Renders metric families in the Prometheus text exposition format 0.0.4.
 *
 * @module
 */

import type {
  Decimal,
  HistogramValue,
  Labels,
  MetricFamily,
  Sample,
  SampleValue,
} from "../metrics/model.ts";
import { sliceSpent, yieldToEventLoop } from "../system/event_loop_slice.ts";

/** The Content-Type of the text exposition format. */
export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NEEDS_ESCAPE = /[\\"\n]/;

/**
 * Escapes a label value: backslash, double quote and line feed.
 *
 * @param value The raw label value.
 * @returns The escaped value, without surrounding quotes.
 */
export function escapeLabelValue(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/**
 * Escapes HELP text: backslash and line feed.
 *
 * @param help The raw HELP text.
 * @returns The escaped text.
 */
export function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatDecimal({ units, exponent }: Decimal): string {
  if (exponent >= 0) return (units * 10n ** BigInt(exponent)).toString();
  const sign = units < 0n ? "-" : "";
  const digits = (units < 0n ? -units : units).toString().padStart(1 - exponent, "0");
  const point = digits.length + exponent;
  const fraction = digits.slice(point).replace(/0+$/, "");
  return `${sign}${digits.slice(0, point)}${fraction === "" ? "" : `.${fraction}`}`;
}

/**
 * Formats a sample value. Integers keep every digit (a float64 would round
 * u64 stats), and so do decimals (nanoseconds printed as seconds); non-finite
 * numbers use the format's spellings.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatValue } from "./text_format.ts";
 * assert(formatValue({ units: 1234567891n, exponent: -9 }) === "1.234567891");
 * assert(formatValue(18446744073709551615n) === "18446744073709551615");
 * ```
 *
 * @param value The value.
 * @returns Its text form.
 */
export function formatValue(value: SampleValue): string {
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "object") return formatDecimal(value);
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function formatLabels(labels: Labels): string {
  if (labels.length === 0) return "";
  let text = "{";
  for (let i = 0; i < labels.length; i++) {
    const [k, v] = labels[i]!;
    text += `${i === 0 ? "" : ","}${k}="${escapeLabelValue(v)}"`;
  }
  return `${text}}`;
}

/**
 * Each label set's text, made once per label set: naming schemes give every series of one VM
 * or vCPU the same label set, so a scrape formats each VM's and vCPU's labels once, not once
 * per series. Weak, so a label set's text goes with it.
 */
const labelTexts = new WeakMap<Labels, string>();

function labelText(labels: Labels): string {
  let text = labelTexts.get(labels);
  if (text === undefined) {
    text = formatLabels(labels);
    labelTexts.set(labels, text);
  }
  return text;
}

const collator = new Intl.Collator("en", { numeric: true });
const DIGITS = /^\d+$/;

/** Digit strings in numeric order (vcpu="10" after vcpu="2"), as the collator orders them. */
function compareDigits(a: string, b: string): number {
  // Without leading zeros, the longer number is the larger one; with them, the collator decides.
  if (a.charCodeAt(0) === 48 || b.charCodeAt(0) === 48) return collator.compare(a, b);
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : 1;
}

function compareLabels(a: Sample, b: Sample): number {
  const n = Math.min(a.labels.length, b.labels.length);
  for (let i = 0; i < n; i++) {
    const [ka, va] = a.labels[i]!;
    const [kb, vb] = b.labels[i]!;
    if (ka !== kb) return ka < kb ? -1 : 1;
    if (va !== vb) {
      // Ordinal order for anything but two numbers, so that output is stable across locales.
      if (DIGITS.test(va) && DIGITS.test(vb)) return compareDigits(va, vb);
      return va < vb ? -1 : 1;
    }
  }
  return a.labels.length - b.labels.length;
}

function isHistogramValue(value: Sample["value"]): value is HistogramValue {
  return typeof value === "object" && "buckets" in value;
}

function sortedFamilies(families: readonly MetricFamily[]): MetricFamily[] {
  return [...families].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const encoder = new TextEncoder();
/** Writes above this many bytes of room are checked for it once, not per character. */
const MIN_ROOM = 4096;

/**
 * UTF-8 text written straight into one growing buffer: a series' line is its
 * name, its label set's text and its value, written where they lie, so a
 * scrape makes no string per line and no string of the whole text.
 */
class TextBuffer {
  bytes: Uint8Array;
  used = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    if (this.bytes.length - this.used >= n) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.used + n + MIN_ROOM));
    grown.set(this.bytes.subarray(0, this.used));
    this.bytes = grown;
  }

  /** Writes text: ASCII byte by byte, anything else through the encoder. */
  text(text: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    this.reserve(text.length * 3);
    const bytes = this.bytes;
    let used = this.used;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) {
        this.used = used + encoder.encodeInto(text.slice(i), bytes.subarray(used)).written;
        return;
      }
      bytes[used++] = c;
    }
    this.used = used;
  }

  /** Writes one byte (an ASCII character's code). */
  byte(code: number): void {
    this.reserve(1);
    this.bytes[this.used++] = code;
  }

  /** Writes a value as {@linkcode formatValue} formats it; integers without a string. */
  value(value: SampleValue): void {
    if (typeof value === "bigint" && value >= -MAX_SAFE && value <= MAX_SAFE) {
      this.integer(Number(value));
    } else if (typeof value === "number" && Number.isSafeInteger(value) && !Object.is(value, -0)) {
      this.integer(value);
    } else {
      this.text(formatValue(value));
    }
  }

  integer(n: number): void {
    this.reserve(17);
    if (n < 0) {
      this.bytes[this.used++] = 45; // "-"
      n = -n;
    }
    let digits = 1;
    for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    let at = this.used + digits;
    this.used = at;
    do {
      this.bytes[--at] = 48 + (n % 10);
      n = Math.floor(n / 10);
    } while (n > 0);
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const SPACE = 32;
const NEWLINE = 10;

function writeLine(out: TextBuffer, line: { name: string; labels: string; value: SampleValue }) {
  out.text(line.name);
  out.text(line.labels);
  out.byte(SPACE);
  out.value(line.value);
  out.byte(NEWLINE);
}

function writeHistogram(out: TextBuffer, name: string, sample: Sample & { value: HistogramValue }) {
  const { labels, value } = sample;
  const bucket = `${name}_bucket`;
  for (const [le, count] of value.buckets) {
    writeLine(out, { name: bucket, labels: formatLabels([...labels, ["le", le]]), value: count });
  }
  const text = labelText(labels);
  if (value.sum !== undefined) {
    writeLine(out, { name: `${name}_sum`, labels: text, value: value.sum });
  }
  writeLine(out, { name: `${name}_count`, labels: text, value: value.count });
}

function writeFamily(out: TextBuffer, family: MetricFamily): void {
  out.text(
    `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`,
  );
  const name = family.name;
  for (const sample of [...family.samples].sort(compareLabels)) {
    if (isHistogramValue(sample.value)) {
      writeHistogram(out, name, sample as Sample & { value: HistogramValue });
    } else {
      writeLine(out, { name, labels: labelText(sample.labels), value: sample.value });
    }
  }
}

/**
 * Grows to the largest text rendered and is reused, so that each scrape does not allocate its size
 * anew; taken by one render at a time (a render that finds it taken uses a buffer of its own). One
 * long-lived object, not one per render: V8's memory-reducing collection (between scrapes, see
 * IdleHeapRelease) drops the shapes of objects that no longer exist, and with them the optimized
 * code that used them.
 */
let spareBuffer: TextBuffer | undefined = new TextBuffer(new Uint8Array(64 * 1024));

function takeBuffer(): TextBuffer {
  const out = spareBuffer ?? new TextBuffer(new Uint8Array(64 * 1024));
  spareBuffer = undefined;
  out.used = 0;
  return out;
}

/**
 * Renders families sorted by name, samples sorted by labels, ending with a
 * newline. Families without samples are left out; a histogram sample becomes
 * its `_bucket`, `_sum` and `_count` lines.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderText } from "./text_format.ts";
 * const text = renderText([{ name: "up", help: "Up.", type: "gauge", samples: [{ labels: [], value: 1 }] }]);
 * assert(text === "# HELP up Up.\n# TYPE up gauge\nup 1\n");
 * ```
 *
 * @param families The families to render.
 * @returns The exposition text.
 */
export function renderText(families: readonly MetricFamily[]): string {
  const out = takeBuffer();
  try {
    for (const family of sortedFamilies(families)) {
      if (family.samples.length > 0) writeFamily(out, family);
    }
    return decoder.decode(out.bytes.subarray(0, out.used));
  } finally {
    spareBuffer = out;
  }
}

const decoder = new TextDecoder();

/**
 * Renders as {@linkcode renderText} does, into UTF-8 bytes, letting the event
 * loop run (health checks, other connections) whenever a few milliseconds
 * have passed since it last did: a large host's text takes longer than a
 * health check may wait. Lines are written into one buffer kept across
 * scrapes, each from its name, its label set's text (made once per label set)
 * and its value, so a scrape leaves no per-line strings behind for the
 * garbage collector.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderBytesSliced } from "./text_format.ts";
 * const bytes = await renderBytesSliced([{ name: "up", help: "Up.", type: "gauge", samples: [{ labels: [], value: 1 }] }]);
 * assert(new TextDecoder().decode(bytes) === "# HELP up Up.\n# TYPE up gauge\nup 1\n");
 * ```
 *
 * @param families The families to render.
 * @param sliceMs How long to render before letting the event loop run. Default 10.
 * @returns The exposition text's bytes, a copy the caller owns.
 */
export async function renderBytesSliced(
  families: readonly MetricFamily[],
  sliceMs = 10,
): Promise<Uint8Array<ArrayBuffer>> {
  const out = takeBuffer();
  try {
    for (const family of sortedFamilies(families)) {
      if (family.samples.length === 0) continue;
      if (sliceSpent(sliceMs)) await yieldToEventLoop();
      writeFamily(out, family);
    }
    // A copy: the buffer is reused by the next scrape while this response may still be sent.
    return out.bytes.slice(0, out.used);
  } finally {
    spareBuffer = out;
  }
}
