/**
 * Command-line flags: the original exporter's names and defaults, plus the
 * ones this exporter adds. Every flag can also come from an environment
 * variable `KVM_EXPORTER_<FLAG>`; the command line wins.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { LOG_LEVELS, type LogFormat, type LogLevel } from "../log/logger.ts";
import { parseListenAddress } from "../http/listen_address.ts";
import { pathProblem } from "../http/request_head.ts";
import { NAMING_SCHEMES, type NamingScheme } from "../naming/naming_scheme.ts";

/** The parsed, validated configuration of one exporter process. */
export interface Options {
  /** Deepest debugfs level read: 0 root, 1 VM dirs, 2 vCPU dirs. */
  depth: number;
  /** Whether the debugfs collector runs. */
  kvmStat: boolean;
  /** The debugfs KVM dir, normalised (no trailing slash). */
  kvmdebugDir: string;
  /** Path of vm.yaml. */
  vmmapPath: string;
  /** Whether the user named vm.yaml (a missing named file is an error). */
  vmmapPathExplicit: boolean;
  /** Export only VMs that vm.yaml lists. */
  vmmapOnlyListed: boolean;
  /** Only stat files whose name matches are read. */
  filesInclude: RegExp | undefined;
  /** Stat files whose name matches are not read. */
  filesExclude: RegExp | undefined;
  /** Reader Workers for debugfs stat files; 0 reads on the main thread. */
  kvmStatReaders: number;
  /** Mount point of procfs. */
  procfs: string;
  /** Mount point of sysfs (for the kernel lockdown mode). */
  sysfs: string;
  /** Whether the QMP collector runs. */
  qmp: boolean;
  /** Per-VM QMP timeout in milliseconds. */
  qmpTimeoutMs: number;
  /** Glob of extra QMP sockets (e.g. Proxmox's), or undefined. */
  qmpSocketGlob: string | undefined;
  /** Whether the libvirt collector runs. */
  libvirt: boolean;
  /** libvirt's socket. */
  libvirtSocket: string;
  /** Deadline of each libvirt call in milliseconds. */
  libvirtTimeoutMs: number;
  /** Whether the vcpu_time collector runs. */
  vcpuTime: boolean;
  /** Whether the heap is collected once scrapes stop (README "Performance"). */
  releaseMemoryWhenIdle: boolean;
  /** Listen address as given (`:9900`, `127.0.0.1:9900`, `[::1]:9900`). */
  listenAddress: string;
  /** Scrapes in flight before 503; 0 means no limit. */
  maxRequests: number;
  /** A scrape's deadline in milliseconds (lowered by Prometheus's scrape timeout header). */
  scrapeTimeoutMs: number;
  /** Connections served at once; more are answered 503. */
  maxConnections: number;
  /** Time to read a request head, in milliseconds. */
  readHeaderTimeoutMs: number;
  /** Time a kept-alive connection may sit idle, in milliseconds. */
  idleTimeoutMs: number;
  /** Path of the web configuration file (TLS, basic auth, headers), or undefined. */
  webConfigFile: string | undefined;
  /** Whether `POST /-/reload` is served. */
  enableLifecycle: boolean;
  /** Path serving metrics. */
  telemetryPath: string;
  /** Log level. */
  logLevel: LogLevel;
  /** Log format. */
  logFormat: LogFormat;
  /** How KVM stats are named: the original's names, or Prometheus's conventions. */
  naming: NamingScheme;
  /** Buckets exported per histogram at most (prometheus naming); 0 for all. */
  histogramMaxBuckets: number;
}

/** What the command line asks for. */
export type Command =
  | { kind: "run"; options: Options }
  | { kind: "help" }
  | { kind: "version" };

/** A bad flag or flag value; the CLI exits 2 with this one-line message. */
export class FlagError extends Error {
  /** The error's name. */
  override name = "FlagError";
}

/** How a flag's value is parsed. */
export type FlagType = "string" | "int" | "bool" | "duration";

/** One flag: its name (without dashes), short form, type, default and help text. */
export interface FlagSpec {
  /** Name without dashes, e.g. `web.listen-address`. */
  name: string;
  /** One-letter form, e.g. `d` for `-d`. */
  short?: string;
  /** How the value is parsed. */
  type: FlagType;
  /** Default value (a duration as text). */
  default: string | number | boolean | undefined;
  /** Help text. */
  help: string;
}

