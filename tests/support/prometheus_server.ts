/**
 * A real Prometheus server (Debian's `prometheus`) on loopback, scraping
 * given targets every second, for tests that check what Prometheus makes
 * of the exporter's output through its HTTP API.
 *
 * @module
 */

import { freeLoopbackPort, waitFor } from "./exporter_process.ts";

/** A running Prometheus. */
export interface PrometheusServer extends AsyncDisposable {
  /** Its pid. */
  readonly pid: number;
  /** `http://127.0.0.1:PORT`. */
  readonly baseUrl: string;
  /** Runs an instant query; returns the result vector. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** `/api/v1/metadata`: each family's type. */
  metadataTypes(): Promise<Map<string, string>>;
  /** Stops it (SIGTERM, then SIGKILL after 10 s) and removes its temp dir. */
  stop(): Promise<void>;
}

/**
 * Where the prometheus binary is, or undefined when it is not installed.
 *
 * @returns Its path.
 */
export function prometheusPath(): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/prometheus`).isFile) return `${dir}/prometheus`;
    } catch {
      // Not in this dir.
    }
  }
  return undefined;
}

function configText(targets: readonly string[]): string {
  return [
    "global:",
    "  scrape_interval: 1s",
    "  scrape_timeout: 1s",
    "  evaluation_interval: 1s",
    "scrape_configs:",
    "  - job_name: kvm",
    "    static_configs:",
    `      - targets: [${targets.map((t) => `"${t}"`).join(", ")}]`,
    "",
  ].join("\n");
}

async function getJson(url: string): Promise<unknown> {
  const response = await fetch(url);
  const body = await response.json() as { status: string; data: unknown; error?: string };
  if (body.status !== "success") throw new Error(`${url}: ${body.error ?? response.status}`);
  return body.data;
}

/**
 * Starts Prometheus on a free loopback port with a config it writes to a
 * temp dir, and waits until it is ready.
 *
 * @param targets `host:port` of each exporter to scrape every second.
 * @returns The running server.
 */
export async function startPrometheus(targets: readonly string[]): Promise<PrometheusServer> {
  const binary = prometheusPath();
  if (binary === undefined) throw new Error("prometheus is not installed");
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_prometheus_" });
  await Deno.writeTextFile(`${dir}/prometheus.yml`, configText(targets));
  const port = freeLoopbackPort();
  const child = new Deno.Command(binary, {
    args: [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  async function stop(): Promise<void> {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Exited meanwhile.
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Exited meanwhile.
        }
      }, 10_000);
      await status;
      clearTimeout(timer);
    }
    await Deno.remove(dir, { recursive: true });
  }
  try {
    await waitFor(async () => {
      if (exited) throw new Error("prometheus exited");
      const response = await fetch(`${baseUrl}/-/ready`).catch(() => undefined);
      await response?.body?.cancel();
      return response?.status === 200;
    }, { timeoutMs: 30_000, what: `prometheus on port ${port} to be ready` });
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    pid: child.pid,
    baseUrl,
    async query(expr) {
      const data = await getJson(`${baseUrl}/api/v1/query?query=${encodeURIComponent(expr)}`) as {
        result: { metric: Record<string, string>; value: [number, string] }[];
      };
      return data.result;
    },
    async metadataTypes() {
      const data = await getJson(`${baseUrl}/api/v1/metadata`) as Record<
        string,
        { type: string }[]
      >;
      return new Map(Object.entries(data).map(([name, entries]) => [name, entries[0]!.type]));
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
