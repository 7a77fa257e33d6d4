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
import { renderBytesSliced, TEXT_CONTENT_TYPE } from "../exposition/text_format.ts";
import { SCRAPE_TIMEOUT_HEADER, scrapeDeadlineMs } from "../system/scrape_deadline.ts";
import type { Logger } from "../log/logger.ts";
import type { IdleHeapRelease } from "../system/idle_heap_release.ts";
import { VERSION } from "../version.ts";
import { acceptsGzip, gzipBody } from "./gzip_body.ts";
import { renderStatusPage } from "./status_page.ts";
import type { WebConfigStore } from "./web_config_store.ts";

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
  /** The web config in force (basic auth, headers); none means no auth, default headers. */
  webConfig?: WebConfigStore;
  /** Whether `POST /-/reload` is served (`--web.enable-lifecycle`). Default false. */
  enableLifecycle?: boolean;
  /** Told when scrapes run, to give their garbage back once they stop; none by default. */
  heapRelease?: IdleHeapRelease;
}

/** The basic auth realm named in `WWW-Authenticate`. */
export const AUTH_REALM = "kvm_exporter";

/**
 * Headers on every response unless the web config sets them: the status page runs no script,
 * loads nothing and may not be framed.
 */
export const DEFAULT_HEADERS: readonly [string, string][] = [
  [
    "Content-Security-Policy",
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  ],
  ["X-Content-Type-Options", "nosniff"],
  ["X-Frame-Options", "DENY"],
];

/**
 * Whether a request comes from another site's page: browsers send `Sec-Fetch-Site` and, on
 * every POST, `Origin`. Clients that are not browsers (curl, systemd) send neither and pass.
 * A page's `Origin` is trusted only when it names this host by an IP literal or `localhost`:
 * a page served from a DNS name can be a DNS rebinding attack, whose Origin and Host agree on
 * a name the attacker pointed at this exporter.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isCrossOrigin } from "./app.ts";
 * const post = (host: string, origin: string) => new Headers({ Host: host, Origin: origin });
 * assert.equal(isCrossOrigin(post("127.0.0.1:9900", "http://127.0.0.1:9900")), false);
 * assert.equal(isCrossOrigin(post("evil.example:9900", "http://evil.example:9900")), true);
 * ```
 *
 * @param headers The request's headers.
 * @returns true when the request must not change state.
 */
export function isCrossOrigin(headers: Headers): boolean {
  const site = headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") return true;
  const origin = headers.get("origin");
  if (origin === null) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return true; // "null" (a sandboxed page, a file:// page) or garbage.
  }
  return url.host !== headers.get("host") || !isAddressOrLocalhost(url.hostname);
}

