/**
 * The HTTP app: metrics, the status page, health, ready and reload endpoints.
 * A value built by a factory, so tests call `app.request()` without a port.
 *
 * @module
 */

import { Hono } from "hono";

/** The app type: a Hono app, served by the exporter's own `HttpServer` (`http_server.ts`). */
export type App = Hono;
import { compress } from "hono/compress";
import { renderBytesSliced, TEXT_CONTENT_TYPE } from "../exposition/text_format.ts";
import { SCRAPE_TIMEOUT_HEADER, scrapeDeadlineMs } from "./scrape_deadline.ts";
import type { Logger } from "../log/logger.ts";
import type { IdleHeapRelease } from "../system/idle_heap_release.ts";
import { VERSION } from "../version.ts";
import { acceptsGzip } from "./gzip_body.ts";
import type { MetricsSource } from "./metrics_source.ts";
import { chunkStream, ScrapeAnswer } from "./scrape_answer.ts";
import { responseHeaders } from "./security_headers.ts";
import { SingleFlight } from "./single_flight.ts";
import { renderStatusPage } from "./status_page.ts";
import type { WebConfigStore } from "./web_config_store.ts";

/** Options of {@linkcode createApp}. */
export interface AppOptions {
  /** The scrape pipeline. */
  exporter: MetricsSource;
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
    for (const [name, value] of responseHeaders(webConfig?.config.headers ?? [])) {
      c.res.headers.set(name, value);
    }
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

/** A scrape in flight, by its deadline: when it ends and how long it was given. */
interface FlightKey {
  /** When it ends, `performance.now()` ms. */
  endsBy: number;
  /** How long it was given, ms. */
  timeoutMs: number;
}

/**
 * Scrapes, at most --web.max-requests at once. Metrics requests share: one that arrives while a
 * scrape is in flight that ends by this request's own deadline, and was given at least half this
 * request's time, joins it, and gets its answer (the same bytes) when it ends; only scrapes that
 * start count against the limit. Matching deadlines exactly would give a client with another
 * timeout (curl beside Prometheus) a scrape of its own, and the memory of one; joining any earlier
 * deadline would let a client with a very short timeout cut Prometheus's scrapes short.
 */
class ScrapeLimit {
  readonly #exporter: MetricsSource;
  readonly #maxRequests: number;
  readonly #heapRelease: IdleHeapRelease | undefined;
  /** Scrapes in flight, by their deadline: when it ends (`performance.now()`, ms) and its length. */
  readonly #flights = new SingleFlight<FlightKey, ScrapeAnswer>();
  #inFlight = 0;

  constructor(exporter: MetricsSource, maxRequests: number, heapRelease?: IdleHeapRelease) {
    this.#exporter = exporter;
    this.#maxRequests = maxRequests;
    this.#heapRelease = heapRelease;
  }

  /**
   * The rendered answer of a scrape in flight that ends by this request's deadline, or of a new
   * one (gzipped at once when `gzip`); undefined when a new one would pass --web.max-requests.
   */
  answer(prometheusTimeout: string | undefined, gzip: boolean): Promise<ScrapeAnswer> | undefined {
    const timeoutMs = this.#timeoutMs(prometheusTimeout);
    const mine: FlightKey = { endsBy: performance.now() + timeoutMs, timeoutMs };
    return this.#flights.joinAny({
      key: mine,
      accepts: (running) => running.endsBy <= mine.endsBy && 2 * running.timeoutMs >= timeoutMs,
      start: () => {
        if (!this.#take()) return undefined;
        const work = () => this.#scrapeAndRender(timeoutMs, gzip);
        return this.#heapRelease?.around(work) ?? work();
      },
    });
  }

  async #scrapeAndRender(timeoutMs: number, gzip: boolean): Promise<ScrapeAnswer> {
    try {
      const families = await this.#exporter.scrape({ timeoutMs });
      // Sliced: a large host's text takes longer to render than a health check may wait.
      const text = await renderBytesSliced(families);
      const release = this.#heapRelease;
      const answer = new ScrapeAnswer(text, release && ((work) => release.around(work)));
      if (gzip) await answer.gzipped();
      return answer;
    } finally {
      this.#inFlight--;
    }
  }

  #timeoutMs(prometheusTimeout: string | undefined): number {
    return scrapeDeadlineMs(this.#exporter.scrapeTimeoutMs, prometheusTimeout);
  }

  #take(): boolean {
    if (this.#maxRequests > 0 && this.#inFlight >= this.#maxRequests) return false;
    this.#inFlight++;
    return true;
  }
}

function addMetricsRoute(app: App, options: AppOptions & { scrapes: ScrapeLimit }): void {
  const { telemetryPath, maxRequests, logger, scrapes } = options;
  // Matched literally: as a route pattern, a path such as "/*" or "/m/:x" would shadow the others.
  app.get("*", async (c, next) => {
    if (c.req.path !== telemetryPath) return await next();
    const gzipped = acceptsGzip(c.req.header("Accept-Encoding"));
    // HEAD joins or starts a scrape too, as node_exporter's does: its Content-Length is the GET's.
    const flight = scrapes.answer(c.req.header(SCRAPE_TIMEOUT_HEADER), gzipped);
    if (flight === undefined) {
      logger.debug("Too many scrapes in flight; answering 503", { limit: maxRequests });
      return c.text(
        `Too many concurrent scrapes: ${maxRequests} already in flight (--web.max-requests)\n`,
        503,
      );
    }
    const answer = await flight;
    // Gzipped off the event loop; the compress middleware leaves an encoded body alone.
    const body = gzipped ? await answer.gzipped() : answer.text;
    // A stream of the shared bytes: a Response made from the bytes would copy them per client.
    return new Response(c.req.method === "HEAD" ? null : chunkStream(body), {
      status: 200,
      headers: {
        "Content-Type": TEXT_CONTENT_TYPE,
        "Content-Length": String(body.length),
        "Vary": "Accept-Encoding",
        ...(gzipped ? { "Content-Encoding": "gzip" } : {}),
      },
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
      config: {
        ok: exporter.configStore.lastReloadSuccessful,
        origin: exporter.configStore.origin,
        path: exporter.configStore.path,
      },
      collectors: exporter.collectors,
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
 * @returns The Hono app; an `HttpServer` (`http_server.ts`) serves its `fetch`.
 */
export function createApp(options: AppOptions): App {
  const app = new Hono();
  const scrapes = new ScrapeLimit(options.exporter, options.maxRequests, options.heapRelease);
  addHeaders(app, options.webConfig);
  addAuth(app, options);
  app.use(compress({ encoding: "gzip" }));
  addMetricsRoute(app, { ...options, scrapes });
  addStatusRoutes(app, options);
  addReloadRoute(app, options);
  return app;
}
