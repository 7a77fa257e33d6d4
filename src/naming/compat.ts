/**
 * The `compat` naming scheme: the original exporter's names, byte for byte.
 * Every scalar stat is a gauge `kvm_stat_<stat>_count` (`kvm_stat_vcpu_<stat>_count`
 * for vCPU stats) with HELP `<stat> count from <source>`; host stats carry
 * `domain="global"`. Histograms have no compat name and are left out.
 *
 * @module
 */

import { GLOBAL_DOMAIN } from "../discovery/vm_names.ts";
import { FamilySet, type MetricFamily } from "../metrics/model.ts";
import { sanitizeMetricName } from "../metrics/metric_name.ts";
import type { KvmStat } from "../stats/stat.ts";
import { LabelSets } from "./label_sets.ts";

/** Options of {@linkcode compatFamilies}. */
export interface CompatOptions {
  /** The debugfs KVM dir, which the HELP of debugfs stats names. */
  kvmdebugDir: string;
}

/**
 * The family of a KVM stat in the original exporter's names: a gauge
 * `kvm_stat_<stat>_count` with HELP `<stat> count from <source>`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compatStatFamily } from "./compat.ts";
 * assert(compatStatFamily("vcpu_tsc-offset", "/sys/kernel/debug/kvm").name === "kvm_stat_vcpu_tsc_offset_count");
 * ```
 *
 * @param stem The stat's name, `vcpu_`-prefixed for vCPU stats.
 * @param source Where it was read: the debugfs dir, "qmp" or "libvirt".
 * @returns The family's name and HELP.
 */
export function compatStatFamily(stem: string, source: string): { name: string; help: string } {
  const clean = sanitizeMetricName(stem);
  return { name: `kvm_stat_${clean}_count`, help: `${clean} count from ${source}` };
}

type CompatMeta = Omit<MetricFamily, "samples">;

/** Where a family's stats came from, as its HELP names it. */
interface MetaSource {
  stem: string;
  source: string;
}

/**
 * Each family made once per scrape, by source and stat name, vCPU stats apart: found without
 * building a key string per stat.
 */
class CompatMetas {
  readonly #kvmdebugDir: string;
  readonly #groups = new Map<string, Map<string, CompatMeta>>();
  readonly #vcpuGroups = new Map<string, Map<string, CompatMeta>>();
  /** Each meta's stem and source, to name every source of a family that has several. */
  readonly sources = new Map<CompatMeta, MetaSource>();

  constructor(kvmdebugDir: string) {
    this.#kvmdebugDir = kvmdebugDir;
  }

  of(stat: KvmStat): CompatMeta {
    const vcpu = stat.level === "vcpu";
    const groups = vcpu ? this.#vcpuGroups : this.#groups;
    let group = groups.get(stat.source);
    if (group === undefined) {
      group = new Map();
      groups.set(stat.source, group);
    }
    let meta = group.get(stat.name);
    if (meta === undefined) {
      const source = stat.source === "debugfs" ? this.#kvmdebugDir : stat.source;
      const stem = vcpu ? `vcpu_${stat.name}` : stat.name;
      meta = { ...compatStatFamily(stem, source), type: "gauge" };
      group.set(stat.name, meta);
      this.sources.set(meta, { stem, source });
    }
    return meta;
  }
}

/**
 * Names every source of a family whose series came from several (QMP for some VMs, libvirt for
 * others): `exits count from qmp, libvirt`, in the order the stats came. A family of one source
 * keeps the original exporter's HELP.
 */
function nameEverySource(
  families: MetricFamily[],
  used: { metas: ReadonlySet<CompatMeta>; sources: ReadonlyMap<CompatMeta, MetaSource> },
): void {
  const byFamily = new Map<string, MetaSource[]>();
  for (const meta of used.metas) {
    const source = used.sources.get(meta)!;
    const seen = byFamily.get(meta.name);
    if (seen === undefined) byFamily.set(meta.name, [source]);
    else if (!seen.some((s) => s.source === source.source)) seen.push(source);
  }
  for (const family of families) {
    const sources = byFamily.get(family.name);
    if (sources === undefined || sources.length < 2) continue;
    const list = sources.map((s) => s.source).join(", ");
    family.help = compatStatFamily(sources[0]!.stem, list).help;
  }
}

/**
 * Names stats the original exporter's way. HELP names the source of the
 * family's series (the debugfs dir, `qmp` or `libvirt`), every source when
 * they are several; when two stats end up with one series (`tsc-offset` and
 * `tsc_offset`), the first one wins.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compatFamilies } from "./compat.ts";
 * import { untypedStat } from "../stats/stat.ts";
 * const families = compatFamilies([{ level: "host", vm: undefined, vcpu: undefined, name: "exits", type: untypedStat(), value: 7n, source: "debugfs" }], { kvmdebugDir: "/d" });
 * assert(families[0]!.name === "kvm_stat_exits_count" && families[0]!.help === "exits count from /d");
 * ```
 *
 * @param stats The scrape's stats, debugfs ones first.
 * @param options The debugfs dir.
 * @returns The families.
 */
export function compatFamilies(
  stats: Iterable<KvmStat>,
  options: CompatOptions,
): MetricFamily[] {
  const out = new FamilySet();
  // A host has a few hundred stat names and many VMs: each name's family is made once per scrape.
  const metas = new CompatMetas(options.kvmdebugDir);
  const labels = new LabelSets({ host: [["domain", GLOBAL_DOMAIN]], missingDomain: GLOBAL_DOMAIN });
  // The metas that supplied a series: a few hundred, each added once per series.
  const used = new Set<CompatMeta>();
  for (const stat of stats) {
    if (typeof stat.value !== "bigint") continue;
    const meta = metas.of(stat);
    if (out.add(meta, labels.of(stat), stat.value)) used.add(meta);
  }
  const families = out.families();
  nameEverySource(families, { metas: used, sources: metas.sources });
  return families;
}