/** An IP literal (as `URL` normalises it: dotted IPv4, bracketed IPv6) or `localhost`. */
function isAddressOrLocalhost(hostname: string): boolean {
  return hostname === "localhost" || /^\[[0-9a-f:.]+\]$/.test(hostname) ||
    /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * Sets the default headers the web config does not set, then the web config's own, on every
 * response.
 */
function addHeaders(app: App, webConfig: WebConfigStore | undefined): void {
  app.use(async (c, next) => {
    await next();
    const configured = webConfig?.config.headers ?? [];
    const names = new Set(configured.map(([name]) => name.toLowerCase()));
    for (const [name, value] of DEFAULT_HEADERS) {
      if (!names.has(name.toLowerCase())) c.res.headers.set(name, value);
    }
    for (const [name, value] of configured) c.res.headers.set(name, value);
  });
}

function addAuth(app: App, options: AppOptions): void {
  const { webConfig, logger } = options;
  // Every path, the 404s too: an unauthenticated client learns nothing, not even what exists.
  app.use(async (c, next) => {
    const outcome = webConfig === undefined
      ? "allowed"
      : await webConfig.auth.check(c.req.header("authorization") ?? null);
    if (outcome === "allowed") return await next();
    if (outcome === "busy") {
      logger.debug("Too many password checks in flight; answering 503");
      return c.text("Too many password checks in flight; retry later\n", 503, {
        "Retry-After": "1",
      });
    }
    return c.text("Unauthorized\n", 401, {
      "WWW-Authenticate": `Basic realm="${AUTH_REALM}", charset="UTF-8"`,
    });
  });
}

/** Scrapes, at most --web.max-requests at once. */
class ScrapeLimit {
  readonly #exporter: Exporter;
  readonly #maxRequests: number;
  #inFlight = 0;

  constructor(exporter: Exporter, maxRequests: number) {
    this.#exporter = exporter;
    this.#maxRequests = maxRequests;
  }

  /** Runs a scrape unless --web.max-requests are in flight already; it ends by its deadline. */
  async scrape(prometheusTimeout?: string): Promise<MetricFamily[] | undefined> {
    if (this.#maxRequests > 0 && this.#inFlight >= this.#maxRequests) return undefined;
    this.#inFlight++;
    try {
      return await this.#exporter.scrape({
        timeoutMs: scrapeDeadlineMs(this.#exporter.scrapeTimeoutMs, prometheusTimeout),
      });
    } finally {
      this.#inFlight--;
    }
  }
}

function addMetricsRoute(app: App, options: AppOptions & { scrapes: ScrapeLimit }): void {
  const { telemetryPath, maxRequests, logger, scrapes, heapRelease } = options;
  // Matched literally: as a route pattern, a path such as "/*" or "/m/:x" would shadow the others.
  app.get("*", async (c, next) => {
    if (c.req.path !== telemetryPath) return await next();
    // Hono answers HEAD with the GET route's headers: no reason to read every stat for that.
    if (c.req.method === "HEAD") return c.body(null, 200, { "Content-Type": TEXT_CONTENT_TYPE });
    const gzipped = acceptsGzip(c.req.header("Accept-Encoding"));
    const scrapeAndRender = async () => {
      const families = await scrapes.scrape(c.req.header(SCRAPE_TIMEOUT_HEADER));
      if (families === undefined) return undefined;
      // Sliced: a large host's text takes longer to render than a health check may wait.
      const text = await renderBytesSliced(families);
      return gzipped ? await gzipBody(text) : text;
    };
    const body = await (heapRelease?.around(scrapeAndRender) ?? scrapeAndRender());
    if (body === undefined) {
      logger.debug("Too many scrapes in flight; answering 503", { limit: maxRequests });
      return c.text(
        `Too many concurrent scrapes: ${maxRequests} already in flight (--web.max-requests)\n`,
        503,
      );
    }
    // Gzipped here, off the event loop; the compress middleware leaves an encoded body alone.
    return c.body(body, 200, {
      "Content-Type": TEXT_CONTENT_TYPE,
      "Vary": "Accept-Encoding",
      ...(gzipped ? { "Content-Encoding": "gzip" } : {}),
    });
  });
}

function addStatusRoutes(app: App, options: AppOptions): void {
  const { exporter, telemetryPath } = options;
  // Never waits on a scrape: one stuck stat file would hold a person or a probe for the whole
  // scrape deadline. The page shows the last scrape, or says that none has finished yet.
  app.get("/", (c) => {
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
}

function addReloadRoute(app: App, options: AppOptions): void {
  const { exporter, webConfig } = options;
  app.post("/-/reload", async (c) => {
    if (options.enableLifecycle !== true) {
      return c.text("Lifecycle API is not enabled: start with --web.enable-lifecycle\n", 404);
    }
    // A page on another site may POST here (a "simple" text/plain request needs no preflight),
    // or a page on a name rebound to this host's address.
    if (isCrossOrigin(c.req.raw.headers)) {
      return c.text(
        "Reload refused: from another site's page, or from a page on a DNS name (DNS rebinding)\n",
        403,
      );
    }
    const webError = await webConfig?.reload("POST /-/reload");
    const error = await exporter.configStore.reload("POST /-/reload");
    if (webError !== undefined) {
      return c.text(`Failed to reload the web config: ${webError.message}\n`, 500);
    }
    if (error === undefined) return c.text("OK\n", 200);
    return c.text(`Failed to reload vm.yaml: ${error.message}\n`, 500);
  });
}

/**
 * Builds the app.
 *
 * @param options The exporter and the web flags.
 * @returns The Hono app; serve it with `Deno.serve(app.fetch)`.
 */
export function createApp(options: AppOptions): App {
  const app = new Hono();
  const scrapes = new ScrapeLimit(options.exporter, options.maxRequests);
  addHeaders(app, options.webConfig);
  addAuth(app, options);
  app.use(compress({ encoding: "gzip" }));
  addMetricsRoute(app, { ...options, scrapes });
  addStatusRoutes(app, options);
  addReloadRoute(app, options);
  return app;
}
