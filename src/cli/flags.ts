/**
 * The exporter's command line: the web and log flags declared here, the
 * scrape pipeline's in `exporter_flags.ts`, and each collector's, with its
 * `--collector.<name>` switch, from the registry. Names and defaults are the
 * original exporter's where it had the flag. Every flag can also come from an
 * environment variable `KVM_EXPORTER_<FLAG>`; the command line wins.
 *
 * @module
 */

import { LOG_LEVELS, type LogFormat } from "../log/logger.ts";
import { parseListenAddress } from "../http/listen_address.ts";
import { pathProblem } from "../http/request_head.ts";
import {
  collectorFlags,
  type CollectorRegistry,
  configureCollector,
  type ConfiguredCollector,
} from "../collectors/collector_declaration.ts";
import { COLLECTORS } from "../collectors/registry.ts";
import { EXPORTER_FLAGS } from "../exporter_flags.ts";
import {
  type Flag,
  flag,
  type FlagValues,
  intInRange,
  invalidValue,
  oneOf,
  readCommandLine,
  readFlags,
  renderHelp,
} from "./flag.ts";

/** A `--web.telemetry-path` the server can route to. */
function telemetryPath(path: string | undefined, where: string): string {
  const text = path ?? "";
  if (!text.startsWith("/") || text === "/" || text.startsWith("/-/")) {
    throw invalidValue(where, text, 'must start with "/" and not be "/" or under "/-/"');
  }
  // The server refuses such paths before routing, so the metrics would never be served.
  const problem = pathProblem(text);
  if (problem !== undefined) {
    throw invalidValue(where, text, `must be a plain path: it ${problem}`);
  }
  return text;
}

function listenAddress(address: string | undefined, where: string): string {
  const text = address ?? "";
  try {
    parseListenAddress(text);
  } catch (error) {
    throw invalidValue(where, text, (error as Error).message);
  }
  return text;
}

/** The web flags, in the order `--help` lists them. */
const WEB_FLAGS = {
  webConfigFile: flag({
    name: "web.config.file",
    type: "string",
    help: "Path of the web configuration file: TLS, basic auth, response headers (see docs/web.md)",
    convert: (path) => path || undefined,
  }),
  enableLifecycle: flag({
    name: "web.enable-lifecycle",
    type: "bool",
    default: false,
    help: "Serve POST /-/reload (default: disabled).",
  }),
  idleTimeoutMs: flag({
    name: "web.idle-timeout",
    type: "duration",
    default: "60s",
    help: "How long a kept-alive connection may wait for its next request",
  }),
  listenAddress: flag({
    name: "web.listen-address",
    type: "string",
    default: ":9900",
    help: "Address on which to expose metrics and web interface.",
    convert: listenAddress,
  }),
  maxConnections: flag({
    name: "web.max-connections",
    type: "int",
    default: 512,
    help:
      "Maximum number of open HTTP connections, lowered to fit the open file limit; more are answered 503.",
    convert: intInRange({ min: 1 }),
  }),
  maxRequests: flag({
    name: "web.max-requests",
    type: "int",
    default: 40,
    help: "Maximum number of parallel scrape requests. Use 0 to disable.",
    convert: intInRange({ min: 0 }),
  }),
  scrapeTimeoutMs: flag({
    name: "web.scrape-timeout",
    type: "duration",
    default: "10s",
    help:
      "Deadline of a scrape; at most Prometheus's X-Prometheus-Scrape-Timeout-Seconds minus 0.5s",
  }),
  readHeaderTimeoutMs: flag({
    name: "web.read-header-timeout",
    type: "duration",
    default: "10s",
    help: "How long a client may take to send a request's headers",
  }),
  telemetryPath: flag({
    name: "web.telemetry-path",
    type: "string",
    default: "/metrics",
    help: "Path under which to expose metrics.",
    convert: telemetryPath,
  }),
};

