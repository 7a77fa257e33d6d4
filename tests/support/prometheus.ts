/**
 * Runs a real Prometheus server (Debian's `prometheus`) for tests: a free loopback port, a temp
 * dir for its config and data, a start that waits for readiness, queries through its HTTP API,
 * and a stop by pid that always runs.
 *
 * @module
 */

import { freeLoopbackPort, waitFor } from "./exporter_process.ts";

/** Options of {@linkcode startPrometheus}. */
export interface PrometheusOptions {
  /** `prometheus.yml` content; may name files with `{{dir}}`, replaced by the temp dir. */
  config: string;
  /** Files to write into the temp dir before start (name → content). */
  files?: Record<string, string>;
  /** How long to wait for `/-/ready`. Default 30 000 ms. */
  startTimeoutMs?: number;
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
  query(expr: string): Promise<{ metric: Record<string, string>; value: string }[]>;
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
}

/** Whether Debian's `prometheus` binary is on PATH. */
export function prometheusPath(): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/prometheus`).isFile) return `${dir}/prometheus`;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/**
 * Starts Prometheus on a free loopback port with `options.config` and waits for `/-/ready`.
 *
 * @param options The config, extra files and start deadline.
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
  await Deno.writeTextFile(`${dir}/prometheus.yml`, options.config.replaceAll("{{dir}}", dir));
  const port = freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const child = new Deno.Command(binary, {
    args: [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=info",
    ],
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
  const stop = async (): Promise<void> => {
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
    await status;
    await drained;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };

  const api = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) });
    const body = await response.json();
    if (body.status !== "success") throw new Error(`${path}: ${JSON.stringify(body)}`);
    return body.data as T;
  };
  const query = async (expr: string) =>
    (await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
      `/api/v1/query?query=${encodeURIComponent(expr)}`,
    )).result.map((r) => ({ metric: r.metric, value: r.value[1] }));
  const targets = async () =>
    (await api<{ activeTargets: { health: string; lastError: string; scrapeUrl: string }[] }>(
      "/api/v1/targets",
    )).activeTargets.map(({ health, lastError, scrapeUrl }) => ({ health, lastError, scrapeUrl }));

  try {
    await waitFor(async () => {
      if (exited) throw new Error(`prometheus exited:\n${log}`);
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
    logText: () => log,
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
        throw new Error(`${(error as Error).message}\ntargets: ${JSON.stringify(state)}\n${log}`);
      }
    },
    [Symbol.asyncDispose]: stop,
  };
}
