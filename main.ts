/**
 * kvm_exporter: KVM statistics as Prometheus metrics. This file wires flags,
 * config, the scrape pipeline and the HTTP server; everything else is in src/.
 *
 * @module
 */

import { FlagError } from "./src/cli/flag.ts";
import { helpText, type Options, parseFlags } from "./src/cli/flags.ts";
import { ConfigStore } from "./src/config/config_store.ts";
import { createExporter, type Exporter } from "./src/exporter.ts";
import { createApp } from "./src/http/app.ts";
import { effectiveMaxConnections, FD_RESERVE, readFdLimit } from "./src/http/connection_cap.ts";
import { DEFAULT_LIMITS, HttpServer } from "./src/http/http_server.ts";
import { parseListenAddress } from "./src/http/listen_address.ts";
import { openListener } from "./src/http/listener.ts";
import { responseHeaders } from "./src/http/security_headers.ts";
import type { TlsSettings } from "./src/http/web_config.ts";
import { WebConfigStore, type WebConfigStoreOptions } from "./src/http/web_config_store.ts";
import { createLogger, type Logger } from "./src/log/logger.ts";
import { HEAP_RELEASE_QUIET_MS, IdleHeapRelease } from "./src/system/idle_heap_release.ts";
import { keptFilesMax } from "./src/system/kept_file.ts";
import { type LockdownMode, readLockdown } from "./src/system/lockdown.ts";
import { REVISION, VERSION } from "./src/version.ts";

/** Reads an env var only where the permission is granted, so a run without `--allow-env` never prompts. */
function readEnv(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  return Deno.env.get(name);
}

/** How long requests in flight may take after SIGTERM or SIGINT before the process exits. */
const SHUTDOWN_DEADLINE_MS = 5_000;

async function main(args: string[]): Promise<number> {
  const command = await parseCommand(args);
  if (typeof command === "number") return command;
  const options = command;
  const logger = createLogger({ level: options.logLevel, format: options.logFormat });
  logger.info("Starting kvm_exporter", { version: VERSION, deno: Deno.version.deno });
  const lockdown = await checkLockdown(options.sysfs, logger);
  const configs = await loadConfigs(options, {
    logger,
    // Called on reloads only, once `server` exists.
    onTlsChange: (config, previous) => relisten(server, config.tls, previous.tls),
  });
  if (configs === undefined) return 1;
  const maxConnections = await connectionCap(options, logger);
  const exporter = createExporter({ options, configStore: configs.configStore, logger, lockdown });
  const server = buildServer(options, { exporter, logger, configs, maxConnections });
  const listening = listen(server, {
    address: options.listenAddress,
    tls: configs.webConfig.config.tls,
    logger,
  });
  if (!listening) return 1;
  await serveUntilStopped(server, { options, configs, logger });
  exporter.close();
  logger.info("Stopped");
  return 0;
}

/**
 * Parses the command line; prints the help, the version or a flag error.
 *
 * @returns The options to run with, or the exit code when there is nothing to run.
 */
async function parseCommand(args: string[]): Promise<Options | number> {
  let command;
  try {
    command = parseFlags(args, readEnv);
  } catch (error) {
    if (!(error instanceof FlagError)) throw error;
    console.error(`kvm_exporter: ${error.message} (see --help)`);
    return 2;
  }
  if (command.kind === "help") {
    await Deno.stdout.write(new TextEncoder().encode(helpText()));
    return 0;
  }
  if (command.kind === "version") {
    console.log(
      `kvm_exporter version ${VERSION} (revision ${REVISION}, deno ${Deno.version.deno})`,
    );
    return 0;
  }
  return command.options;
}

/** Reads the kernel lockdown mode and says what it costs when it is on. */
async function checkLockdown(sysfs: string, logger: Logger): Promise<LockdownMode> {
  const lockdown = await readLockdown(sysfs);
  if (lockdown === "integrity" || lockdown === "confidentiality") {
    logger.info(
      "Kernel lockdown is on: debugfs refuses cumulative, peak and histogram stats (exits, halt_wait_ns, pf_fixed, ...); instant stats (pages_*, mmu_unsync, blocking) and vCPU files still work. Enable --collector.qmp for the rest",
      { lockdown },
    );
  }
  return lockdown;
}

/** The two config files in force. */
interface Configs {
  configStore: ConfigStore;
  webConfig: WebConfigStore;
}

/**
 * Loads vm.yaml and the web config for the first time.
 *
 * @returns The stores, or undefined (logged) when a file is rejected.
 */
async function loadConfigs(
  options: Options,
  { logger, onTlsChange }: {
    logger: Logger;
    onTlsChange: NonNullable<WebConfigStoreOptions["onTlsChange"]>;
  },
): Promise<Configs | undefined> {
  const configStore = new ConfigStore({
    path: options.vmmapPath,
    explicit: options.vmmapPathExplicit,
    logger,
  });
  try {
    await configStore.loadInitial();
  } catch (error) {
    logger.error("Cannot load vm.yaml", { err: (error as Error).message });
    return undefined;
  }
  const webConfig = new WebConfigStore({
    path: options.webConfigFile,
    logger,
    onTlsChange,
  });
  try {
    await webConfig.loadInitial();
  } catch (error) {
    logger.error("Cannot load the web config", { err: (error as Error).message });
    return undefined;
  }
  return { configStore, webConfig };
}

