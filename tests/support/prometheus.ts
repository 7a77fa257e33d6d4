/**
 * Runs a real Prometheus server (Debian's `prometheus`) for tests: a config written from scrape
 * jobs (with TLS and basic auth as Prometheus spells them) and rule files, a free loopback port,
 * a temp dir for its config and data, a start that waits for readiness, queries and waits for a
 * query's condition through its HTTP API, and a stop by pid that always runs.
 *
 * @module
 */

import yaml from "js-yaml";
import { freeLoopbackPort, waitFor } from "./exporter_process.ts";
import { programPath } from "./program_path.ts";

/** One scrape job of {@linkcode PrometheusOptions}. */
export interface ScrapeJob {
  /** Its `job_name`. */
  name: string;
  /** `host:port` of each target. */
  targets: readonly string[];
  /**
   * More keys of its scrape config as Prometheus spells them (`scheme`, `tls_config`,
   * `basic_auth`, ...); file paths may start with `{{dir}}`, the temp dir.
   */
  settings?: Record<string, unknown>;
}

/** Options of {@linkcode startPrometheus}. */
export interface PrometheusOptions {
  /** The scrape jobs. */
  jobs: readonly ScrapeJob[];
  /** How often it scrapes and evaluates rules (also the scrape timeout). Default "1s". */
  scrapeInterval?: string;
  /** Rule files to evaluate, by absolute path. */
  ruleFiles?: readonly string[];
  /** Files to write into the temp dir before start (name → content), e.g. a CA certificate. */
  files?: Record<string, string>;
  /** How long to wait for `/-/ready`. Default 30 000 ms. */
  startTimeoutMs?: number;
}

/** One sample of an instant query's result. */
export interface QuerySample {
  /** Its labels, `__name__` included. */
  metric: Record<string, string>;
  /** Its value, as Prometheus writes it. */
  value: string;
}

/** A rule as `/api/v1/rules` reports it. */
export interface RuleState {
  /** The recorded name or the alert name. */
  name: string;
  /** "recording" or "alerting". */
  type: string;
  /** "ok", "err" or "unknown" (not evaluated yet). */
  health: string;
  /** Why the last evaluation failed. */
  lastError?: string;
}

/** A running Prometheus. Dispose it (`await using`) to stop it and remove its dir. */
export interface PrometheusProcess extends AsyncDisposable {
  /** Its pid. */
  readonly pid: number;
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** The temp dir holding its config and data. */
  readonly dir: string;
  /** What it logged so far. */
  logText(): string;
  /**
   * Runs an instant query.
   *
   * @returns The result vector as label sets with their values.
   */
  query(expr: string): Promise<QuerySample[]>;
  /**
   * Waits until `expr` returns at least one sample for which `check` holds.
   *
   * @throws {Error} With its log and its targets' last errors after `timeoutMs`.
   */
  waitForQuery(
    expr: string,
    check: (value: string) => boolean,
    options?: { timeoutMs?: number; what?: string },
  ): Promise<void>;
  /** The scrape targets with their health and last error. */
  targets(): Promise<{ health: string; lastError: string; scrapeUrl: string }[]>;
  /** `/api/v1/metadata`: each family's type. */
  metadataTypes(): Promise<Map<string, string>>;
  /** Every rule of every group, with its health. */
  rules(): Promise<RuleState[]>;
}

/**
 * Where Debian's `prometheus` binary is.
 *
 * @returns Its path, or undefined when it is not installed.
 */
export function prometheusPath(): string | undefined {
  return programPath("prometheus");
}

/**
 * The `prometheus.yml` text for the options.
 *
 * @param options The jobs, interval and rule files.
 * @returns The config, with `{{dir}}` left for the caller to replace.
 */
export function prometheusConfig(options: PrometheusOptions): string {
  const interval = options.scrapeInterval ?? "1s";
  return yaml.dump({
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    ...(options.ruleFiles === undefined ? {} : { rule_files: [...options.ruleFiles] }),
    scrape_configs: options.jobs.map((job) => ({
      job_name: job.name,
      ...job.settings,
      static_configs: [{ targets: [...job.targets] }],
    })),
  });
}

