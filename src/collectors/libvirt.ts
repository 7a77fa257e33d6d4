/**
 * The `libvirt` collector: KVM's binary stats as libvirt (≥ 8.9) republishes
 * them on its read-only socket, for hosts where libvirtd holds every QEMU's
 * monitor and kernel lockdown hides debugfs's counters; and every domain's
 * run state, CPU time, memory, disks and interfaces. One call per scrape
 * (`virConnectGetAllDomainStats`, groups state, vCPU, VM and those switched
 * on of cpu-total, balloon, block and interface; every domain, active or not;
 * no wait on a busy domain job). Domains are matched to discovered VMs by
 * UUID; the KVM stats are reported for those only, the other groups for every
 * domain, under its VM's `domain` label (kept once the VM stops) or else its
 * libvirt name. Also reads
 * each VM's domain XML once per VM lifetime for its names, and reports them as
 * each VM's identity (`kvm_vm_info`).
 *
 * @module
 */

import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import type { Logger } from "../log/logger.ts";
import type { FamilySet } from "../metrics/model.ts";
import { flag, regexpValue } from "../cli/flag.ts";
import { GLOBAL_DOMAIN } from "../discovery/vm_names.ts";
import { type DomainInfo, DomainInfoCache } from "../libvirt/domain_info.ts";
import {
  type DomainStats,
  type LibvirtKvmStat,
  parseDomainStats,
} from "../libvirt/domain_stats.ts";
import { SKIP_REASONS, type SkipReason } from "../libvirt/domain_groups.ts";
import { LibvirtClient, LibvirtError } from "../libvirt/libvirt_client.ts";
import { type NovaMetadata, novaMetadataOf } from "../libvirt/nova_metadata.ts";
import { devicesOf, type DomainDevices } from "../libvirt/domain_devices.ts";
import { parseDomainXml } from "../libvirt/domain_xml.ts";
import {
  type RemoteDomain,
  VIR_CONNECT_GET_ALL_DOMAINS_STATS,
  VIR_DOMAIN_STATS,
} from "../libvirt/remote_protocol.ts";
import { type StatLevel, StatSet, type StatVm } from "../stats/stat.ts";
import { libvirtStatType } from "../stats/stat_type.ts";
import type { ClientErrorReason } from "../system/client_error.ts";
import type { Collector, CollectorOutput, ScrapeContext } from "./collector.ts";
import { declareCollector } from "./collector_declaration.ts";
import {
  addDeviceInfo,
  addDomainFamilies,
  LIBVIRT_GROUPS,
  type LibvirtGroup,
} from "./libvirt_families.ts";
import type { NameFilter } from "./name_filter.ts";

/** The name of this collector. */
export const LIBVIRT = "libvirt";

/** The reasons of `kvm_exporter_libvirt_errors`. */
export const LIBVIRT_ERROR_REASONS: readonly ClientErrorReason[] = [
  "timeout",
  "refused",
  "closed",
  "protocol",
  "remote",
  "permission",
  "other",
];

// libvirt < 8.9 drops the VM group (and the KVM stats of the vCPU group) without an error: only
// VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS would make it refuse, and it is not set.
const BASE_STATS = VIR_DOMAIN_STATS.state | VIR_DOMAIN_STATS.vcpu | VIR_DOMAIN_STATS.vm;
const GROUP_STATS: Record<LibvirtGroup, number> = {
  state: 0, // Always asked for: it costs nothing and says which domains are active.
  cpu: VIR_DOMAIN_STATS.cpuTotal,
  balloon: VIR_DOMAIN_STATS.balloon,
  block: VIR_DOMAIN_STATS.block,
  interface: VIR_DOMAIN_STATS.interface,
};
// No ACTIVE (nor INACTIVE) flag: every domain, as the libvirt exporters do, so that a shut-off
// domain shows as such. An inactive domain has no vCPU or VM stats.
const FLAGS = VIR_CONNECT_GET_ALL_DOMAINS_STATS.nowait;

const MAX_LOGGED = 1024;

/** Options of {@linkcode createLibvirtCollector}. */
export interface LibvirtCollectorOptions {
  /** The socket, e.g. `/run/libvirt/libvirt-sock-ro`. */
  socket: string;
  /** Deadline of each libvirt call, in ms (the scrape's deadline cuts it shorter). */
  timeoutMs: number;
  /** Logger. */
  logger: Logger;
  /** The groups reported beside the KVM stats; all by default. */
  groups?: ReadonlySet<LibvirtGroup>;
  /** Which disks are reported; all by default. */
  devices?: NameFilter;
  /** Which interfaces are reported; all by default. */
  interfaces?: NameFilter;
}

