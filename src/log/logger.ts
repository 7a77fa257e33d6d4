/**
 * Structured logging to stderr in logfmt (node_exporter's default) or JSON.
 *
 * @module
 */

/** Log levels, lowest first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** A log level. */
export type LogLevel = typeof LOG_LEVELS[number];
/** A log line format. */
export type LogFormat = "logfmt" | "json";
/** Extra key/value pairs of a log line. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** A leveled, structured logger. */
export interface Logger {
  /** Logs at debug level. */
  debug(msg: string, fields?: LogFields): void;
  /** Logs at info level. */
  info(msg: string, fields?: LogFields): void;
  /** Logs at warn level. */
  warn(msg: string, fields?: LogFields): void;
  /** Logs at error level. */
  error(msg: string, fields?: LogFields): void;
}

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. Default "info". */
  level?: LogLevel;
  /** Line format. Default "logfmt". */
  format?: LogFormat;
  /** Where lines go. Default: stderr. */
  write?: (line: string) => void;
  /** Clock, for tests. Default: `new Date()`. */
  now?: () => Date;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line));
}

function logfmtValue(value: string): string {
  if (value !== "" && /^[^\s"=\\]+$/.test(value)) return value;
  return JSON.stringify(value);
}

/**
 * Formats one logfmt line (with trailing newline).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatLogfmt } from "./logger.ts";
 * const line = formatLogfmt({ ts: "t", level: "info", msg: "Listening", address: ":9900" });
 * assert(line === 'ts=t level=info msg=Listening address=:9900\n');
 * ```
 *
 * @param fields Key/value pairs in order; undefined values are left out.
 * @returns The line.
 */
export function formatLogfmt(fields: LogFields): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    parts.push(`${key}=${logfmtValue(String(value))}`);
  }
  return parts.join(" ") + "\n";
}

/**
 * Creates a logger.
 *
 * @param options Level, format and sink.
 * @returns The logger.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = LOG_LEVELS.indexOf(options.level ?? "info");
  const format = options.format ?? "logfmt";
  const write = options.write ?? writeStderr;
  const now = options.now ?? (() => new Date());
  function log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (LOG_LEVELS.indexOf(level) < min) return;
    const all = { ts: now().toISOString(), level, msg, ...fields };
    write(format === "json" ? JSON.stringify(all) + "\n" : formatLogfmt(all));
  }
  return {
    debug: (msg, fields) => log("debug", msg, fields),
    info: (msg, fields) => log("info", msg, fields),
    warn: (msg, fields) => log("warn", msg, fields),
    error: (msg, fields) => log("error", msg, fields),
  };
}
