/**
 * The `tap` collector: each VM's network counters from the tap devices its command line names
 * (`-netdev tap,ifname=...`, Proxmox's `tap<VMID>i<N>`), read from the VMM's own
 * `<procfs>/PID/net/dev` (its network namespace, where QEMU made the tap; no new mount), read once
 * per namespace and scrape however many VMs share it (Proxmox: all, the host's). It needs
 * no QMP and no libvirt, so it is a collector of its own, on by default: on a plain-QEMU or
 * Proxmox host it gives every VM's traffic with nothing to configure, whether `--collector.qmp`
 * is on or not.
 *
 * The counters are the guest's point of view, as libvirt reports them: what the host receives on
 * a tap is what the guest sent, so the tap's receive is the guest's transmit.
 *
 * A command line is whatever its writer made it: a tap two VMs name is neither's, and where the
 * VMM's fds can be read, a tap it does not hold is not its (`tap_owners.ts`).
 *
 * @module
 */

import type { DiscoveredVm } from "../discovery/vm_discovery.ts";
import type { TapInterface } from "../discovery/vmm_cmdline.ts";
import type { FamilySet, Labels } from "../metrics/model.ts";
import { NETWORK_FAMILIES } from "../metrics/vm_families.ts";
import type { FamilyMeta } from "../metrics/vm_families.ts";
import { flag, regexpValue } from "../cli/flag.ts";
import type { FileSystem } from "../system/file_system.ts";
import { Limiter } from "../system/limiter.ts";
import type { Logger } from "../log/logger.ts";
import type { Collector, CollectorOutput, ScrapeContext } from "./collector.ts";
import { declareCollector } from "./collector_declaration.ts";
import { guardedRead, type GuardedReadResult } from "./guarded_read.ts";
import { type NameFilter, passes } from "./name_filter.ts";
import { NET_DEV_MAX_BYTES, type NetDevCounters, parseNetDev } from "./net_dev.ts";
import { HeldTapsCache } from "./tap_owners.ts";

/** The name of this collector. */
export const TAP = "tap";

/** Why a tap's counters are missing from a scrape. */
export type TapProblem =
  | "ambiguous" // Two VMs' command lines name it: whose it is cannot be told from them.
  | "not_held" // Its VMM's fds can be read and hold no such tap.
  | "unreadable" // The VMM's net/dev could not be read (the VM went, or permission).
  | "blocked" // Its read blocked past the deadline, or an earlier read of it has not returned.
  | "missing" // net/dev has no line for it (hot-unplugged, or in another namespace).
  | "bad_line"; // Its line does not have 16 unsigned counters.

/** The reasons of `kvm_exporter_tap_problems`, in the order it lists them. */
export const TAP_PROBLEMS: readonly TapProblem[] = [
  "ambiguous",
  "not_held",
  "unreadable",
  "blocked",
  "missing",
  "bad_line",
];

/** Options of {@linkcode createTapCollector}. */
export interface TapCollectorOptions {
  /** procfs mount point. */
  procfs: string;
  /** File access. */
  fs: FileSystem;
  /** Logger. */
  logger: Logger;
  /** Which interfaces are reported (by the tap's name). */
  interfaces: NameFilter;
  /** procfs reads (net/dev, fd scans, namespace links) at once. Default 8. */
  concurrency?: number;
}

/** Each guest-side family and the host-side counter it is: the tap's receive is the guest's send. */
const GUEST_VIEW: readonly [FamilyMeta, keyof NetDevCounters][] = [
  [NETWORK_FAMILIES.receiveBytes, "transmitBytes"],
  [NETWORK_FAMILIES.receivePackets, "transmitPackets"],
  [NETWORK_FAMILIES.receiveErrors, "transmitErrors"],
  [NETWORK_FAMILIES.receiveDrops, "transmitDrops"],
  [NETWORK_FAMILIES.transmitBytes, "receiveBytes"],
  [NETWORK_FAMILIES.transmitPackets, "receivePackets"],
  [NETWORK_FAMILIES.transmitErrors, "receiveErrors"],
  [NETWORK_FAMILIES.transmitDrops, "receiveDrops"],
];

/**
 * Adds one tap's families, from the guest's point of view.
 *
 * @param out Where the families go.
 * @param tap The VM's domain, the tap, and its host-side counters.
 */
