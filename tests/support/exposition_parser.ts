/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests:
 * it rejects everything Prometheus' own parser (expfmt, which `promtool check
 * metrics` uses) rejects, and more that the format forbids but expfmt lets
 * through (a family repeated after another one, duplicate series, `__` label
 * names). It returns the parsed families, label values decoded exactly, so that
 * tests can assert that a value round-trips.
 *
 * @module
 */

/** A TYPE of the text format. */
export type ExpositionType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

/** One parsed sample line. */
export interface ParsedSample {
  /** The sample's own name (`x_bucket` in histogram `x`). */
  name: string;
  /** Label names and decoded values, in line order. */
  labels: Map<string, string>;
  /** The value as Go's `strconv.ParseFloat` would read it. */
  value: number;
  /** The value exactly as written. */
  valueText: string;
  /** The timestamp in ms, when the line has one. */
  timestamp: bigint | undefined;
  /** 1-based line number. */
  line: number;
}

/** One parsed metric family. */
export interface ParsedFamily {
  /** The family name. */
  name: string;
  /** The decoded HELP text, if any. */
  help: string | undefined;
  /** The TYPE, `untyped` when the family has none. */
  type: ExpositionType;
  /** The samples, in text order. */
  samples: ParsedSample[];
}

/** A violation of the format, at a line. */
export class ExpositionParseError extends Error {
  /** 1-based line number. */
  readonly line: number;

  /**
   * Creates an error.
   *
   * @param line 1-based line number.
   * @param detail What is wrong.
   */
  constructor(line: number, detail: string) {
    super(`line ${line}: ${detail}`);
    this.name = "ExpositionParseError";
    this.line = line;
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: ReadonlySet<string> = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const SPECIAL = /^(?:[+-]?(?:inf|infinity)|nan)$/i;
const TIMESTAMP = /^-?\d+$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Parses a sample value as Go's `strconv.ParseFloat` does after expfmt's own
 * check: decimal numbers, `Inf`/`Infinity` with an optional sign and `NaN` in
 * any case. Hex floats and `_` (which expfmt refuses) and values beyond the
 * float64 range (ParseFloat's ErrRange) are rejected.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseGoFloat } from "./exposition_parser.ts";
 * assert.equal(parseGoFloat("+Inf"), Infinity);
 * assert.equal(parseGoFloat("1".repeat(400)), undefined);
 * ```
 *
 * @param text The value text.
 * @returns The number, or undefined when Go would not accept the text.
 */
