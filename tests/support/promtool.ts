/**
 * `promtool check metrics` for tests, with the lint that the compat metric names cause
 * filtered out exactly, so that anything else (a parse error, lint on our own metrics) fails.
 *
 * @module
 */

import assert from "node:assert/strict";
import { programPath } from "./program_path.ts";

/**
 * The lint promtool 2.x prints for `kvm_stat_<stat>_count` families, whose names the original
 * exporter chose and whose `<stat>` part is the kernel's: gauges ending in `_count`, and the
 * kernel's unit spellings (`_ns`, `_bits`). Nothing else is tolerated, and never on a family
 * outside `kvm_stat_`.
 */
export const KNOWN_COMPAT_LINT: readonly RegExp[] = [
  /^kvm_stat_\w+_count non-histogram and non-summary metrics should not have "_count" suffix$/,
  /^kvm_stat_\w+_count metric names should not contain abbreviated units$/,
  /^kvm_stat_\w+_count use base unit "bytes" instead of "bits"$/,
];

/** What {@linkcode promtoolCheck} found. */
export interface PromtoolResult {
  /** promtool's exit code: 0 clean, 3 lint only, 1 a parse error. */
  code: number;
  /** Output lines that are not known compat lint (empty when all is well). */
  problems: string[];
}

/**
 * Where promtool is, or undefined when it is not installed.
 *
 * @returns Its path.
 */
export function findPromtool(): string | undefined {
  return programPath("promtool");
}

/**
 * Runs promtool with arguments (`check rules FILE`, `test rules FILE`, ...).
 *
 * @param promtool promtool's path.
 * @param options Its arguments, and the directory to run it in (relative paths in its files
 *   resolve from there).
 * @returns Its exit code and its stdout and stderr as one text.
 */
export async function runPromtool(
  promtool: string,
  options: { args: string[]; cwd?: string },
): Promise<{ code: number; out: string }> {
  const { code, stdout, stderr } = await new Deno.Command(promtool, {
    ...options,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, out: decoder.decode(stdout) + decoder.decode(stderr) };
}

/**
 * Runs `promtool check metrics` on every `every`-th body (the first included), asserts that each
 * has no problem, and logs how many it checked.
 *
 * @param promtool promtool's path.
 * @param bodies The exposition texts.
 * @param every Which share of them to check.
 */
export async function assertBodiesClean(
  promtool: string,
  bodies: readonly string[],
  every: number,
): Promise<void> {
  const sample = bodies.filter((_, i) => i % every === 0);
  for (const body of sample) {
    assert.deepEqual((await promtoolCheck(promtool, body)).problems, [], body);
  }
  console.log(`promtool check metrics: ${sample.length} of ${bodies.length} bodies, all clean`);
}

/**
 * Runs `promtool check metrics` on a body.
 *
 * @param promtool promtool's path.
 * @param body The exposition text.
 * @returns The exit code and every line that is not known compat lint.
 */
export async function promtoolCheck(promtool: string, body: string): Promise<PromtoolResult> {
  const child = new Deno.Command(promtool, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(body));
  await writer.close();
  const output = await child.output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  const problems = text.split("\n").filter((line) =>
    line.trim() !== "" && !KNOWN_COMPAT_LINT.some((lint) => lint.test(line))
  );
  if (output.code !== 0 && output.code !== 3) problems.unshift(`promtool exited ${output.code}`);
  return { code: output.code, problems };
}