/** The log flags. */
const LOG_FLAGS = {
  logFormat: flag({
    name: "log.format",
    type: "string",
    default: "logfmt",
    help: "Log format: logfmt or json",
    convert: (format, where): LogFormat => {
      if (format !== "logfmt" && format !== "json") {
        throw invalidValue(where, format, "must be logfmt or json");
      }
      return format;
    },
  }),
  logLevel: flag({
    name: "log.level",
    type: "string",
    default: "info",
    help: "Log level: debug, info, warn or error",
    convert: oneOf(LOG_LEVELS),
  }),
};

const DEBUG = flag({
  name: "debug",
  short: "d",
  type: "bool",
  default: false,
  help: "Set loglevel to Debug",
});
const HELP = flag({
  name: "help",
  short: "h",
  type: "bool",
  default: false,
  help: "help for kvm_exporter",
});
const VERSION = flag({
  name: "version",
  type: "bool",
  default: false,
  help: "Print the version and exit",
});

/** The parsed, validated configuration of one exporter process. */
export type Options =
  & FlagValues<typeof WEB_FLAGS>
  & FlagValues<typeof LOG_FLAGS>
  & FlagValues<typeof EXPORTER_FLAGS>
  & {
    /** Whether the user named vm.yaml (a missing named file is an error). */
    readonly vmmapPathExplicit: boolean;
    /** Every collector of the registry, configured, in registry order. */
    readonly collectors: readonly ConfiguredCollector[];
  };

/** What the command line asks for. */
export type Command =
  | { kind: "run"; options: Options }
  | { kind: "help" }
  | { kind: "version" };

/**
 * Every flag, in the order `--help` lists them: sorted by name, the web flags
 * last in their own order.
 *
 * @param registry The collectors; the exporter's by default.
 * @returns The flags.
 */
export function programFlags(registry: CollectorRegistry = COLLECTORS): Flag<unknown>[] {
  const sorted: Flag<unknown>[] = [
    ...Object.values(EXPORTER_FLAGS),
    ...Object.values(LOG_FLAGS),
    ...registry.flatMap(collectorFlags),
    DEBUG,
    HELP,
    VERSION,
  ].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return [...sorted, ...Object.values(WEB_FLAGS)];
}

/**
 * The `--help` text, laid out as the original exporter's.
 *
 * @param registry The collectors; the exporter's by default.
 * @returns The help text, ending with a newline.
 */
export function helpText(registry: CollectorRegistry = COLLECTORS): string {
  return renderHelp(programFlags(registry));
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
 * assert(cmd.kind === "run" && cmd.options.collectors[0]?.values["depth"] === 1);
 * ```
 *
 * @param args The arguments after the program name.
 * @param env Looks up an environment variable.
 * @param registry The collectors; the exporter's by default.
 * @returns What to do.
 * @throws {FlagError} On an unknown flag or a bad value.
 */
export function parseFlags(
  args: readonly string[],
  env: (name: string) => string | undefined,
  registry: CollectorRegistry = COLLECTORS,
): Command {
  const line = readCommandLine(programFlags(registry), { args, env });
  if (line.value(HELP)) return { kind: "help" };
  if (line.value(VERSION)) return { kind: "version" };
  const exporter = readFlags(EXPORTER_FLAGS, line);
  const collectors = registry.map((declaration) => configureCollector(declaration, line));
  const web = readFlags(WEB_FLAGS, line);
  const log = readFlags(LOG_FLAGS, line);
  // -d means --log.level=debug; of the two, the one from the command line wins over the env.
  const debugWins = line.value(DEBUG) &&
    (line.onCommandLine(DEBUG) || !line.onCommandLine(LOG_FLAGS.logLevel));
  return {
    kind: "run",
    options: {
      ...exporter,
      vmmapPathExplicit: line.given(EXPORTER_FLAGS.vmmapPath),
      collectors,
      ...web,
      ...log,
      logLevel: debugWins ? "debug" : log.logLevel,
    },
  };
}
