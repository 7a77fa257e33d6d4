/**
 * The cpu-total, balloon, block and interface groups of one domain's
 * `virConnectGetAllDomainStats` record, typed. Pure; `domain_stats.ts` feeds
 * it the fields of those groups.
 *
 * What libvirt sends (libvirt-domain.c, `virConnectGetAllDomainStats`):
 * `cpu.time`, `cpu.user`, `cpu.system` (ullong, ns); `balloon.current`,
 * `balloon.maximum`, `balloon.rss` and the guest's own stats (ullong, KiB;
 * faults as counts; `balloon.last-update` in Unix seconds), the latter only
 * when the domain has a stats period; `block.count`, then per disk
 * `block.N.name` (the target, e.g. `vda`), `block.N.path`, `block.N.rd.reqs`,
 * `.rd.bytes`, `.rd.times` (ns), the same for `wr` and for `fl` (no bytes),
 * `.allocation`, `.capacity`, `.physical`, and `.errors` (Xen only, its
 * `oo_req`: the QEMU driver never sends it; there a failing disk shows as its
 * domain paused with reason `io_error`, where the disk's error policy stops);
 * `net.count`, then per interface `net.N.name` (the host side, e.g. `vnet0`)
 * and `net.N.rx.bytes`, `.rx.pkts`, `.rx.errs`, `.rx.drop`, the same for `tx`.
 *
 * @module
 */

/** The cpu-total fields used, ns. */
export const CPU_FIELDS = ["time", "user", "system"] as const;
/** The balloon fields used. */
export const BALLOON_FIELDS = [
  "current",
  "maximum",
  "rss",
  "available",
  "usable",
  "unused",
  "disk_caches",
  "major_fault",
  "minor_fault",
  "swap_in",
  "swap_out",
  "last-update",
] as const;
/** The balloon fields that are not in KiB: counts, and a time in seconds. */
const BALLOON_NOT_KIB: readonly string[] = ["major_fault", "minor_fault", "last-update"];
/** The balloon fields in KiB. */
export const BALLOON_KIB: ReadonlySet<BalloonField> = new Set(
  BALLOON_FIELDS.filter((field) => !BALLOON_NOT_KIB.includes(field)),
);
/** The per-disk numeric fields used. */
export const BLOCK_FIELDS = [
  "rd.reqs",
  "rd.bytes",
  "rd.times",
  "wr.reqs",
  "wr.bytes",
  "wr.times",
  "fl.reqs",
  "fl.times",
  "errors",
  "capacity",
  "allocation",
  "physical",
] as const;
/** The per-interface numeric fields used. */
export const NET_FIELDS = [
  "rx.bytes",
  "rx.pkts",
  "rx.errs",
  "rx.drop",
  "tx.bytes",
  "tx.pkts",
  "tx.errs",
  "tx.drop",
] as const;

/** A cpu-total field. */
export type CpuField = typeof CPU_FIELDS[number];
/** A balloon field. */
export type BalloonField = typeof BALLOON_FIELDS[number];
/** A per-disk field. */
export type BlockField = typeof BLOCK_FIELDS[number];
/** A per-interface field. */
export type NetField = typeof NET_FIELDS[number];

/** Disks, or interfaces, kept per domain: a peer claiming more costs only the rest. */
export const MAX_DEVICES = 256;
/** Longest device name or path kept as a label value. */
export const MAX_LABEL_CHARS = 4096;
/** Largest KiB value: more would not fit 64 bits once in bytes. */
const MAX_KIB = (1n << 54n) - 1n;

/** Why a value from libvirt was skipped. */
export type SkipReason = "type" | "range" | "unnamed" | "duplicate" | "too_many";

/** Every {@linkcode SkipReason}, in the order `kvm_exporter_libvirt_skipped_values` lists them. */
export const SKIP_REASONS: readonly SkipReason[] = [
  "type",
  "range",
  "unnamed",
  "duplicate",
  "too_many",
];

/** One disk or interface. */
export interface Device<F extends string> {
  /** N in `block.N.*` or `net.N.*`. */
  index: number;
  /** `block.N.name` (e.g. `vda`) or `net.N.name` (e.g. `vnet0`). */
  name: string;
  /** `block.N.path`, the disk's source, when libvirt knows one. */
  path?: string;
  /** The numeric fields present, as libvirt sent them. */
  values: Partial<Record<F, bigint>>;
}

/** The four groups of one domain. */
export interface DomainGroups {
  /** `cpu.*`, ns. */
  cpu: Partial<Record<CpuField, bigint>>;
  /** `balloon.*`, as libvirt sent them (KiB, counts, seconds). */
  balloon: Partial<Record<BalloonField, bigint>>;
  /** The disks, by index, at most {@linkcode MAX_DEVICES}. */
  blocks: Device<BlockField>[];
  /** The interfaces, by index, at most {@linkcode MAX_DEVICES}. */
  nets: Device<NetField>[];
}

/** One skip: why, the field it concerns, and a message naming the field and the value. */
export interface Skip {
  /** Why. */
  reason: SkipReason;
  /** The field, e.g. `block.0.rd.bytes`; for devices beyond the cap, `block` or `net`. */
  field: string;
  /** What was wrong, with the value (which may change every time; the field and reason do not). */
  message: string;
}

/** Reports skipped values (one unless `count` says). */
export type SkipReport = (skip: Skip, count?: number) => void;

interface RawDevice {
  index: number;
  name?: string;
  path?: string;
  values: Record<string, bigint>;
}

const GROUP_FIELD = /^(cpu|balloon)\.([a-z_-]+)$/;
const DEVICE_FIELD = /^(block|net)\.(0|[1-9][0-9]{0,9})\.([a-z.]+)$/;

