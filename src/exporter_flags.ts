/**
 * The scrape pipeline's own flags, beside the ones each collector declares:
 * where debugfs, procfs, sysfs and vm.yaml are, how metrics are named, and
 * whether the heap is given back when scrapes stop.
 *
 * @module
 */

import { flag, intInRange, normaliseDir, oneOf } from "./cli/flag.ts";
import { NAMING_SCHEMES } from "./naming/naming_scheme.ts";

/** The scrape pipeline's flags, by the key of their value in `Options`. */
export const EXPORTER_FLAGS = {
  kvmdebugDir: flag({
    name: "collector.kvmdebug.dir",
    type: "string",
    default: "/sys/kernel/debug/kvm",
    help: "KVM debug stat dir",
    convert: normaliseDir,
  }),
  vmmapOnlyListed: flag({
    name: "collector.vmmap.only-listed",
    type: "bool",
    default: false,
    help: "Export only the VMs listed in the VmMap yaml",
  }),
  vmmapPath: flag({
    name: "collector.vmmap.path",
    type: "string",
    default: "/etc/vm.yaml",
    help: "VmMap yaml path",
  }),
  histogramMaxBuckets: flag({
    name: "metrics.histogram.max-buckets",
    type: "int",
    default: 0,
    help: "Buckets per histogram at most, the rest merged into +Inf (0: all)",
    convert: intInRange({ min: 0 }),
  }),
  naming: flag({
    name: "metrics.naming",
    type: "string",
    default: "compat",
    help: "Metric names: compat (the original's) or prometheus",
    convert: oneOf(NAMING_SCHEMES),
  }),
  procfs: flag({
    name: "path.procfs",
    type: "string",
    default: "/proc",
    help: "procfs mountpoint",
    convert: normaliseDir,
  }),
  sysfs: flag({
    name: "path.sysfs",
    type: "string",
    default: "/sys",
    help: "sysfs mountpoint",
    convert: normaliseDir,
  }),
  releaseMemoryWhenIdle: flag({
    name: "runtime.release-memory-when-idle",
    type: "bool",
    default: true,
    help: "Give the heap a scrape left back to the system once scrapes stop (default: enabled).",
  }),
};
