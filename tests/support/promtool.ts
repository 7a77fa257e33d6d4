/**
 * Runs Prometheus's `promtool` (Debian's `prometheus` package) on text.
 *
 * @module
 */

/**
 * Where promtool is, or undefined when it is not installed.
 *
 * @returns Its path.
 */
export function promtoolPath(): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/promtool`).isFile) return `${dir}/promtool`;
    } catch {
      // Not in this dir.
    }
  }
  return undefined;
}

/**
 * Runs `promtool check metrics` on an exposition.
 *
 * @param promtool The promtool path.
 * @param text The exposition.
 * @returns Its exit code and everything it printed.
 */
export async function promtoolCheckMetrics(
  promtool: string,
  text: string,
): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(promtool, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    output: decoder.decode(output.stdout) + decoder.decode(output.stderr),
  };
}