/** Collects the four groups' fields of one record; {@linkcode finish} makes the result. */
export class DomainGroupsParser {
  readonly #cpu: Partial<Record<CpuField, bigint>> = {};
  readonly #balloon: Partial<Record<BalloonField, bigint>> = {};
  readonly #devices = { block: new Map<number, RawDevice>(), net: new Map<number, RawDevice>() };
  readonly #skip: SkipReport;
  readonly #beyondCap = { block: 0, net: 0 };

  /**
   * Creates a parser for one record.
   *
   * @param skip Told of each value skipped.
   */
  constructor(skip: SkipReport) {
    this.#skip = skip;
  }

  /**
   * Takes one field if it belongs to the four groups.
   *
   * @param field The field's name.
   * @param value Its value.
   * @returns Whether the field was one of the groups' (used or skipped).
   */
  take(field: string, value: unknown): boolean {
    const group = GROUP_FIELD.exec(field);
    if (group !== null) {
      this.#takeGroupField(field, group[1] as "cpu" | "balloon", group[2]!, value);
      return true;
    }
    const device = DEVICE_FIELD.exec(field);
    if (device === null) return false;
    const kind = device[1] as "block" | "net";
    const index = Number(device[2]);
    if (index >= MAX_DEVICES) {
      this.#beyondCap[kind]++;
      return true;
    }
    this.#takeDeviceField(field, { kind, index, name: device[3]! }, value);
    return true;
  }

  #takeGroupField(field: string, group: "cpu" | "balloon", name: string, value: unknown): void {
    if (group === "cpu") {
      if (!(CPU_FIELDS as readonly string[]).includes(name)) return;
      const number = this.#unsigned(field, value);
      if (number !== undefined) this.#cpu[name as CpuField] = number;
      return;
    }
    if (!(BALLOON_FIELDS as readonly string[]).includes(name)) return;
    const key = name as BalloonField;
    const number = this.#unsigned(field, value);
    if (number === undefined) return;
    if (BALLOON_KIB.has(key) && number > MAX_KIB) {
      this.#skip({
        reason: "range",
        field,
        message: `libvirt field "${field}" is ${number} KiB, more than 64 bits of bytes`,
      });
      return;
    }
    this.#balloon[key] = number;
  }

  #takeDeviceField(
    field: string,
    at: { kind: "block" | "net"; index: number; name: string },
    value: unknown,
  ): void {
    const known = at.kind === "block" ? BLOCK_FIELDS : NET_FIELDS;
    const isLabel = at.name === "name" || (at.kind === "block" && at.name === "path");
    if (!isLabel && !(known as readonly string[]).includes(at.name)) return;
    const devices = this.#devices[at.kind];
    let device = devices.get(at.index);
    if (device === undefined) devices.set(at.index, device = { index: at.index, values: {} });
    if (!isLabel) {
      const number = this.#unsigned(field, value);
      if (number !== undefined) device.values[at.name] = number;
      return;
    }
    if (typeof value !== "string") {
      this.#skip({
        reason: "type",
        field,
        message: `libvirt field "${field}" is ${typeof value} "${value}", expected a string`,
      });
    } else if (value === "" || value.length > MAX_LABEL_CHARS) {
      this.#skip({
        reason: "range",
        field,
        message: `libvirt field "${field}" is empty or over ${MAX_LABEL_CHARS} characters`,
      });
    } else if (at.name === "name") device.name = value;
    else device.path = value;
  }

  #unsigned(field: string, value: unknown): bigint | undefined {
    if (typeof value === "bigint" || (typeof value === "number" && Number.isSafeInteger(value))) {
      if (value >= 0) return BigInt(value);
      this.#skip({
        reason: "range",
        field,
        message: `libvirt field "${field}" is negative: ${value}`,
      });
      return undefined;
    }
    this.#skip({
      reason: "type",
      field,
      message:
        `libvirt field "${field}" is ${typeof value} "${value}", expected a non-negative integer`,
    });
    return undefined;
  }

  /**
   * The groups, with devices sorted by index; a device without a name, or with the name of an
   * earlier one, is skipped whole.
   *
   * @returns The groups.
   */
  finish(): DomainGroups {
    for (const kind of ["block", "net"] as const) {
      const beyond = this.#beyondCap[kind];
      if (beyond > 0) {
        this.#skip({
          reason: "too_many",
          field: kind,
          message: `${kind} fields beyond device ${MAX_DEVICES - 1}: ${beyond} skipped`,
        }, beyond);
      }
    }
    return {
      cpu: this.#cpu,
      balloon: this.#balloon,
      blocks: this.#named("block") as Device<BlockField>[],
      nets: this.#named("net") as Device<NetField>[],
    };
  }

  #named(kind: "block" | "net"): Device<string>[] {
    const devices = [...this.#devices[kind].values()].sort((a, b) => a.index - b.index);
    const seen = new Set<string>();
    const named: Device<string>[] = [];
    for (const device of devices) {
      const { name } = device;
      if (name === undefined || seen.has(name)) {
        this.#skip({
          reason: name === undefined ? "unnamed" : "duplicate",
          field: `${kind}.${device.index}.name`,
          message: `${kind} ${device.index} ${
            name === undefined ? "has no name" : `repeats the name "${name}"`
          }: its values are skipped`,
        });
        continue;
      }
      seen.add(name);
      named.push(
        device.path === undefined ? { index: device.index, name, values: device.values } : {
          index: device.index,
          name,
          path: device.path,
          values: device.values,
        },
      );
    }
    return named;
  }
}
