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

function renderSample(name: string, sample: Sample): string {
  const { labels, value } = sample;
  if (!isHistogramValue(value)) return `${name}${formatLabels(labels)} ${formatValue(value)}\n`;
  let text = "";
  for (const [le, count] of value.buckets) {
    text += `${name}_bucket${formatLabels([...labels, ["le", le]])} ${count}\n`;
  }
  if (value.sum !== undefined) {
    text += `${name}_sum${formatLabels(labels)} ${formatValue(value.sum)}\n`;
  }
  return `${text}${name}_count${formatLabels(labels)} ${value.count}\n`;
}

function sortedFamilies(families: readonly MetricFamily[]): MetricFamily[] {
  return [...families].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function renderFamily(family: MetricFamily): string {
  let text = `# HELP ${family.name} ${
    escapeHelp(family.help)
  }\n# TYPE ${family.name} ${family.type}\n`;
  for (const sample of [...family.samples].sort(compareLabels)) {
    text += renderSample(family.name, sample);
  }
  return text;
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
  const parts: string[] = [];
  for (const family of sortedFamilies(families)) {
    if (family.samples.length > 0) parts.push(renderFamily(family));
  }
  return parts.join("");
}

const encoder = new TextEncoder();
/**
 * Grows to the largest text rendered and is reused, so that each scrape does not allocate its size
 * anew; taken by one render at a time (a render that finds it taken uses a buffer of its own).
 */
let spareBuffer: Uint8Array | undefined = new Uint8Array(64 * 1024);

/**
 * Renders as {@linkcode renderText} does, into UTF-8 bytes, letting the event
 * loop run (health checks, other connections) whenever a few milliseconds
 * have passed since it last did: a large host's text takes longer than a
 * health check may wait. Each family's text is encoded into one buffer kept
 * across scrapes, so a scrape leaves no megabyte-sized strings behind for the
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
  let buffer = spareBuffer ?? new Uint8Array(64 * 1024);
  spareBuffer = undefined;
  try {
    let used = 0;
    let sliceStart = performance.now();
    for (const family of sortedFamilies(families)) {
      if (family.samples.length === 0) continue;
      if (performance.now() - sliceStart > sliceMs) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        sliceStart = performance.now();
      }
      const text = renderFamily(family);
      // UTF-8 takes at most 3 bytes per UTF-16 code unit.
      if (buffer.length - used < text.length * 3) {
        const grown = new Uint8Array(Math.max(buffer.length * 2, used + text.length * 3));
        grown.set(buffer.subarray(0, used));
        buffer = grown;
      }
      used += encoder.encodeInto(text, buffer.subarray(used)).written;
    }
    // A copy: the buffer is reused by the next scrape while this response may still be sent.
    return buffer.slice(0, used);
  } finally {
    spareBuffer = buffer;
  }
}
