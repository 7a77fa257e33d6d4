/**
 * What a VMM's command line tells about its VM: the name it was started with
 * and where its QMP monitor listens. Pure functions over argv.
 *
 * @module
 */

/**
 * Splits a NUL-separated `/proc/PID/cmdline` into argv.
 *
 * @param text The file content.
 * @returns The arguments.
 */
export function splitCmdline(text: string): string[] {
  const args = text.split("\0");
  if (args.at(-1) === "") args.pop();
  return args;
}

/**
 * Parses a QEMU option string (`key=value,flag,key2=v,,with comma`): `,,` is a
 * literal comma; a first item without `=` belongs to `impliedKey`; an item
 * without `=` elsewhere is a flag set to "on".
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseQemuOpts } from "./vmm_cmdline.ts";
 * const opts = parseQemuOpts("guest=a,,b,debug-threads=on", "guest");
 * assert(opts.get("guest") === "a,b");
 * ```
 *
 * @param text The option string.
 * @param impliedKey The key of a bare first item, if the option has one.
 * @returns Keys and values; a repeated key keeps its last value.
 */
export function parseQemuOpts(text: string, impliedKey?: string): Map<string, string> {
  const items: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === ",") {
      if (text[i + 1] === ",") {
        current += ",";
        i++;
        continue;
      }
      items.push(current);
      current = "";
      continue;
    }
    current += ch;
  }
  items.push(current);
  const opts = new Map<string, string>();
  items.forEach((item, index) => {
    const eq = item.indexOf("=");
    if (eq === -1) {
      if (index === 0 && impliedKey !== undefined) opts.set(impliedKey, item);
      else if (item !== "") opts.set(item, "on");
    } else {
      opts.set(item.slice(0, eq), item.slice(eq + 1));
    }
  });
  return opts;
}

/** Values of one option, `-opt VALUE`, `--opt VALUE` or `--opt=VALUE`, in order. */
function optionValues(argv: readonly string[], names: readonly string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    for (const name of names) {
      if (arg === name && i + 1 < argv.length) {
        values.push(argv[i + 1]!);
        i++;
        break;
      }
      if (arg.startsWith(`${name}=`) && name.startsWith("--")) {
        values.push(arg.slice(name.length + 1));
        break;
      }
    }
  }
  return values;
}

/**
 * The VM name a VMM was started with: QEMU's `-name NAME` or
 * `-name guest=NAME,...` (libvirt, Proxmox, OpenStack), Firecracker's `--id`.
 * cloud-hypervisor has no name option.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { vmNameFromArgv } from "./vmm_cmdline.ts";
 * const argv = ["/usr/bin/qemu-system-x86_64", "-name", "guest=web,,1,debug-threads=on"];
 * assert(vmNameFromArgv(argv) === "web,1");
 * ```
 *
 * @param argv The VMM's arguments, argv[0] included.
 * @returns The name, or undefined.
 */
export function vmNameFromArgv(argv: readonly string[]): string | undefined {
  const program = (argv[0] ?? "").split("/").at(-1) ?? "";
  if (program.includes("firecracker")) {
    return nonEmpty(optionValues(argv, ["--id"]).at(-1));
  }
  const name = optionValues(argv, ["-name", "--name"]).at(-1);
  if (name === undefined || program.includes("cloud-hypervisor")) return undefined;
  return nonEmpty(parseQemuOpts(name, "guest").get("guest"));
}

function nonEmpty(text: string | undefined): string | undefined {
  return text === undefined || text === "" ? undefined : text;
}

/**
 * The unix socket paths QEMU listens on for QMP: `-qmp unix:PATH,server=on,wait=off`
 * (or the old `server,nowait`), and `-chardev socket,id=ID,path=PATH,server=on` that a
 * `-mon chardev=ID,mode=control` uses. A chardev passed as an fd (as libvirt
 * does) has no path and is not returned.
 *
 * @param argv The VMM's arguments.
 * @returns The socket paths, in command-line order.
 */