/** Every flag, in the order `--help` lists them. */
export const FLAGS: readonly FlagSpec[] = [
  { name: "collector.dir.depth", type: "int", default: 2, help: "KVM Debug Stat Depth" },
  {
    name: "collector.kvm_stat",
    type: "bool",
    default: true,
    help: "Enable the kvm_stat collector (default: enabled).",
  },
  {
    name: "collector.kvm_stat.files-exclude",
    type: "string",
    default: "^mmu_rmaps_stat$",
    help: "Regexp of stat file names not to read",
  },
  {
    name: "collector.kvm_stat.files-include",
    type: "string",
    default: undefined,
    help: "Regexp of stat file names to read (default: all)",
  },
  {
    name: "collector.kvm_stat.readers",
    type: "int",
    default: undefined,
    help: "Worker threads reading stat files on large hosts (default: min(4, cores); 0: none)",
  },
  {
    name: "collector.kvmdebug.dir",
    type: "string",
    default: "/sys/kernel/debug/kvm",
    help: "KVM debug stat dir",
  },
  {
    name: "collector.libvirt",
    type: "bool",
    default: false,
    help: "Enable the libvirt collector (default: disabled).",
  },
  {
    name: "collector.libvirt.socket",
    type: "string",
    default: "/run/libvirt/libvirt-sock-ro",
    help: "libvirt's read-only socket (modular daemons: /run/libvirt/virtqemud-sock-ro)",
  },
  {
    name: "collector.libvirt.timeout",
    type: "duration",
    default: "2s",
    help: "Timeout of each libvirt call",
  },
  {
    name: "collector.qmp",
    type: "bool",
    default: false,
    help: "Enable the qmp collector (default: disabled).",
  },
  {
    name: "collector.qmp.socket-glob",
    type: "string",
    default: undefined,
    help: "Glob of extra QMP sockets, e.g. /var/run/qemu-server/*.qmp",
  },
  {
    name: "collector.qmp.timeout",
    type: "duration",
    default: "2s",
    help: "Timeout of one VM's QMP queries",
  },
  {
    name: "collector.vcpu_time",
    type: "bool",
    default: true,
    help: "Enable the vcpu_time collector (default: enabled).",
  },
  {
    name: "collector.vmmap.only-listed",
    type: "bool",
    default: false,
    help: "Export only the VMs listed in the VmMap yaml",
  },
  {
    name: "collector.vmmap.path",
    type: "string",
    default: "/etc/vm.yaml",
    help: "VmMap yaml path",
  },
  { name: "debug", short: "d", type: "bool", default: false, help: "Set loglevel to Debug" },
  { name: "help", short: "h", type: "bool", default: false, help: "help for kvm_exporter" },
  {
    name: "log.format",
    type: "string",
    default: "logfmt",
    help: "Log format: logfmt or json",
  },
  {
    name: "log.level",
    type: "string",
    default: "info",
    help: "Log level: debug, info, warn or error",
  },
  {
    name: "metrics.histogram.max-buckets",
    type: "int",
    default: 0,
    help: "Buckets per histogram at most, the rest merged into +Inf (0: all)",
  },
  {
    name: "metrics.naming",
    type: "string",
    default: "compat",
    help: "Metric names: compat (the original's) or prometheus",
  },
  { name: "path.procfs", type: "string", default: "/proc", help: "procfs mountpoint" },
  { name: "path.sysfs", type: "string", default: "/sys", help: "sysfs mountpoint" },
  {
    name: "runtime.release-memory-when-idle",
    type: "bool",
    default: true,
    help: "Give the heap a scrape left back to the system once scrapes stop (default: enabled).",
  },
  { name: "version", type: "bool", default: false, help: "Print the version and exit" },
  {
    name: "web.config.file",
    type: "string",
    default: undefined,
    help: "Path of the web configuration file: TLS, basic auth, response headers (see README)",
  },
  {
    name: "web.enable-lifecycle",
    type: "bool",
    default: false,
    help: "Serve POST /-/reload (default: disabled).",
  },
  {
    name: "web.idle-timeout",
    type: "duration",
    default: "60s",
    help: "How long a kept-alive connection may wait for its next request",
  },
  {
    name: "web.listen-address",
    type: "string",
    default: ":9900",
    help: "Address on which to expose metrics and web interface.",
  },
  {
    name: "web.max-connections",
    type: "int",
    default: 512,
    help:
      "Maximum number of open HTTP connections, lowered to fit the open file limit; more are answered 503.",
  },
  {
    name: "web.max-requests",
    type: "int",
    default: 40,
    help: "Maximum number of parallel scrape requests. Use 0 to disable.",
  },
  {
    name: "web.scrape-timeout",
    type: "duration",
    default: "10s",
    help:
      "Deadline of a scrape; at most Prometheus's X-Prometheus-Scrape-Timeout-Seconds minus 0.5s",
  },
  {
    name: "web.read-header-timeout",
    type: "duration",
    default: "10s",
    help: "How long a client may take to send a request's headers",
  },
  {
    name: "web.telemetry-path",
    type: "string",
    default: "/metrics",
    help: "Path under which to expose metrics.",
  },
];