export function addTapFamilies(
  out: FamilySet,
  tap: { domain: string; tap: TapInterface; counters: NetDevCounters },
): void {
  const labels: Labels = [["domain", tap.domain], ["interface", tap.tap.ifname]];
  out.add(NETWORK_FAMILIES.info, [
    ...labels,
    ["mac", tap.tap.mac],
    ["model", tap.tap.model],
    ["netdev", tap.tap.netdev],
  ], 1);
  for (const [family, hostSide] of GUEST_VIEW) out.add(family, labels, tap.counters[hostSide]);
}

/** The collector's options and what it keeps across scrapes. */
interface TapState {
  readonly options: TapCollectorOptions;
  readonly limiter: Limiter;
  /** VMs whose unreadable net/dev was logged, by VM dir. */
  readonly logged: Set<string>;
  /** What each VM's fds say of its taps, scanned again only while they miss one (with backoff). */
  readonly held: HeldTapsCache;
  /** Each VM's network namespace key, by VM dir (see {@linkcode namespaceOf}). */
  readonly namespaces: Map<string, string>;
}

/** The VM's taps that pass the filter, and the tap names more than one VM claims. */
function claimsOf(
  state: TapState,
  vms: readonly DiscoveredVm[],
): { taps: Map<DiscoveredVm, TapInterface[]>; ambiguous: Set<string> } {
  const taps = new Map<DiscoveredVm, TapInterface[]>();
  const claimed = new Set<string>();
  const ambiguous = new Set<string>();
  for (const vm of vms) {
    const mine = (vm.taps ?? []).filter((t) => passes(state.options.interfaces, t.ifname));
    if (mine.length === 0) continue;
    taps.set(vm, mine);
    for (const { ifname } of mine) {
      if (claimed.has(ifname)) ambiguous.add(ifname);
      claimed.add(ifname);
    }
  }
  return { taps, ambiguous };
}

/**
 * The VM's taps the kernel does not contradict: not claimed by another VM, and held by the VMM
 * where its fds can be read. Returns them and the problems of the others.
 */
async function ownTaps(
  state: TapState,
  vm: { vm: DiscoveredVm; taps: TapInterface[]; ambiguous: ReadonlySet<string> },
): Promise<{ taps: TapInterface[]; problems: TapProblem[] }> {
  const problems: TapProblem[] = [];
  const held = await state.held.of(vm.vm, vm.taps.map((t) => t.ifname));
  const taps = vm.taps.filter((tap) => {
    if (vm.ambiguous.has(tap.ifname)) problems.push("ambiguous");
    else if (held.known && !held.names.has(tap.ifname)) problems.push("not_held");
    else return true;
    return false;
  });
  return { taps, problems };
}

/** A VM and its own taps, to be read from its network namespace's net/dev. */
interface VmTaps {
  vm: DiscoveredVm;
  taps: TapInterface[];
}

/**
 * The key of the VM's network namespace: `readlink(<procfs>/PID/ns/net)` (`net:[4026531840]`),
 * read once per VM dir (a VMM does not change namespace). Where it cannot be read (the kernel
 * wants ptrace access), the VM's own key: its net/dev is read on its own.
 */
async function namespaceOf(state: TapState, vm: DiscoveredVm): Promise<string> {
  let key = state.namespaces.get(vm.dir);
  if (key === undefined) {
    const { fs, procfs } = state.options;
    const link = await state.limiter.run(() => fs.readLink(`${procfs}/${vm.pid}/ns/net`))
      .catch(() => undefined);
    key = link === undefined ? `vm ${vm.dir}` : `ns ${link}`;
    state.namespaces.set(vm.dir, key);
  }
  return key;
}

/**
 * Reads one network namespace's net/dev once, through the first of its VMs whose VMM is still
 * there, and adds every one of its VMs' taps; returns their problems.
 */
