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
import { parseListenAddress } from "./src/http/listen_address.ts";
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

function listen(
  hostname: string | undefined,
  port: number,
  handler: Deno.ServeHandler,
): Deno.HttpServer<Deno.NetAddr> {
  const serve = (host: string): Deno.HttpServer<Deno.NetAddr> =>
    Deno.serve({ hostname: host, port, handler, onListen: () => {} });
  if (hostname !== undefined) return serve(hostname);
  try {
    return serve("::"); // Dual-stack: IPv4 and IPv6 where the host has IPv6.
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.NotCapable) {
      throw error;
    }
    return serve("0.0.0.0");
  }
}

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

  const exporter = createExporter({ options, configStore, logger, lockdown });
  const app = createApp({
    exporter,
    telemetryPath: options.telemetryPath,
    maxRequests: options.maxRequests,
    logger,
  });

  const address = parseListenAddress(options.listenAddress);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = listen(address.hostname, address.port, app.fetch);
  } catch (error) {
    const reason = error instanceof Deno.errors.AddrInUse
      ? "address already in use"
      : (error as Error).message;
    logger.error("Cannot listen", { address: options.listenAddress, err: reason });
    return 1;
  }
  const watching = new AbortController();
  void configStore.watch(watching.signal);
  const reload = (): void => void configStore.reload("SIGHUP");
  Deno.addSignalListener("SIGHUP", reload);

  const stop = (): void => {
    logger.info("Shutting down; waiting for scrapes in flight");
    Deno.removeSignalListener("SIGHUP", reload);
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    watching.abort();
    void server.shutdown();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  // Logged once SIGINT and SIGTERM are handled: a stop right after this line is graceful.
  const { hostname, port } = server.addr;
  logger.info("Listening", {
    address: hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`,
    telemetry_path: options.telemetryPath,
  });
  await server.finished;
  logger.info("Stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
