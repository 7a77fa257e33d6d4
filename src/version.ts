/**
 * The exporter's version, reported by `--version`, the status page and
 * `kvm_exporter_build_info`.
 *
 * @module
 */

/** The release version. */
export const VERSION = "0.1.0";