async function collectNamespace(
  state: TapState,
  scrape: { context: ScrapeContext; out: FamilySet; members: VmTaps[] },
): Promise<TapProblem[]> {
  const { context, out, members } = scrape;
  const { fs, procfs, logger } = state.options;
  const { limiter } = state;
  const taps = members.flatMap((m) => m.taps);
  let read: GuardedReadResult = { ok: false, reason: "vanished", detail: "No VM" };
  let via: DiscoveredVm | undefined;
  let path = "";
  for (const member of members) {
    via = member.vm;
    path = `${procfs}/${via.pid}/net/dev`;
    read = await guardedRead(context, { path, maxBytes: NET_DEV_MAX_BYTES, fs, limiter });
    // A VMM that exited since discovery: another VM of the namespace reads the same file.
    if (read.ok || read.reason !== "vanished") break;
  }
  if (!read.ok) {
    if (via !== undefined && !state.logged.has(via.dir)) {
      state.logged.add(via.dir);
      logger.warn("Cannot read a VMM's net/dev; no network counters for its taps (logged once)", {
        domain: via.domain,
        path,
        reason: read.reason,
        err: read.detail,
      });
    }
    // A read cut by the deadline or not started behind a blocked one is blocked, as vm_process
    // and the read guard count it.
    const reason = read.reason;
    return taps.map(() => reason === "blocked" ? "blocked" : "unreadable");
  }
  const { counters, badLines } = parseNetDev(read.text, new Set(taps.map((t) => t.ifname)));
  const bad = new Set(badLines);
  const problems: TapProblem[] = [];
  for (const { vm, taps } of members) {
    for (const tap of taps) {
      const found = counters.get(tap.ifname);
      if (found !== undefined) addTapFamilies(out, { domain: vm.domain, tap, counters: found });
      else problems.push(bad.has(tap.ifname) ? "bad_line" : "missing");
    }
  }
  return problems;
}

function addProblems(out: FamilySet, problems: readonly TapProblem[]): void {
  out.addByReason({
    name: "kvm_exporter_tap_problems",
    help: "Tap devices named on a VMM's command line whose counters are not in the last " +
      "scrape, by reason.",
    type: "gauge",
  }, { reasons: TAP_PROBLEMS, count: (reason) => problems.filter((p) => p === reason).length });
}

async function collectTaps(
  state: TapState,
  scrape: { context: ScrapeContext; out: CollectorOutput },
): Promise<void> {
  const { context, out } = scrape;
  const { vms } = context.discovery;
  const present = new Set(vms.map((vm) => vm.dir));
  for (const dir of state.logged) if (!present.has(dir)) state.logged.delete(dir);
  state.held.keepOnly(present);
  for (const dir of state.namespaces.keys()) if (!present.has(dir)) state.namespaces.delete(dir);
  const { taps, ambiguous } = claimsOf(state, vms);
  const owned = await Promise.all([...taps].map(async ([vm, claimed]) => {
    const own = await ownTaps(state, { vm, taps: claimed, ambiguous });
    const namespace = own.taps.length === 0 ? undefined : await namespaceOf(state, vm);
    return { vm, ...own, namespace };
  }));
  // One read of net/dev per network namespace: on Proxmox and plain QEMU every VMM is in the
  // host's, whose net/dev lists every VM's taps.
  const namespaces = new Map<string, VmTaps[]>();
  for (const { vm, taps, namespace } of owned) {
    if (namespace === undefined) continue;
    const members = namespaces.get(namespace) ?? [];
    members.push({ vm, taps });
    namespaces.set(namespace, members);
  }
  const read = await Promise.all(
    [...namespaces.values()].map((members) =>
      collectNamespace(state, { context, out: out.families, members })
    ),
  );
  const problems = [...owned.map((o) => o.problems), ...read];
  addProblems(out.families, problems.flat());
}

/**
 * Creates the tap collector.
 *
 * @param options procfs, file access, logger and the interface filter.
 * @returns The collector.
 */
export function createTapCollector(options: TapCollectorOptions): Collector {
  const limiter = new Limiter(options.concurrency ?? 8);
  const { procfs, fs } = options;
  const state: TapState = {
    options,
    limiter,
    logged: new Set(),
    held: new HeldTapsCache({ procfs, fs, limiter }),
    namespaces: new Map(),
  };
  return {
    name: TAP,
    collect: (context, out) => collectTaps(state, { context, out }),
  };
}

/**
 * The tap collector's declaration: on by default (procfs only, one net/dev read per network
 * namespace of VMs with taps).
 */
export const TAP_COLLECTOR = declareCollector({
  name: TAP,
  defaultEnabled: true,
  flags: {
    include: flag({
      name: "collector.tap.interface-include",
      type: "string",
      help: "Regexp of tap devices to report (default: all)",
      convert: regexpValue,
    }),
    exclude: flag({
      name: "collector.tap.interface-exclude",
      type: "string",
      help: "Regexp of tap devices not to report",
      convert: regexpValue,
    }),
  },
  create: ({ include, exclude }, { procfs, fs, logger }) =>
    createTapCollector({ procfs, fs, logger, interfaces: { include, exclude } }),
});