const EVERY_NAME: NameFilter = { include: undefined, exclude: undefined };

function statValue(stat: LibvirtKvmStat): bigint | undefined {
  if (typeof stat.value === "bigint") return stat.value;
  return Number.isSafeInteger(stat.value) ? BigInt(stat.value) : undefined;
}

function addKvmStats(
  out: StatSet,
  place: { level: StatLevel; vm: StatVm; vcpu: string | undefined },
  stats: readonly LibvirtKvmStat[],
): void {
  for (const stat of stats) {
    const value = statValue(stat);
    if (value === undefined) continue;
    out.add({
      ...place,
      name: stat.name,
      type: libvirtStatType(stat.name, stat.type, typeof stat.value === "number"),
      value,
      source: "libvirt",
    });
  }
}

/** One domain's KVM stats, with each vCPU stat also summed per VM as debugfs's VM dir does. */
function domainStats(vm: DiscoveredVm, stats: DomainStats): StatSet {
  const out = new StatSet();
  const place: StatVm = { dir: vm.dir, domain: vm.domain };
  addKvmStats(out, { level: "vm", vm: place, vcpu: undefined }, stats.vm);
  const sums = new Map<string, LibvirtKvmStat>();
  for (const vcpu of stats.vcpus) {
    addKvmStats(out, { level: "vcpu", vm: place, vcpu: String(vcpu.index) }, vcpu.kvm);
    for (const stat of vcpu.kvm) {
      const value = statValue(stat);
      if (value === undefined) continue;
      const sum = sums.get(stat.name);
      const before = sum === undefined ? 0n : sum.value as bigint;
      sums.set(stat.name, { ...stat, value: before + value });
    }
  }
  addKvmStats(out, { level: "vm", vm: place, vcpu: undefined }, [...sums.values()]);
  return out;
}

function addSkipped(out: FamilySet, skipped: Record<SkipReason, number>): void {
  out.addByReason({
    name: "kvm_exporter_libvirt_skipped_values",
    help: "Values in libvirt's last reply the exporter skipped, by reason " +
      "(type, range, unnamed or duplicate device, too_many devices).",
    type: "gauge",
  }, { reasons: SKIP_REASONS, count: (reason) => skipped[reason] });
}

function addErrors(out: FamilySet, failed: ClientErrorReason | undefined): void {
  out.addByReason({
    name: "kvm_exporter_libvirt_errors",
    help: "Whether the libvirt query failed in the last scrape, by reason.",
    type: "gauge",
  }, { reasons: LIBVIRT_ERROR_REASONS, count: (reason) => failed === reason ? 1 : 0 });
}

/** A discovered VM and its libvirt domain. */
interface MatchedDomain {
  vm: DiscoveredVm;
  domain: RemoteDomain;
}

/** A VM whose domain XML is to be read before its info families are added. */
interface PendingInfo {
  match: MatchedDomain;
  label: string;
  stats: DomainStats;
}

/** A VM's lifetime, as the domain info cache keys it. */
function lifetimeKey(vm: DiscoveredVm): string {
  return `${vm.uuid}\n${vm.pid}`;
}

/** The disks' and interfaces' names libvirt gave, as one text. */
function deviceNames(stats: DomainStats): string {
  const { blocks, nets } = stats.groups;
  return [...blocks.map((d) => d.name), "", ...nets.map((n) => n.name)].join("\n");
}

/**
 * The `domain` label each libvirt domain had while it was a discovered VM, by UUID: a VM that
 * stops is no longer discovered, and keeps its label (vm.yaml's name, an `@PID-FD` rename)
 * instead of turning into another series under its libvirt name. One label, one UUID; a UUID
 * libvirt no longer lists is forgotten.
 */
class DomainLabels {
  readonly #byUuid = new Map<string, string>();

