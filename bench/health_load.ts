/**
 * `/-/healthy` under load: several clients scrape back to back while a prober asks for health
 * every 10 ms, each on a fresh connection, as a kubelet's liveness probe does. The goal (issue
 * 14): p95 within 50 ms on 100×16 with several clients, and every check within the liveness
 * timeout (5 s) at 20,000 VMs.
 *
 * @module
 */

import { percentile, probe } from "./probe.ts";

/** Options of {@linkcode healthUnderLoad}. */
export interface HealthLoadOptions {
  /** Clients scraping `/metrics` back to back at once. */
  clients: number;
  /** Scrapes per client. */
  scrapes: number;
}

/** What {@linkcode healthUnderLoad} measured. */
export interface HealthLoad {
  /** Health checks made while the scrapes ran. */
  checks: number;
  /** Median, p95 and slowest check, ms. */
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  /** Checks that did not answer 200. */
  failed: number;
  /** Median scrape, ms, as the clients saw it. */
  scrapeMs: number;
}

/**
 * Probes `/-/healthy` every 10 ms while `clients` clients scrape back to back.
 *
 * @param port The exporter's loopback port.
 * @param options Clients and scrapes per client.
 * @returns The checks' latencies.
 */
export async function healthUnderLoad(
  port: number,
  options: HealthLoadOptions,
): Promise<HealthLoad> {
  let running = true;
  const latencies: number[] = [];
  let failed = 0;
  const prober = (async () => {
    while (running) {
      const { ms, status } = await probe(port, "/-/healthy");
      latencies.push(ms);
      if (status !== 200) failed++;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  const scrapes: number[] = [];
  try {
    await Promise.all(Array.from({ length: options.clients }, async () => {
      for (let i = 0; i < options.scrapes; i++) scrapes.push((await probe(port, "/metrics")).ms);
    }));
  } finally {
    running = false;
    await prober;
  }
  return {
    checks: latencies.length,
    p50Ms: percentile(latencies, 50),
    p95Ms: percentile(latencies, 95),
    maxMs: Math.max(...latencies),
    failed,
    scrapeMs: percentile(scrapes, 50),
  };
}