export function qmpSocketsFromArgv(argv: readonly string[]): string[] {
  const sockets: string[] = [];
  // Only listening sockets: a chardev without server=on is QEMU connecting out (Proxmox's qmeventd).
  const listens = (opts: Map<string, string>): boolean =>
    ["on", "yes", "true"].includes(opts.get("server") ?? "");
  for (const value of optionValues(argv, ["-qmp", "--qmp", "-qmp-pretty", "--qmp-pretty"])) {
    const opts = parseQemuOpts(value, "path");
    const first = opts.get("path") ?? "";
    if (first.startsWith("unix:") && listens(opts)) sockets.push(first.slice("unix:".length));
  }
  const chardevPaths = new Map<string, string>();
  for (const value of optionValues(argv, ["-chardev", "--chardev"])) {
    const opts = parseQemuOpts(value, "backend");
    const id = opts.get("id");
    const path = opts.get("path");
    if (
      opts.get("backend") === "socket" && id !== undefined && path !== undefined && listens(opts)
    ) {
      chardevPaths.set(id, path);
    }
  }
  for (const value of optionValues(argv, ["-mon", "--mon"])) {
    const opts = parseQemuOpts(value, "chardev");
    const path = chardevPaths.get(opts.get("chardev") ?? "");
    if (opts.get("mode") === "control" && path !== undefined) sockets.push(path);
  }
  return sockets;
}

/**
 * The VM's UUID from QEMU's `-uuid UUID` (libvirt, OpenStack and Proxmox pass
 * it; it is the domain's libvirt UUID and the guest's SMBIOS UUID), in lower
 * case. A value that is not a UUID is ignored.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { vmUuidFromArgv } from "./vmm_cmdline.ts";
 * const argv = ["qemu-system-x86_64", "-uuid", "6A1F3B2C-0D4E-4F5A-9B8C-7D6E5F4A3B21"];
 * assert(vmUuidFromArgv(argv) === "6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21");
 * ```
 *
 * @param argv The VMM's arguments, argv[0] included.
 * @returns The UUID, or undefined.
 */
