/**
 * kvm_exporter: KVM statistics as Prometheus metrics. This file wires flags,
 * config, the scrape pipeline and the HTTP server; everything else is in src/.
 *
 * @module
 */

import { FlagError, helpText, parseFlags } from "./src/cli/flags.ts";
import { ConfigStore } from "./src/config/config_store.ts";
import { createExporter } from "./src/exporter.ts";
import { createApp } from "./src/http/app.ts";
import { DEFAULT_LIMITS, HttpServer } from "./src/http/http_server.ts";
import { parseListenAddress } from "./src/http/listen_address.ts";
import { openListener } from "./src/http/listener.ts";
import type { TlsSettings } from "./src/http/web_config.ts";
import { WebConfigStore } from "./src/http/web_config_store.ts";
import { createLogger } from "./src/log/logger.ts";
import { readLockdown } from "./src/system/lockdown.ts";
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
  const { options } = command;
  const logger = createLogger({ level: options.logLevel, format: options.logFormat });
  logger.info("Starting kvm_exporter", { version: VERSION, deno: Deno.version.deno });

  const lockdown = await readLockdown(options.sysfs);
  if (lockdown === "integrity" || lockdown === "confidentiality") {
    logger.info(
      "Kernel lockdown is on: debugfs refuses cumulative, peak and histogram stats (exits, halt_wait_ns, pf_fixed, ...); instant stats (pages_*, mmu_unsync, blocking) and vCPU files still work. Enable --collector.qmp for the rest",
      { lockdown },
    );
  }

  const configStore = new ConfigStore({
    path: options.vmmapPath,
    explicit: options.vmmapPathExplicit,
    logger,
  });
  try {
    await configStore.loadInitial();
  } catch (error) {
    logger.error("Cannot load vm.yaml", { err: (error as Error).message });
    return 1;
  }

  const webConfig = new WebConfigStore({
    path: options.webConfigFile,
    logger,
    // Called on reloads only, once `server` exists.
    onTlsChange: (config, previous) => relisten(server, config.tls, previous.tls),
  });
  try {
    await webConfig.loadInitial();
  } catch (error) {
    logger.error("Cannot load the web config", { err: (error as Error).message });
    return 1;
  }

  const exporter = createExporter({ options, configStore, logger, lockdown });
  const app = createApp({
    exporter,
    telemetryPath: options.telemetryPath,
    maxRequests: options.maxRequests,
    logger,
    webConfig,
    enableLifecycle: options.enableLifecycle,
  });
  const server = new HttpServer({
    handler: app.fetch,
    limits: {
      ...DEFAULT_LIMITS,
      headerTimeoutMs: options.readHeaderTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      maxConnections: options.maxConnections,
    },
    logger,
  });

  const address = parseListenAddress(options.listenAddress);
  const tls = webConfig.config.tls;
  try {
    server.serve(
      openListener({ hostname: address.hostname, port: address.port, tls }),
      tls === undefined ? "http" : "https",
    );
  } catch (error) {
    const reason = error instanceof Deno.errors.AddrInUse
      ? "address already in use"
      : (error as Error).message;
    logger.error("Cannot listen", {
      address: options.listenAddress,
      err: reason,
      ...(error instanceof Deno.errors.NotCapable
        ? { fix: "grant --allow-net for this address (README: Another address or port)" }
        : {}),
    });
    return 1;
  }
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
  logger.info("Stopped");
  return 0;
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