export function parseGoFloat(text: string): number | undefined {
  if (SPECIAL.test(text)) {
    if (/nan/i.test(text)) return NaN;
    return text.startsWith("-") ? -Infinity : Infinity;
  }
  if (!DECIMAL.test(text)) return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/** Splits `text` at the first blank run; the rest has its leading blanks removed. */
function splitBlank(text: string): [string, string] {
  const match = /[ \t]+/.exec(text);
  if (match === null) return [text, ""];
  return [text.slice(0, match.index), text.slice(match.index + match[0].length)];
}

/** Decodes HELP text: only `\\` and `\n` are escapes. */
function decodeHelp(text: string, line: number): string {
  return text.replace(/\\(.?)/g, (_, next: string) => {
    if (next === "\\") return "\\";
    if (next === "n") return "\n";
    throw new ExpositionParseError(line, `invalid escape "\\${next}" in HELP`);
  });
}

/** Parses `{name="value",...}` at the start of `text`; returns the labels and the rest. */
function parseLabels(text: string, line: number): [Map<string, string>, string] {
  const labels = new Map<string, string>();
  let i = 1; // After "{".
  const skipBlanks = (): void => {
    while (text[i] === " " || text[i] === "\t") i++;
  };
  for (;;) {
    skipBlanks();
    if (text[i] === "}") return [labels, text.slice(i + 1)];
    const name = /^[^=\s{}",]*/.exec(text.slice(i))![0];
    if (!LABEL_NAME.test(name)) {
      throw new ExpositionParseError(line, `invalid label name "${name}"`);
    }
    if (name.startsWith("__")) {
      throw new ExpositionParseError(line, `label name "${name}" is reserved`);
    }
    if (labels.has(name)) throw new ExpositionParseError(line, `duplicate label "${name}"`);
    i += name.length;
    skipBlanks();
    if (text[i] !== "=") throw new ExpositionParseError(line, `expected "=" after "${name}"`);
    i++;
    skipBlanks();
    if (text[i] !== '"') throw new ExpositionParseError(line, `expected '"' for "${name}"`);
    i++;
    let value = "";
    for (;;) {
      const ch = text[i];
      if (ch === undefined) throw new ExpositionParseError(line, "unterminated label value");
      i++;
      if (ch === '"') break;
      if (ch !== "\\") {
        value += ch;
        continue;
      }
      const next = text[i++];
      if (next === "\\") value += "\\";
      else if (next === '"') value += '"';
      else if (next === "n") value += "\n";
      else throw new ExpositionParseError(line, `invalid escape "\\${next ?? ""}" in label value`);
    }
    labels.set(name, value);
    skipBlanks();
    if (text[i] === ",") i++;
    else if (text[i] !== "}") {
      throw new ExpositionParseError(line, `expected "," or "}" after label "${name}"`);
    }
  }
}

function parseSampleLine(text: string, line: number): Omit<ParsedSample, "line"> {
  const name = /^[^{\s]*/.exec(text)![0];
  if (!METRIC_NAME.test(name)) {
    throw new ExpositionParseError(line, `invalid metric name "${name}"`);
  }
  let rest = text.slice(name.length).replace(/^[ \t]+/, "");
  let labels = new Map<string, string>();
  if (rest.startsWith("{")) [labels, rest] = parseLabels(rest, line);
  rest = rest.replace(/^[ \t]+/, "");
  const [valueText, afterValue] = splitBlank(rest);
  const value = parseGoFloat(valueText);
  if (value === undefined) throw new ExpositionParseError(line, `invalid value "${valueText}"`);
  const [timestampText, trailing] = splitBlank(afterValue);
  if (trailing !== "") throw new ExpositionParseError(line, `trailing text "${trailing}"`);
  let timestamp: bigint | undefined;
  if (timestampText !== "") {
    if (!TIMESTAMP.test(timestampText)) {
      throw new ExpositionParseError(line, `invalid timestamp "${timestampText}"`);
    }
    timestamp = BigInt(timestampText);
    if (timestamp < INT64_MIN || timestamp > INT64_MAX) {
      throw new ExpositionParseError(line, `timestamp "${timestampText}" out of int64 range`);
    }
  }
  return { name, labels, value, valueText, timestamp };
}

/** The family a sample name belongs to, given the family whose lines are current. */
function familyOf(sample: string, current: ParsedFamily | undefined): string {
  if (current?.type === "histogram" || current?.type === "summary") {
    for (const suffix of ["_bucket", "_sum", "_count"]) {
      if (sample === `${current.name}${suffix}`) return current.name;
    }
  }
  return sample;
}

function checkSuffixRules(family: ParsedFamily, sample: ParsedSample): void {
  const { line } = sample;
  const suffix = sample.name.slice(family.name.length);
  if (family.type === "histogram") {
    if (suffix === "") {
      throw new ExpositionParseError(line, `histogram sample "${sample.name}" needs a suffix`);
    }
    if (suffix === "_bucket" && !sample.labels.has("le")) {
      throw new ExpositionParseError(line, `histogram bucket without "le"`);
    }
    if (suffix !== "_bucket" && sample.labels.has("le")) {
      throw new ExpositionParseError(line, `"le" on "${sample.name}"`);
    }
  } else if (family.type === "summary") {
    if (suffix === "_bucket") {
      throw new ExpositionParseError(line, `summary sample "${sample.name}"`);
    }
    if (suffix !== "" && sample.labels.has("quantile")) {
      throw new ExpositionParseError(line, `"quantile" on "${sample.name}"`);
    }
    if (suffix === "" && !sample.labels.has("quantile")) {
      throw new ExpositionParseError(line, `summary quantile without "quantile"`);
    }
  }
}

function seriesKey(sample: ParsedSample): string {
  const labels = [...sample.labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([sample.name, labels]);
}

/** Parser state across lines. */
interface State {
  families: ParsedFamily[];
  byName: Map<string, ParsedFamily>;
  current: ParsedFamily | undefined;
  series: Set<string>;
}

/** Returns the family `name`, creating it; a family may not come back after another one. */
function enter(state: State, name: string, line: number): ParsedFamily {
  if (state.current?.name === name) return state.current;
  if (state.byName.has(name)) {
    throw new ExpositionParseError(line, `family "${name}" appears twice`);
  }
  const family: ParsedFamily = { name, help: undefined, type: "untyped", samples: [] };
  state.families.push(family);
  state.byName.set(name, family);
  state.current = family;
  return family;
}

function parseComment(state: State, text: string, line: number): void {
  const match = /^#[ \t]+(HELP|TYPE)[ \t]+([^ \t]+)(?:[ \t]+(.*))?$/s.exec(text);
  if (match === null) return; // An ordinary comment.
  const [, keyword, name, rest = ""] = match;
  if (!METRIC_NAME.test(name!)) {
    throw new ExpositionParseError(line, `invalid metric name "${name}" in ${keyword}`);
  }
  const family = enter(state, name!, line);
  if (keyword === "HELP") {
    if (family.help !== undefined) throw new ExpositionParseError(line, `second HELP for ${name}`);
    family.help = decodeHelp(rest, line);
    return;
  }
  if (family.samples.length > 0) {
    throw new ExpositionParseError(line, `TYPE for ${name} after its samples`);
  }
  if (!TYPES.has(rest)) throw new ExpositionParseError(line, `invalid TYPE "${rest}"`);
  family.type = rest as ExpositionType;
}

/**
 * Parses a whole exposition.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseExposition } from "./exposition_parser.ts";
 * const [family] = parseExposition('# TYPE up gauge\nup{job="a\\"b"} 1\n');
 * assert.equal(family?.samples[0]?.labels.get("job"), 'a"b');
 * ```
 *
 * @param text The exposition text.
 * @returns The families in text order.
 * @throws {ExpositionParseError} At the first violation of the format.
 */
export function parseExposition(text: string): ParsedFamily[] {
  const state: State = { families: [], byName: new Map(), current: undefined, series: new Set() };
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines.pop() !== "") {
    throw new ExpositionParseError(lines.length + 1, "the last line does not end with a newline");
  }
  const typed = new Set<string>();
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (/^[ \t]*$/.test(raw)) return;
    if (raw.startsWith("#")) {
      const isType = /^#[ \t]+TYPE[ \t]/.test(raw);
      parseComment(state, raw, line);
      if (isType) {
        const name = state.current!.name;
        if (typed.has(name)) throw new ExpositionParseError(line, `second TYPE for ${name}`);
        typed.add(name);
      }
      return;
    }
    const parsed = parseSampleLine(raw, line);
    const family = enter(state, familyOf(parsed.name, state.current), line);
    const sample: ParsedSample = { ...parsed, line };
    checkSuffixRules(family, sample);
    const key = seriesKey(sample);
    if (state.series.has(key)) {
      throw new ExpositionParseError(line, `duplicate series ${sample.name}`);
    }
    state.series.add(key);
    family.samples.push(sample);
  });
  return state.families;
}
