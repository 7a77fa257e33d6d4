/**
 * The flag machinery: a flag declared once, typed, with its `KVM_EXPORTER_*`
 * environment variable derived from its name; parsing a command line and an
 * environment against a list of flags; the `--help` layout; the error a bad
 * value raises. Which flags exist is declared by their owners (the web and log
 * flags in `flags.ts`, each collector in its own module).
 *
 * @module
 */

import { parseArgs } from "node:util";

/** A bad flag or flag value; the CLI exits 2 with this one-line message. */
export class FlagError extends Error {
  /** The error's name. */
  override name = "FlagError";
}

/** How a flag's value is parsed. */
export type FlagType = "string" | "int" | "bool" | "duration";

/** A value as its type parses it, before the flag's own conversion. */
export interface ParsedValue {
  /** The text, or undefined when neither given nor defaulted. */
  string: string | undefined;
  /** The integer, or undefined when neither given nor defaulted. */
  int: number | undefined;
  /** The switch. */
  bool: boolean;
  /** Milliseconds. */
  duration: number;
}

/** The default of a flag of each type, as `--help` shows it (a duration as text). */
export interface DefaultValue {
  /** Text. */
  string: string;
  /** An integer. */
  int: number;
  /** A switch. */
  bool: boolean;
  /** A duration as text, e.g. `2s`. */
  duration: string;
}

/** What {@linkcode flag} takes: a flag's name, type, default, help and conversion. */
export interface FlagSpec<T extends FlagType, V> {
  /** Name without dashes, e.g. `web.listen-address`. */
  name: string;
  /** One-letter form, e.g. `d` for `-d`. */
  short?: string;
  /** How the value is parsed. */
  type: T;
  /** Default value; none shown in `--help` when absent. */
  default?: DefaultValue[T];
  /** Help text. */
  help: string;
  /**
   * Checks and converts the parsed value; throws {@linkcode invalidValue} when it is bad. The
   * parsed value itself by default.
   */
  convert?: (value: ParsedValue[T], where: string) => V;
}

/** One declared flag, whose value is a `V`. */
export interface Flag<V> {
  /** Name without dashes, e.g. `web.listen-address`. */
  readonly name: string;
  /** One-letter form, e.g. `d` for `-d`. */
  readonly short: string | undefined;
  /** How the value is parsed. */
  readonly type: FlagType;
  /** Default value as `--help` shows it. */
  readonly default: string | number | boolean | undefined;
  /** Help text. */
  readonly help: string;
  /**
   * Turns the parsed value into the flag's value.
   *
   * @param value The value as its type parsed it.
   * @param where Where it came from, e.g. `flag --web.max-requests`.
   */
  read(value: ParsedValue[FlagType], where: string): V;
}

/** Flags by the key their values are read under. */
export type FlagSet = Readonly<Record<string, Flag<unknown>>>;

/** The values of a set of flags, each typed as its flag declares. */
export type FlagValues<F extends FlagSet> = {
  readonly [K in keyof F]: F[K] extends Flag<infer V> ? V : never;
};

/**
 * Declares a flag with a default. Its value is the parsed value, never undefined.
 *
 * @example Usage
 * ```ts
 * import { flag } from "./flag.ts";
 * const depth = flag({ name: "collector.dir.depth", type: "int", default: 2, help: "Depth" });
 * ```
 *
 * @param spec Name, type, default, help and conversion.
 * @returns The flag.
 */
export function flag<T extends FlagType>(
  spec: FlagSpec<T, ParsedValue[T]> & { default: DefaultValue[T]; convert?: undefined },
): Flag<NonNullable<ParsedValue[T]>>;
/**
 * Declares a flag without a default: its value may be undefined.
 *
 * @param spec Name, type and help.
 * @returns The flag.
 */
export function flag<T extends FlagType>(
  spec: FlagSpec<T, ParsedValue[T]> & { convert?: undefined },
): Flag<ParsedValue[T]>;
/**
 * Declares a flag whose value `convert` makes from the parsed value.
 *
 * @param spec Name, type, default, help and conversion.
 * @returns The flag.
 */
export function flag<T extends FlagType, V>(
  spec: FlagSpec<T, V> & { convert: FlagSpec<T, V>["convert"] },
): Flag<V>;
export function flag<T extends FlagType, V>(spec: FlagSpec<T, V>): Flag<V> {
  const convert = spec.convert ?? ((value: ParsedValue[T]) => value as unknown as V);
  return {
    name: spec.name,
    short: spec.short,
    type: spec.type,
    default: spec.default,
    help: spec.help,
    read: (value, where) => convert(value as ParsedValue[T], where),
  };
}

