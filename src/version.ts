/**
 * The exporter's version and build, reported by `--version`, the status page
 * and `kvm_exporter_build_info`.
 *
 * @module
 */

import buildInfo from "./build_info.json" with { type: "json" };

/** The release version. */
export const VERSION = "0.1.0";

/** The git revision `deno task compile` stamped into the binary; "unknown" when run from source. */
export const REVISION: string = buildInfo.revision;
