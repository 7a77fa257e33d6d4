/**
 * Finds the programs tests run (prometheus, promtool, openssl, ...) on PATH, so a test can skip
 * with a reason when one is not installed.
 *
 * @module
 */

/**
 * Where a program is on PATH.
 *
 * @param program Its name.
 * @returns Its path, or undefined when it is not installed.
 */
export function programPath(program: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${program}`).isFile) return `${dir}/${program}`;
    } catch {
      // Not in this dir.
    }
  }
  return undefined;
}