export function vmUuidFromArgv(argv: readonly string[]): string | undefined {
  const value = optionValues(argv, ["-uuid", "--uuid"]).at(-1);
  if (value === undefined || !UUID.test(value)) return undefined;
  return value.toLowerCase();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A tap device a VMM's command line names, and what identifies it to the guest. */
export interface TapInterface {
  /** The host's name of the tap device (`ifname=`), as `<procfs>/PID/net/dev` lists it. */
  ifname: string;
  /** The netdev's id (`-netdev tap,id=ID`); empty for `-nic`. */
  netdev: string;
  /** The guest NIC's MAC (`-device ...,netdev=ID,mac=MAC` or `-nic ...,mac=MAC`), lower case. */
  mac: string;
  /** The guest NIC's model (the `-device` driver or `-nic ...,model=`). */
  model: string;
}

/** The most tap devices taken from one command line; the rest are ignored. */
export const MAX_TAPS_PER_VM = 256;

/** A Linux interface name: 1 to 15 bytes, no `/`, `:` or white space, not `.` or `..`. */
function isInterfaceName(name: string): boolean {
  return /^[^\s/:]{1,15}$/.test(name) && name !== "." && name !== ".." &&
    new TextEncoder().encode(name).length <= 15;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/**
 * An option's values, from QEMU's `key=value` form or its JSON form (`-netdev {"type":...}`,
 * `-device {"driver":...}`); in the JSON form only string values.
 */
function optionsOf(value: string, impliedKey: string): Map<string, string> {
  if (!value.startsWith("{")) return parseQemuOpts(value, impliedKey);
  try {
    const json = JSON.parse(value) as unknown;
    if (typeof json !== "object" || json === null || Array.isArray(json)) return new Map();
    return new Map(
      Object.entries(json).flatMap(([k, v]) => typeof v === "string" ? [[k, v]] : []),
    );
  } catch {
    return new Map();
  }
}

/** Each `-device` that has a `netdev=`: its MAC and driver, by netdev id. */
function nicsByNetdev(argv: readonly string[]): Map<string, { mac: string; model: string }> {
  const nics = new Map<string, { mac: string; model: string }>();
  for (const value of optionValues(argv, ["-device", "--device"])) {
    const opts = optionsOf(value, "driver");
    const driver = opts.get("driver");
    const netdev = opts.get("netdev");
    if (netdev === undefined || nics.has(netdev)) continue;
    const mac = opts.get("mac") ?? "";
    nics.set(netdev, { mac: MAC.test(mac) ? mac.toLowerCase() : "", model: driver ?? "" });
  }
  return nics;
}

/**
 * The tap devices a QEMU command line names: `-netdev tap,id=ID,ifname=NAME`, its
 * `type=tap,...` and JSON forms, and `-nic tap,ifname=NAME`; with the MAC and model of the
 * `-device` whose `netdev=` is the netdev's id. A tap without `ifname=` is named by Proxmox's
 * convention, `tap<VMID>i<N>` for `-id VMID` and netdev id `netN`, where the command line has
 * Proxmox's `-id`; otherwise (a tap passed as an fd, as libvirt does, or one the kernel named) it
 * is left out: its name is not on the command line. Names that are not Linux interface names, and
 * a second tap with one name, are left out; at most {@linkcode MAX_TAPS_PER_VM}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { tapInterfacesFromArgv } from "./vmm_cmdline.ts";
 * const argv = [
 *   "/usr/bin/kvm", "-id", "100",
 *   "-netdev", "type=tap,id=net0,ifname=tap100i0,script=/var/lib/qemu-server/pve-bridge",
 *   "-device", "virtio-net-pci,mac=BC:24:11:00:00:01,netdev=net0,id=net0",
 * ];
 * assert.deepEqual(tapInterfacesFromArgv(argv), [
 *   { ifname: "tap100i0", netdev: "net0", mac: "bc:24:11:00:00:01", model: "virtio-net-pci" },
 * ]);
 * ```
 *
 * @param argv The VMM's arguments, argv[0] included.
 * @returns The taps, in command-line order.
 */
export function tapInterfacesFromArgv(argv: readonly string[]): TapInterface[] {
  const taps: TapInterface[] = [];
  const names = new Set<string>();
  const add = (tap: TapInterface): void => {
    if (taps.length >= MAX_TAPS_PER_VM || names.has(tap.ifname)) return;
    if (!isInterfaceName(tap.ifname)) return;
    names.add(tap.ifname);
    taps.push(tap);
  };
  const nics = nicsByNetdev(argv);
  const vmid = optionValues(argv, ["-id"]).at(-1);
  for (const value of optionValues(argv, ["-netdev", "--netdev"])) {
    const opts = optionsOf(value, "type");
    const id = opts.get("id") ?? "";
    if (opts.get("type") !== "tap") continue;
    const index = /^net(\d{1,4})$/.exec(id)?.[1];
    const ifname = opts.get("ifname") ??
      (vmid !== undefined && /^\d{1,9}$/.test(vmid) && index !== undefined && !opts.has("fd") &&
          !opts.has("fds")
        ? `tap${vmid}i${Number(index)}`
        : undefined);
    if (ifname === undefined) continue;
    const nic = nics.get(id) ?? { mac: "", model: "" };
    add({ ifname, netdev: id, ...nic });
  }
  for (const value of optionValues(argv, ["-nic", "--nic"])) {
    const opts = parseQemuOpts(value, "type");
    const ifname = opts.get("ifname");
    if (opts.get("type") !== "tap" || ifname === undefined) continue;
    const mac = opts.get("mac") ?? "";
    add({
      ifname,
      netdev: "",
      mac: MAC.test(mac) ? mac.toLowerCase() : "",
      model: opts.get("model") ?? "",
    });
  }
  return taps;
}