/** `--web.max-connections`, lowered (and logged) when the open file limit can't hold it. */
async function connectionCap(options: Options, logger: Logger): Promise<number> {
  const fdLimit = await readFdLimit(options.procfs);
  const cap = effectiveMaxConnections(options.maxConnections, fdLimit);
  if (cap < options.maxConnections) {
    logger.info("Lowered the connection cap to fit the open file limit", {
      max_connections: cap,
      flag: options.maxConnections,
      fd_limit: fdLimit,
      reserve: FD_RESERVE,
      kept_files: keptFilesMax(fdLimit),
    });
  }
  return cap;
}

/** Builds the exporter's app and the HTTP server that serves it (not listening yet). */
function buildServer(
  options: Options,
  { exporter, logger, configs, maxConnections }: {
    exporter: Exporter;
    logger: Logger;
    configs: Configs;
    maxConnections: number;
  },
): HttpServer {
  const { webConfig } = configs;
  const app = createApp({
    exporter,
    telemetryPath: options.telemetryPath,
    maxRequests: options.maxRequests,
    logger,
    webConfig,
    enableLifecycle: options.enableLifecycle,
    ...(options.releaseMemoryWhenIdle
      ? { heapRelease: new IdleHeapRelease({ quietMs: HEAP_RELEASE_QUIET_MS }) }
      : {}),
  });
  return new HttpServer({
    handler: app.fetch,
    limits: {
      ...DEFAULT_LIMITS,
      headerTimeoutMs: options.readHeaderTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      maxConnections,
    },
    logger,
    headers: () => responseHeaders(webConfig.config.headers),
  });
}

/**
 * Starts serving on the listen address.
 *
 * @returns Whether it listens (why not is logged).
 */
function listen(
  server: HttpServer,
  { address, tls, logger }: { address: string; tls: TlsSettings | undefined; logger: Logger },
): boolean {
  const { hostname, port } = parseListenAddress(address);
  try {
    server.serve(openListener({ hostname, port, tls }), tls === undefined ? "http" : "https");
  } catch (error) {
    const reason = error instanceof Deno.errors.AddrInUse
      ? "address already in use"
      : (error as Error).message;
    logger.error("Cannot listen", {
      address,
      err: reason,
      ...(error instanceof Deno.errors.NotCapable
        ? {
          fix: "grant --allow-net for this address (docs/deployment.md: Another address or port)",
        }
        : {}),
    });
    return false;
  }
  return true;
}

/**
 * Watches the configs and reloads them on SIGHUP until SIGINT or SIGTERM, then shuts the server
 * down gracefully.
 */
async function serveUntilStopped(
  server: HttpServer,
  { options, configs, logger }: { options: Options; configs: Configs; logger: Logger },
): Promise<void> {
  const { configStore, webConfig } = configs;
  const watching = new AbortController();
  void configStore.watch(watching.signal);
  void webConfig.watch(watching.signal);
  const reload = (): void => {
    void configStore.reload("SIGHUP");
    void webConfig.reload("SIGHUP");
  };
  Deno.addSignalListener("SIGHUP", reload);

  const { promise: stopped, resolve: finish } = Promise.withResolvers<void>();
  const stop = (): void => {
    logger.info("Shutting down; waiting for scrapes in flight", {
      deadline_ms: SHUTDOWN_DEADLINE_MS,
    });
    Deno.removeSignalListener("SIGHUP", reload);
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    watching.abort();
    void server.shutdown(SHUTDOWN_DEADLINE_MS).then(finish);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  // Logged once SIGINT and SIGTERM are handled: a stop right after this line is graceful.
  const { hostname, port } = server.addr;
  logger.info("Listening", {
    address: hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`,
    telemetry_path: options.telemetryPath,
  });
  await stopped;
}

/**
 * Moves the server to a new listener with new TLS settings on the same address; connections
 * already open keep their old settings until they close. Back on the old settings on failure.
 */
async function relisten(
  server: HttpServer,
  tls: TlsSettings | undefined,
  old: TlsSettings | undefined,
): Promise<void> {
  const { hostname, port } = server.addr;
  await server.closeListener();
  const reopen = (settings: TlsSettings | undefined): Promise<void> =>
    retry(() =>
      server.serve(
        openListener({ hostname, port, tls: settings }),
        settings === undefined ? "http" : "https",
      )
    );
  try {
    await reopen(tls);
  } catch (error) {
    await reopen(old);
    throw error;
  }
}

/** Runs `fn` until it does not throw AddrInUse, for a second at most: a closed port frees late. */
async function retry(fn: () => void): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      return fn();
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse) || attempt >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