/**
 * The error of a bad flag value, naming the flag or variable it came from.
 *
 * @param where Where the value came from, e.g. `flag --web.max-requests`.
 * @param value The value.
 * @param why What is wrong with it.
 * @returns The error to throw.
 */
export function invalidValue(where: string, value: unknown, why: string): FlagError {
  return new FlagError(`Invalid value "${value}" for ${where}: ${why}`);
}

/**
 * The environment variable that sets a flag: `KVM_EXPORTER_` and the flag name
 * upper-cased with dots and dashes turned into underscores.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { envVarName } from "./flag.ts";
 * assert(envVarName("web.listen-address") === "KVM_EXPORTER_WEB_LISTEN_ADDRESS");
 * ```
 *
 * @param flag The flag name without dashes.
 * @returns The variable name.
 */
export function envVarName(flag: string): string {
  return `KVM_EXPORTER_${flag.replace(/[.-]/g, "_").toUpperCase()}`;
}

const TYPE_WORDS: Record<FlagType, string> = {
  string: " string",
  int: " int",
  bool: "",
  duration: " duration",
};

/**
 * The `--help` text, laid out as the original exporter's.
 *
 * @param flags The flags, in the order listed.
 * @returns The help text, ending with a newline.
 */
export function renderHelp(flags: readonly Flag<unknown>[]): string {
  const rows = flags.map((f) => {
    const left = `${f.short ? `-${f.short}, ` : "    "}--${f.name}${TYPE_WORDS[f.type]}`;
    const showDefault = f.default !== undefined && f.default !== false && f.name !== "help";
    const def = showDefault
      ? ` (default ${typeof f.default === "string" ? JSON.stringify(f.default) : f.default})`
      : "";
    return [left, `${f.help}${def}`] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 3;
  const lines = rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`);
  return [
    "KVM Exporter",
    "",
    "Usage:",
    "  kvm_exporter  [flags]",
    "",
    "Flags:",
    ...lines,
    "",
    "Every flag can also be set by an environment variable: KVM_EXPORTER_ and the flag name",
    "in upper case with dots and dashes as underscores (KVM_EXPORTER_WEB_LISTEN_ADDRESS).",
    "A flag on the command line wins over the environment.",
    "",
  ].join("\n");
}

const BOOL_WORDS: Record<string, boolean> = { true: true, "1": true, false: false, "0": false };

function parseBool(where: string, text: string): boolean {
  const value = BOOL_WORDS[text.toLowerCase()];
  if (value === undefined) throw invalidValue(where, text, "must be true or false");
  return value;
}

function parseInt10(where: string, text: string): number {
  if (!/^-?\d+$/.test(text.trim())) throw invalidValue(where, text, "not an integer");
  return Number(text.trim());
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/**
 * Parses a Go-style duration such as `2s`, `500ms` or `1.5s` into milliseconds.
 *
 * @param text The duration.
 * @returns Milliseconds, or undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (match === null) return undefined;
  return Number(match[1]) * DURATION_UNITS[match[2]!]!;
}

/** Parses the text of a flag of `type`. */
function parseText(type: FlagType, text: string, where: string): ParsedValue[FlagType] {
  if (type === "bool") return parseBool(where, text);
  if (type === "int") return parseInt10(where, text);
  if (type !== "duration") return text;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw invalidValue(where, text, "not a positive duration such as 2s or 500ms");
  }
  return ms;
}

/** A flag's default, parsed as its type. */
function defaultValue(f: Flag<unknown>): ParsedValue[FlagType] {
  if (f.type === "duration") return parseDuration(String(f.default))!;
  return f.default as ParsedValue[FlagType];
}

/** Turns `--bool=false` into `--no-bool`, which parseArgs understands. */
function normaliseBoolArgs(flags: readonly Flag<unknown>[], args: readonly string[]): string[] {
  const bools = new Set(flags.filter((f) => f.type === "bool").map((f) => f.name));
  return args.map((arg) => {
    const match = /^--([^=]+)=(.*)$/.exec(arg);
    if (match === null || !bools.has(match[1]!)) return arg;
    return parseBool(`flag --${match[1]}`, match[2]!) ? `--${match[1]}` : `--no-${match[1]}`;
  });
}

/** A command line and an environment, read against a list of flags. */
export interface CommandLine {
  /**
   * A flag's value: from the command line, else the environment, else its default.
   *
   * @throws {FlagError} When the value is bad.
   */
  value<V>(flag: Flag<V>): V;
  /** Whether the flag was given on the command line. */
  onCommandLine(flag: Flag<unknown>): boolean;
  /** Whether the flag was given on the command line or in the environment. */
  given(flag: Flag<unknown>): boolean;
}

/**
 * Reads a command line against a list of flags. Pure: the environment comes
 * in as a lookup function. Values are parsed when asked for.
 *
 * @param flags Every flag the program has.
 * @param input The arguments after the program name, and an environment lookup.
 * @returns The command line.
 * @throws {FlagError} On an unknown flag, a positional argument or a bad boolean.
 */
export function readCommandLine(
  flags: readonly Flag<unknown>[],
  input: { args: readonly string[]; env: (name: string) => string | undefined },
): CommandLine {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const f of flags) {
    options[f.name] = { type: f.type === "bool" ? "boolean" : "string" };
    if (f.short) options[f.name]!.short = f.short;
  }
  let parsed: Record<string, string | boolean | undefined>;
  try {
    parsed = parseArgs({
      args: normaliseBoolArgs(flags, input.args),
      options,
      strict: true,
      allowPositionals: false,
      allowNegative: true,
    }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    if (error instanceof FlagError) throw error;
    throw new FlagError((error as Error).message.split("\n")[0]!.replace(/\.$/, ""));
  }
  const fromEnv = (f: Flag<unknown>): string | undefined => input.env(envVarName(f.name));
  return {
    value<V>(f: Flag<V>): V {
      const fromArgs = parsed[f.name];
      // Where the value came from, so that an error names what the user must change.
      const where = fromArgs !== undefined
        ? `flag --${f.name}`
        : `environment variable ${envVarName(f.name)}`;
      const raw = fromArgs ?? fromEnv(f);
      if (raw === undefined) return f.read(defaultValue(f), where);
      return f.read(typeof raw === "boolean" ? raw : parseText(f.type, raw, where), where);
    },
    onCommandLine: (f) => parsed[f.name] !== undefined,
    given: (f) => parsed[f.name] !== undefined || fromEnv(f) !== undefined,
  };
}

/**
 * Reads the values of a set of flags.
 *
 * @param flags The flags, by key.
 * @param line The command line.
 * @returns Each flag's value under its key.
 * @throws {FlagError} When a value is bad.
 */
export function readFlags<F extends FlagSet>(flags: F, line: CommandLine): FlagValues<F> {
  const values: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(flags)) values[key] = line.value(f);
  return values as FlagValues<F>;
}

/**
 * A check for an integer flag: at least `min`, at most `max`.
 *
 * @param range The bounds.
 * @returns A `convert` for {@linkcode flag}.
 */
export function intInRange(
  range: { min: number; max?: number },
): (value: number | undefined, where: string) => number {
  const { min, max } = range;
  return (value, where) => {
    if (value === undefined) throw invalidValue(where, value, "missing");
    if (max === undefined && value < min) {
      throw invalidValue(where, value, `must be ${min} or more`);
    }
    if (max !== undefined && (value < min || value > max)) {
      throw invalidValue(where, value, `must be between ${min} and ${max}`);
    }
    return value;
  };
}

/**
 * A check for a string flag: one of a fixed set of words.
 *
 * @param words The words allowed.
 * @returns A `convert` for {@linkcode flag}.
 */
export function oneOf<W extends string>(
  words: readonly W[],
): (value: string | undefined, where: string) => W {
  return (value, where) => {
    if (!(words as readonly (string | undefined)[]).includes(value)) {
      throw invalidValue(where, value, `must be one of ${words.join(", ")}`);
    }
    return value as W;
  };
}

/**
 * Removes trailing slashes and `.` segments and collapses repeated slashes, so
 * that `/sys/kernel/debug/kvm/` and `/sys/kernel/debug/kvm` are the same dir.
 *
 * @param dir The path as given.
 * @returns The normalised path.
 */
export function normaliseDir(dir: string | undefined): string {
  const text = dir ?? "";
  const absolute = text.startsWith("/");
  const parts = text.split("/").filter((p) => p !== "" && p !== ".");
  const joined = parts.join("/");
  if (absolute) return `/${joined}`;
  return joined === "" ? "." : joined;
}

/**
 * A check for a string flag holding a regular expression: compiled, or undefined when empty.
 *
 * @example Usage
 * ```ts
 * import { flag, regexpValue } from "./flag.ts";
 * const exclude = flag({
 *   name: "collector.x.device-exclude",
 *   type: "string",
 *   help: "Regexp of devices not to report",
 *   convert: regexpValue,
 * });
 * ```
 *
 * @param value The text.
 * @param where Where it came from.
 * @returns The regular expression, or undefined.
 * @throws {FlagError} When the text is no regular expression.
 */
export function regexpValue(value: string | undefined, where: string): RegExp | undefined {
  if (value === undefined || value === "") return undefined;
  try {
    return new RegExp(value);
  } catch (error) {
    throw invalidValue(where, value, (error as Error).message.split("\n")[0]!);
  }
}
