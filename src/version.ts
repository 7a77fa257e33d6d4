/**
 * The exporter's version and build, reported by `--version`, the status page
 * and `kvm_exporter_build_info`.
 *
 * @module
 */

import buildInfo from "./build_info.json" with { type: "json" };

/** The version of a build from source; a release stamps its own, from git (tools/compile.ts). */
export const SOURCE_VERSION = "0.1.0";

/** The release version: the one stamped at build time, else {@linkcode SOURCE_VERSION}. */
export const VERSION: string = (buildInfo as { version?: string }).version ?? SOURCE_VERSION;

/** The git revision a build stamped (`deno task compile`, `release`); "unknown" when run from source. */
export const REVISION: string = buildInfo.revision;
