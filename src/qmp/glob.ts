/**
 * Expands a socket glob such as `/var/run/qemu-server/*.qmp`: wildcards
 * (`*`, `?`) in the last path component only, which is where VMMs vary them.
 *
 * @module
 */

import { type FileSystem, listDir } from "../system/file_system.ts";

/**
 * Turns a file-name glob into a regular expression.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { globToRegExp } from "./glob.ts";
 * assert(globToRegExp("*.qmp").test("101.qmp"));
 * ```
 *
 * @param glob The last path component, with `*` and `?`.
 * @returns An anchored expression.
 */
export function globToRegExp(glob: string): RegExp {
  const body = [...glob].map((ch) =>
    ch === "*" ? "[^/]*" : ch === "?" ? "[^/]" : ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  ).join("");
  return new RegExp(`^${body}$`);
}

/**
 * Lists the paths that match a glob, sorted.
 *
 * @param pattern The glob; its directory part is taken literally.
 * @param fs File access.
 * @returns Matching paths; none when the directory cannot be listed.
 */
export async function expandGlob(pattern: string, fs: FileSystem): Promise<string[]> {
  const slash = pattern.lastIndexOf("/");
  const dir = slash <= 0 ? (slash === 0 ? "/" : ".") : pattern.slice(0, slash);
  const match = globToRegExp(pattern.slice(slash + 1));
  try {
    const entries = await listDir(fs, dir);
    return entries.filter((e) => match.test(e.name)).map((e) =>
      `${dir === "/" ? "" : dir}/${e.name}`
    ).sort();
  } catch {
    return [];
  }
}
