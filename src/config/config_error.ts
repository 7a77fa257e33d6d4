/** Where a {@linkcode ConfigError} points to in a configuration file. */
export interface ConfigErrorOptions {
  /** Path of the configuration file. */
  path: string;
  /** 1-based line of the offending node. */
  line: number;
  /** 1-based column of the offending node. */
  column: number;
}

/**
 * A problem at a known position of a configuration file.
 *
 * The message is always one line: `path:line:column: detail`.
 *
 * @example Usage
 * ```ts
 * import { ConfigError } from "./config_error.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new ConfigError("unknown key \"foo\"", { path: "vm.yaml", line: 2, column: 3 });
 * assert.equal(error.message, "vm.yaml:2:3: unknown key \"foo\"");
 * ```
 */
export class ConfigError extends Error {
  /** Path of the configuration file. */
  readonly path: string;
  /** 1-based line of the offending node. */
  readonly line: number;
  /** 1-based column of the offending node. */
  readonly column: number;
  /** What is wrong, without the position; only its first line is kept. */
  readonly detail: string;

  /**
   * Creates an error pointing at `options.path`, `options.line` and `options.column`.
   *
   * @param detail What is wrong; anything after its first line break is dropped.
   * @param options Where it is wrong.
   */
  constructor(detail: string, options: ConfigErrorOptions) {
    const firstLine = detail.split(/\r\n|\r|\n/, 1)[0] ?? "";
    super(`${options.path}:${options.line}:${options.column}: ${firstLine}`);
    this.name = "ConfigError";
    this.path = options.path;
    this.line = options.line;
    this.column = options.column;
    this.detail = firstLine;
  }
}