  /** Records a discovered VM's label; another UUID that had it loses it. */
  remember(uuid: string, label: string): void {
    if (this.#byUuid.get(uuid) === label) return;
    for (const [other, had] of this.#byUuid) if (had === label) this.#byUuid.delete(other);
    this.#byUuid.set(uuid, label);
  }

  /** The label a domain had as a discovered VM, if it had one. */
  get(uuid: string): string | undefined {
    return this.#byUuid.get(uuid);
  }

  /** Forgets the UUIDs not in `listed`. */
  retain(listed: ReadonlySet<string>): void {
    for (const uuid of this.#byUuid.keys()) if (!listed.has(uuid)) this.#byUuid.delete(uuid);
  }
}

/** The libvirt collector: one client, kept open across scrapes. */
class LibvirtCollector implements Collector {
  readonly name = LIBVIRT;
  readonly #options: LibvirtCollectorOptions;
  readonly #groups: ReadonlySet<LibvirtGroup>;
  readonly #devices: NameFilter;
  readonly #interfaces: NameFilter;
  readonly #client: LibvirtClient;
  readonly #logged = new Set<string>();
  /** Domain names and devices by VM lifetime, read once each (again for a new device). */
  readonly #domainInfo = new DomainInfoCache();
  /** The device names libvirt gave when each VM's XML was last read, by VM lifetime. */
  readonly #xmlReadFor = new Map<string, string>();
  /** The labels of domains seen as discovered VMs, kept while libvirt lists them. */
  readonly #labels = new DomainLabels();

  constructor(options: LibvirtCollectorOptions) {
    this.#options = options;
    this.#groups = options.groups ?? new Set(LIBVIRT_GROUPS);
    this.#devices = options.devices ?? EVERY_NAME;
    this.#interfaces = options.interfaces ?? EVERY_NAME;
    this.#client = new LibvirtClient({ path: options.socket, timeoutMs: options.timeoutMs });
    this.#stats = [...this.#groups].reduce((bits, group) => bits | GROUP_STATS[group], BASE_STATS);
  }

  /** The `virDomainStatsTypes` asked for. */
  readonly #stats: number;

  async collect(context: ScrapeContext, out: CollectorOutput): Promise<void> {
    // At the scrape's deadline the registry answers at once: say "timeout" before it does (the
    // listener runs while the abort is dispatched, before the answer is assembled).
    const onDeadline = (): void => addErrors(out.families, "timeout");
    context.signal.addEventListener("abort", onDeadline, { once: true });
    try {
      await this.#collectStats(context, out);
    } catch (error) {
      const reason = error instanceof LibvirtError ? error.reason : "other";
      addErrors(out.families, reason);
      throw error;
    } finally {
      context.signal.removeEventListener("abort", onDeadline);
    }
    addErrors(out.families, undefined);
  }

  #logOnce(key: string, message: { msg: string; fields: Record<string, string> }): void {
    const { msg, fields } = message;
    const { logger } = this.#options;
    if (this.#logged.has(key)) {
      logger.debug(msg, fields);
    } else {
      // Keys name domains, which come and go: a cap keeps the set from growing with churn.
      if (this.#logged.size >= MAX_LOGGED) this.#logged.clear();
      this.#logged.add(key);
      logger.warn(`${msg} (logged once)`, fields);
    }
  }

  /**
   * Whether a VM's domain XML is to be read in this scrape: once per VM lifetime, and again when
   * libvirt names a disk or interface the XML lacked (plugged in since), once per set of names.
   */
  #needsXml(vm: DiscoveredVm, stats: DomainStats): boolean {
    const info = this.#domainInfo.get(vm);
    if (info === undefined) return true;
    const { devices } = info;
    if (devices === undefined) return false; // It did not parse: not again in this lifetime.
    const { blocks, nets } = stats.groups;
    const lacking = blocks.some((disk) => !devices.disks.has(disk.name)) ||
      nets.some((net) => !devices.interfaces.has(net.name));
    return lacking && this.#xmlReadFor.get(lifetimeKey(vm)) !== deviceNames(stats);
  }

  /** Reads the names and devices of a VM's domain; a libvirt failure is retried next scrape. */
  async #readInfo(
    pending: PendingInfo,
    scrape: { signal: AbortSignal; out: CollectorOutput },
  ): Promise<void> {
    const { vm, domain } = pending.match;
    const { signal, out } = scrape;
    let nova: NovaMetadata | undefined;
    let devices: DomainDevices | undefined;
    try {
      const root = parseDomainXml(await this.#client.getDomainXml(domain, { signal }));
      nova = novaMetadataOf(root);
      devices = devicesOf(root);
    } catch (error) {
      if (error instanceof LibvirtError) throw error;
      this.#logOnce(`xml\n${vm.uuid}`, {
        msg: "Cannot read the domain XML (Nova metadata, disk bus, MAC)",
        fields: { domain: vm.domain, libvirt_name: domain.name, err: (error as Error).message },
      });
    }
    const identity: DomainInfo = devices === undefined
      ? { libvirtName: domain.name, nova }
      : { libvirtName: domain.name, nova, devices };
    this.#domainInfo.set(vm, identity);
    this.#xmlReadFor.set(lifetimeKey(vm), deviceNames(pending.stats));
    out.observations.observe(vm.dir, { identity });
  }

