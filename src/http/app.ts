/**
 * The HTTP app: metrics, the status page, health, ready and reload endpoints.
 * A value built by a factory, so tests call `app.request()` without a port.
 *
 * @module
 */

import { Hono } from "hono";

/** The app type: a Hono app, served by `Deno.serve(app.fetch)`. */
export type App = Hono;
import { compress } from "hono/compress";
import type { Exporter } from "../exporter.ts";
import type { MetricFamily } from "../metrics/model.ts";
import { renderText, TEXT_CONTENT_TYPE } from "../exposition/text_format.ts";
import { SCRAPE_TIMEOUT_HEADER, scrapeDeadlineMs } from "../system/scrape_deadline.ts";
import type { Logger } from "../log/logger.ts";
import { VERSION } from "../version.ts";
import { renderStatusPage } from "./status_page.ts";

/** Options of {@linkcode createApp}. */
export interface AppOptions {
  /** The scrape pipeline. */
  exporter: Exporter;
  /** Path serving metrics. */
  telemetryPath: string;
  /** Scrapes in flight before 503; 0 means no limit. */
  maxRequests: number;
  /** Logger. */
  logger: Logger;
}

/**
 * Builds the app.
 *
 * @param options The exporter and the web flags.
 * @returns The Hono app; serve it with `Deno.serve(app.fetch)`.
 */
export function createApp(options: AppOptions): App {
  const { exporter, telemetryPath, maxRequests, logger } = options;
  const app = new Hono();
  let inFlight = 0;

  app.use(compress({ encoding: "gzip" }));

  /** Runs a scrape unless --web.max-requests are in flight already; it ends by its deadline. */
  async function scrapeWithinLimit(
    prometheusTimeout?: string,
  ): Promise<MetricFamily[] | undefined> {
    if (maxRequests > 0 && inFlight >= maxRequests) return undefined;
    inFlight++;
    try {
      return await exporter.scrape({
        timeoutMs: scrapeDeadlineMs(exporter.scrapeTimeoutMs, prometheusTimeout),
      });
    } finally {
      inFlight--;
    }
  }

  // Matched literally: as a route pattern, a path such as "/*" or "/m/:x" would shadow the others.
  app.get("*", async (c, next) => {
    if (c.req.path !== telemetryPath) return await next();
    // Hono answers HEAD with the GET route's headers: no reason to read every stat for that.
    if (c.req.method === "HEAD") return c.body(null, 200, { "Content-Type": TEXT_CONTENT_TYPE });
    const families = await scrapeWithinLimit(c.req.header(SCRAPE_TIMEOUT_HEADER));
    if (families === undefined) {
      logger.debug("Too many scrapes in flight; answering 503", { limit: maxRequests });
      return c.text(
        `Too many concurrent scrapes: ${maxRequests} already in flight (--web.max-requests)\n`,
        503,
      );
    }
    return c.body(renderText(families), 200, { "Content-Type": TEXT_CONTENT_TYPE });
  });

  app.get("/", async (c) => {
    // The first visit shows the VMs too; it counts against the scrape limit like any scrape.
    if (exporter.lastScrape === undefined && c.req.method !== "HEAD") await scrapeWithinLimit();
    return c.html(renderStatusPage({
      version: VERSION,
      telemetryPath,
      lockdown: exporter.lockdown,
      lockdownSource: exporter.lockdownSource,
      configOk: exporter.configStore.lastReloadSuccessful,
      scrape: exporter.lastScrape,
    }));
  });

  const ready = (c: { text: (t: string, s: 200 | 503) => Response }): Response =>
    exporter.configStore.ready
      ? c.text("OK\n", 200)
      : c.text("Not ready: vm.yaml not loaded\n", 503);
  app.get("/-/healthy", (c) => ready(c));
  app.get("/-/ready", (c) => ready(c));

  app.post("/-/reload", async (c) => {
    const error = await exporter.configStore.reload("POST /-/reload");
    if (error === undefined) return c.text("OK\n", 200);
    return c.text(`Failed to reload vm.yaml: ${error.message}\n`, 500);
  });

  return app;
}