/** Runs the binary with its output collected, and stops it by pid (SIGKILL) when asked. */
function spawn(binary: string, args: string[]): {
  pid: number;
  exited: () => boolean;
  log: () => string;
  kill: () => Promise<void>;
} {
  const child = new Deno.Command(binary, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const decoder = new TextDecoder();
  const drain = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    for await (const chunk of stream) log += decoder.decode(chunk);
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const kill = async (): Promise<void> => {
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
    await status;
    await drained;
  };
  return { pid: child.pid, exited: () => exited, log: () => log, kill };
}

/** A GET on the HTTP API, returning `data`. */
async function api<T>(url: string, path: string): Promise<T> {
  const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) });
  const body = await response.json();
  if (body.status !== "success") throw new Error(`${path}: ${JSON.stringify(body)}`);
  return body.data as T;
}

/**
 * Starts Prometheus on a free loopback port with a config made from `options` and waits for
 * `/-/ready`.
 *
 * @param options The scrape jobs, rule files, extra files and start deadline.
 * @returns The running server.
 * @throws {Error} When the binary is missing or it is not ready in time (it is then killed).
 */
export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusProcess> {
  const binary = prometheusPath();
  if (binary === undefined) throw new Error("prometheus is not on PATH");
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_prometheus_" });
  for (const [name, content] of Object.entries(options.files ?? {})) {
    await Deno.writeTextFile(`${dir}/${name}`, content);
  }
  const config = prometheusConfig(options).replaceAll("{{dir}}", dir);
  await Deno.writeTextFile(`${dir}/prometheus.yml`, config);
  const port = freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(binary, [
    `--config.file=${dir}/prometheus.yml`,
    `--storage.tsdb.path=${dir}/data`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=info",
  ]);
  const stop = async (): Promise<void> => {
    await child.kill();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitFor(async () => {
      if (child.exited()) throw new Error(`prometheus exited:\n${child.log()}`);
      const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      return response.status === 200;
    }, { timeoutMs: options.startTimeoutMs ?? 30_000, what: "prometheus /-/ready" });
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    pid: child.pid,
    url,
    dir,
    logText: child.log,
    ...queries(url, child.log),
    [Symbol.asyncDispose]: stop,
  };
}

/** The API calls of {@linkcode PrometheusProcess} on the server at `url`. */
function queries(
  url: string,
  log: () => string,
): Pick<PrometheusProcess, "query" | "waitForQuery" | "targets" | "metadataTypes" | "rules"> {
  const query = async (expr: string): Promise<QuerySample[]> =>
    (await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
      url,
      `/api/v1/query?query=${encodeURIComponent(expr)}`,
    )).result.map((r) => ({ metric: r.metric, value: r.value[1] }));
  const targets = async () =>
    (await api<{ activeTargets: { health: string; lastError: string; scrapeUrl: string }[] }>(
      url,
      "/api/v1/targets",
    )).activeTargets.map(({ health, lastError, scrapeUrl }) => ({ health, lastError, scrapeUrl }));
  return {
    query,
    targets,
    async waitForQuery(expr, check, waitOptions = {}) {
      try {
        await waitFor(async () => (await query(expr)).some((s) => check(s.value)), {
          timeoutMs: waitOptions.timeoutMs ?? 60_000,
          what: waitOptions.what ?? expr,
          intervalMs: 250,
        });
      } catch (error) {
        const state = await targets().catch((e) => `targets unavailable: ${e}`);
        throw new Error(`${(error as Error).message}\ntargets: ${JSON.stringify(state)}\n${log()}`);
      }
    },
    async metadataTypes() {
      const data = await api<Record<string, { type: string }[]>>(url, "/api/v1/metadata");
      return new Map(Object.entries(data).map(([name, entries]) => [name, entries[0]!.type]));
    },
    async rules() {
      const data = await api<{ groups: { rules: RuleState[] }[] }>(url, "/api/v1/rules");
      return data.groups.flatMap((g) => g.rules);
    },
  };
}