  /** The identities read in earlier scrapes: what libvirt said stays while the VM lives. */
  #observeKnown(vms: readonly DiscoveredVm[], out: CollectorOutput): void {
    this.#domainInfo.retain(vms);
    const present = new Set(vms.map(lifetimeKey));
    for (const key of this.#xmlReadFor.keys()) if (!present.has(key)) this.#xmlReadFor.delete(key);
    for (const vm of vms) {
      const identity = this.#domainInfo.get(vm);
      if (identity !== undefined) out.observations.observe(vm.dir, { identity });
    }
  }

  /**
   * The labels of the domains no discovered VM has (shut off, TCG), by UUID: the one a domain had
   * as a discovered VM in this exporter's life, unless a discovered VM has it now. Each is added
   * to `taken`, so that no other domain's libvirt name takes it.
   */
  #rememberedLabels(
    records: readonly { domain: RemoteDomain }[],
    vms: { byUuid: ReadonlyMap<string, DiscoveredVm>; taken: Set<string> },
  ): Map<string, string> {
    const { byUuid, taken } = vms;
    this.#labels.retain(new Set(records.map((record) => record.domain.uuid)));
    for (const { domain } of records) {
      const vm = byUuid.get(domain.uuid);
      if (vm !== undefined) this.#labels.remember(domain.uuid, vm.domain);
    }
    const kept = new Map<string, string>();
    for (const { domain } of records) {
      if (byUuid.has(domain.uuid)) continue;
      const label = this.#labels.get(domain.uuid);
      if (label !== undefined && !taken.has(label)) kept.set(domain.uuid, label);
    }
    for (const label of kept.values()) taken.add(label);
    return kept;
  }

  /**
   * The `domain` label of a domain no discovered VM has and none had: its libvirt name, unless a
   * discovered VM has that label (or it is "global", or a stopped VM's), which it must not take.
   */
  #labelOf(name: string, taken: ReadonlySet<string>): string | undefined {
    if (!taken.has(name)) return name;
    this.#logOnce(`taken\n${name}`, {
      msg: "Skipping a libvirt domain whose name is another VM's domain label",
      fields: { libvirt_name: name },
    });
    return undefined;
  }

  async #collectStats(context: ScrapeContext, out: CollectorOutput): Promise<void> {
    const { signal } = context;
    const byUuid = new Map<string, DiscoveredVm>();
    const taken = new Set([GLOBAL_DOMAIN]);
    for (const vm of context.discovery.vms) {
      if (vm.uuid !== undefined) byUuid.set(vm.uuid, vm);
      taken.add(vm.domain);
    }
    this.#observeKnown(context.discovery.vms, out);
    const records = await this.#client.getAllDomainStats(this.#stats, FLAGS, { signal });
    const remembered = this.#rememberedLabels(records, { byUuid, taken });
    const pending: PendingInfo[] = [];
    const options = { groups: this.#groups, devices: this.#devices, interfaces: this.#interfaces };
    const skipped = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<
      SkipReason,
      number
    >;
    for (const record of records) {
      const vm = byUuid.get(record.domain.uuid);
      const stats = parseDomainStats(record);
      for (const reason of SKIP_REASONS) skipped[reason] += stats.skipped[reason];
      for (const { field, reason, message } of stats.problems) {
        // Not keyed on the message: it holds the value, which a peer may change every scrape.
        this.#logOnce(`problem\n${record.domain.uuid}\n${field}\n${reason}`, {
          msg: "Skipping a libvirt field",
          fields: { field, reason, err: message },
        });
      }
      const label = vm?.domain ?? remembered.get(record.domain.uuid) ??
        this.#labelOf(record.domain.name, taken);
      if (label === undefined) continue;
      const active = record.domain.id !== -1;
      const runState = addDomainFamilies(out.families, { label, stats, active }, options);
      // Not a KVM VM this host's debugfs shows (shut off, TCG, or gone): no KVM stats, no XML.
      if (vm === undefined) {
        addDeviceInfo(out.families, { label, stats, devices: undefined }, options);
        continue;
      }
      out.stats.addAll(domainStats(vm, stats));
      if (stats.vcpuCurrent !== undefined) {
        out.observations.observe(vm.dir, { vcpus: stats.vcpuCurrent });
      }
      if (runState !== undefined) out.observations.observe(vm.dir, { runState });
      const match = { vm, domain: record.domain };
      // The info families wait for an XML to be read, so that their labels never change under a
      // join: a first scrape without `bus` and the next with it would be two series for a while.
      if (this.#needsXml(vm, stats)) pending.push({ match, label, stats });
      else {
        const devices = this.#domainInfo.get(vm)?.devices;
        addDeviceInfo(out.families, { label, stats, devices }, options);
      }
    }
    addSkipped(out.families, skipped);
    // One connection serves one call at a time: the XMLs are read in turn, each once per VM
    // lifetime (and again for a new device).
    for (const info of pending) {
      await this.#readInfo(info, { signal, out });
      const devices = this.#domainInfo.get(info.match.vm)?.devices;
      addDeviceInfo(out.families, { label: info.label, stats: info.stats, devices }, options);
    }
  }
}