/**
 * The environment variable that sets a flag: `KVM_EXPORTER_` and the flag name
 * upper-cased with dots and dashes turned into underscores.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { envVarName } from "./flags.ts";
 * assert(envVarName("web.listen-address") === "KVM_EXPORTER_WEB_LISTEN_ADDRESS");
 * ```
 *
 * @param flag The flag name without dashes.
 * @returns The variable name.
 */
export function envVarName(flag: string): string {
  return `KVM_EXPORTER_${flag.replace(/[.-]/g, "_").toUpperCase()}`;
}

const TYPE_WORDS: Record<FlagType, string> = {
  string: " string",
  int: " int",
  bool: "",
  duration: " duration",
};

/**
 * The `--help` text, laid out as the original exporter's.
 *
 * @returns The help text, ending with a newline.
 */
export function helpText(): string {
  const rows = FLAGS.map((f) => {
    const left = `${f.short ? `-${f.short}, ` : "    "}--${f.name}${TYPE_WORDS[f.type]}`;
    const showDefault = f.default !== undefined && f.default !== false && f.name !== "help";
    const def = showDefault
      ? ` (default ${typeof f.default === "string" ? JSON.stringify(f.default) : f.default})`
      : "";
    return [left, `${f.help}${def}`] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 3;
  const lines = rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`);
  return [
    "KVM Exporter",
    "",
    "Usage:",
    "  kvm_exporter  [flags]",
    "",
    "Flags:",
    ...lines,
    "",
    "Every flag can also be set by an environment variable: KVM_EXPORTER_ and the flag name",
    "in upper case with dots and dashes as underscores (KVM_EXPORTER_WEB_LISTEN_ADDRESS).",
    "A flag on the command line wins over the environment.",
    "",
  ].join("\n");
}

const BOOL_WORDS: Record<string, boolean> = { true: true, "1": true, false: false, "0": false };

function invalid(where: string, value: unknown, why: string): FlagError {
  return new FlagError(`Invalid value "${value}" for ${where}: ${why}`);
}

function parseBool(where: string, text: string): boolean {
  const value = BOOL_WORDS[text.toLowerCase()];
  if (value === undefined) throw invalid(where, text, "must be true or false");
  return value;
}

function parseInt10(where: string, text: string): number {
  if (!/^-?\d+$/.test(text.trim())) throw invalid(where, text, "not an integer");
  return Number(text.trim());
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/**
 * Parses a Go-style duration such as `2s`, `500ms` or `1.5s` into milliseconds.
 *
 * @param text The duration.
 * @returns Milliseconds, or undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (match === null) return undefined;
  return Number(match[1]) * DURATION_UNITS[match[2]!]!;
}

/** Turns `--bool=false` into `--no-bool`, which parseArgs understands. */
function normaliseBoolArgs(args: readonly string[]): string[] {
  const bools = new Set(FLAGS.filter((f) => f.type === "bool").map((f) => f.name));
  return args.map((arg) => {
    const match = /^--([^=]+)=(.*)$/.exec(arg);
    if (match === null || !bools.has(match[1]!)) return arg;
    return parseBool(`flag --${match[1]}`, match[2]!) ? `--${match[1]}` : `--no-${match[1]}`;
  });
}

function compileRegExp(where: string, text: string | undefined): RegExp | undefined {
  if (text === undefined || text === "") return undefined;
  try {
    return new RegExp(text);
  } catch (error) {
    throw invalid(where, text, (error as Error).message.split("\n")[0]!);
  }
}

/**
 * Parses the command line and the environment into a command. Pure: the
 * environment comes in as a lookup function.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFlags } from "./flags.ts";
 * const cmd = parseFlags(["--collector.dir.depth", "1"], () => undefined);
 * assert(cmd.kind === "run" && cmd.options.depth === 1);
 * ```
 *
 * @param args The arguments after the program name.
 * @param env Looks up an environment variable.
 * @returns What to do.
 * @throws {FlagError} On an unknown flag or a bad value.
 */
export function parseFlags(
  args: readonly string[],
  env: (name: string) => string | undefined,
): Command {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const f of FLAGS) {
    options[f.name] = { type: f.type === "bool" ? "boolean" : "string" };
    if (f.short) options[f.name]!.short = f.short;
  }
  let parsed: Record<string, string | boolean | undefined>;
  try {
    parsed = parseArgs({
      args: normaliseBoolArgs(args),
      options,
      strict: true,
      allowPositionals: false,
      allowNegative: true,
    }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    if (error instanceof FlagError) throw error;
    throw new FlagError((error as Error).message.split("\n")[0]!.replace(/\.$/, ""));
  }
  if (parsed["help"] === true) return { kind: "help" };
  if (parsed["version"] === true) return { kind: "version" };

  const values = new Map<string, string | number | boolean | undefined>();
  // Where each value came from, so that an error names what the user must change.
  const whereOf = new Map<string, string>();
  for (const f of FLAGS) {
    const fromArgs = parsed[f.name];
    const where = fromArgs !== undefined
      ? `flag --${f.name}`
      : `environment variable ${envVarName(f.name)}`;
    whereOf.set(f.name, where);
    const raw = fromArgs ?? env(envVarName(f.name));
    if (raw === undefined) {
      values.set(f.name, f.type === "duration" ? parseDuration(String(f.default)) : f.default);
    } else if (typeof raw === "boolean") {
      values.set(f.name, raw);
    } else if (f.type === "bool") {
      values.set(f.name, parseBool(where, raw));
    } else if (f.type === "int") {
      values.set(f.name, parseInt10(where, raw));
    } else if (f.type === "duration") {
      const ms = parseDuration(raw);
      if (ms === undefined || ms <= 0) {
        throw invalid(where, raw, "not a positive duration such as 2s or 500ms");
      }
      values.set(f.name, ms);
    } else {
      values.set(f.name, raw);
    }
  }
  const get = <T>(name: string): T => values.get(name) as T;
  const where = (name: string): string => whereOf.get(name)!;

  const depth = get<number>("collector.dir.depth");
  if (depth < 0) throw invalid(where("collector.dir.depth"), depth, "must be 0 or more");
  const readers = get<number | undefined>("collector.kvm_stat.readers") ?? defaultReaders();
  if (readers < 0 || readers > MAX_READERS) {
    throw invalid(
      where("collector.kvm_stat.readers"),
      readers,
      `must be between 0 and ${MAX_READERS}`,
    );
  }
  const maxRequests = get<number>("web.max-requests");
  if (maxRequests < 0) throw invalid(where("web.max-requests"), maxRequests, "must be 0 or more");
  const maxConnections = get<number>("web.max-connections");
  if (maxConnections < 1) {
    throw invalid(where("web.max-connections"), maxConnections, "must be 1 or more");
  }
  const telemetryPath = get<string>("web.telemetry-path");
  if (!telemetryPath.startsWith("/") || telemetryPath === "/" || telemetryPath.startsWith("/-/")) {
    throw invalid(
      where("web.telemetry-path"),
      telemetryPath,
      'must start with "/" and not be "/" or under "/-/"',
    );
  }
  // The server refuses such paths before routing, so the metrics would never be served.
  const problem = pathProblem(telemetryPath);
  if (problem !== undefined) {
    throw invalid(
      where("web.telemetry-path"),
      telemetryPath,
      `must be a plain path: it ${problem}`,
    );
  }
  const listenAddress = get<string>("web.listen-address");
  try {
    parseListenAddress(listenAddress);
  } catch (error) {
    throw invalid(where("web.listen-address"), listenAddress, (error as Error).message);
  }
  const logLevel = get<string>("log.level");
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw invalid(where("log.level"), logLevel, `must be one of ${LOG_LEVELS.join(", ")}`);
  }
  const logFormat = get<string>("log.format");
  if (logFormat !== "logfmt" && logFormat !== "json") {
    throw invalid(where("log.format"), logFormat, "must be logfmt or json");
  }
  const naming = get<string>("metrics.naming");
  if (!(NAMING_SCHEMES as readonly string[]).includes(naming)) {
    throw invalid(where("metrics.naming"), naming, `must be one of ${NAMING_SCHEMES.join(", ")}`);
  }
  const histogramMaxBuckets = get<number>("metrics.histogram.max-buckets");
  if (histogramMaxBuckets < 0) {
    throw invalid(where("metrics.histogram.max-buckets"), histogramMaxBuckets, "must be 0 or more");
  }
  // -d means --log.level=debug; of the two, the one from the command line wins over the env.
  const debugWins = get<boolean>("debug") &&
    (parsed["debug"] !== undefined || parsed["log.level"] === undefined);
  const kvmdebugDir = normaliseDir(get<string>("collector.kvmdebug.dir"));
  const vmmapFromUser = parsed["collector.vmmap.path"] !== undefined ||
    env(envVarName("collector.vmmap.path")) !== undefined;
  return {
    kind: "run",
    options: {
      depth,
      kvmStat: get<boolean>("collector.kvm_stat"),
      kvmdebugDir,
      vmmapPath: get<string>("collector.vmmap.path"),
      vmmapPathExplicit: vmmapFromUser,
      vmmapOnlyListed: get<boolean>("collector.vmmap.only-listed"),
      filesInclude: compileRegExp(
        where("collector.kvm_stat.files-include"),
        get<string | undefined>("collector.kvm_stat.files-include"),
      ),
      filesExclude: compileRegExp(
        where("collector.kvm_stat.files-exclude"),
        get<string | undefined>("collector.kvm_stat.files-exclude"),
      ),
      kvmStatReaders: readers,
      procfs: normaliseDir(get<string>("path.procfs")),
      sysfs: normaliseDir(get<string>("path.sysfs")),
      qmp: get<boolean>("collector.qmp"),
      qmpTimeoutMs: get<number>("collector.qmp.timeout"),
      qmpSocketGlob: get<string | undefined>("collector.qmp.socket-glob") || undefined,
      libvirt: get<boolean>("collector.libvirt"),
      libvirtSocket: get<string>("collector.libvirt.socket"),
      libvirtTimeoutMs: get<number>("collector.libvirt.timeout"),
      vcpuTime: get<boolean>("collector.vcpu_time"),
      releaseMemoryWhenIdle: get<boolean>("runtime.release-memory-when-idle"),
      listenAddress,
      maxRequests,
      scrapeTimeoutMs: get<number>("web.scrape-timeout"),
      maxConnections,
      readHeaderTimeoutMs: get<number>("web.read-header-timeout"),
      idleTimeoutMs: get<number>("web.idle-timeout"),
      webConfigFile: get<string | undefined>("web.config.file") || undefined,
      enableLifecycle: get<boolean>("web.enable-lifecycle"),
      telemetryPath,
      logLevel: debugWins ? "debug" : logLevel as LogLevel,
      logFormat,
      naming: naming as NamingScheme,
      histogramMaxBuckets,
    },
  };
}

/** The most reader Workers `--collector.kvm_stat.readers` may ask for. */
export const MAX_READERS = 64;

/**
 * The default of `--collector.kvm_stat.readers`: one Worker per core, at most 4 (measured on 2
 * cores: 2 Workers read 16k files in half the time of one thread, a third was no faster).
 *
 * @returns The number of reader Workers.
 */
export function defaultReaders(): number {
  return Math.min(4, navigator.hardwareConcurrency);
}

/**
 * Removes trailing slashes and `.` segments and collapses repeated slashes, so
 * that `/sys/kernel/debug/kvm/` and `/sys/kernel/debug/kvm` are the same dir.
 *
 * @param dir The path as given.
 * @returns The normalised path.
 */
export function normaliseDir(dir: string): string {
  const absolute = dir.startsWith("/");
  const parts = dir.split("/").filter((p) => p !== "" && p !== ".");
  const joined = parts.join("/");
  if (absolute) return `/${joined}`;
  return joined === "" ? "." : joined;
}