/**
 * Creates the libvirt collector. Its one client keeps the connection open
 * across scrapes and re-opens it after any error.
 *
 * @param options Socket, timeout and a logger.
 * @returns The collector.
 */
export function createLibvirtCollector(options: LibvirtCollectorOptions): Collector {
  return new LibvirtCollector(options);
}

/** `--[no-]collector.libvirt.<group>`: on by default. */
function groupFlag(group: LibvirtGroup, what: string) {
  return flag({
    name: `collector.${LIBVIRT}.${group}`,
    type: "bool",
    default: true,
    help: `Report ${what}`,
  });
}

/** A regexp flag, matching anywhere in a name as node_exporter's do; none by default. */
function patternFlag(name: string, help: string) {
  return flag({
    name: `collector.${LIBVIRT}.${name}`,
    type: "string",
    help,
    convert: regexpValue,
  });
}

/** The libvirt collector's declaration: off by default (it needs libvirt ≥ 8.9's socket). */
export const LIBVIRT_COLLECTOR = declareCollector({
  name: LIBVIRT,
  defaultEnabled: false,
  flags: {
    socket: flag({
      name: "collector.libvirt.socket",
      type: "string",
      default: "/run/libvirt/libvirt-sock-ro",
      help: "libvirt's read-only socket (modular daemons: /run/libvirt/virtqemud-sock-ro)",
    }),
    timeoutMs: flag({
      name: "collector.libvirt.timeout",
      type: "duration",
      default: "2s",
      help: "Timeout of each libvirt call",
    }),
    state: groupFlag("state", "each domain's run state and its reason"),
    cpu: groupFlag("cpu", "each domain's CPU time, total, user and system"),
    balloon: groupFlag("balloon", "each domain's balloon, resident and guest-reported memory"),
    block: groupFlag("block", "each domain's disks: I/O and sizes"),
    interface: groupFlag("interface", "each domain's network interfaces: traffic, errors, drops"),
    deviceInclude: patternFlag("device-include", "Regexp of disks (e.g. vda) to report"),
    deviceExclude: patternFlag("device-exclude", "Regexp of disks not to report"),
    interfaceInclude: patternFlag(
      "interface-include",
      "Regexp of interfaces (host side, e.g. vnet0) to report",
    ),
    interfaceExclude: patternFlag("interface-exclude", "Regexp of interfaces not to report"),
  },
  create: (values, { logger }) => {
    const { socket, timeoutMs } = values;
    const groups = new Set(LIBVIRT_GROUPS.filter((group) => values[group]));
    const devices = { include: values.deviceInclude, exclude: values.deviceExclude };
    const interfaces = { include: values.interfaceInclude, exclude: values.interfaceExclude };
    return createLibvirtCollector({ socket, timeoutMs, logger, groups, devices, interfaces });
  },
});
