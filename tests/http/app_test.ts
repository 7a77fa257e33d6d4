/**
 * The HTTP app through `app.request()`, on the sample debugfs tree.
 */

import { isCrossOrigin } from "../../src/http/app.ts";
import { IdleHeapRelease } from "../../src/system/idle_heap_release.ts";
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { REPO_ROOT, waitFor } from "../support/exporter_process.ts";
import { buildSampleApp, GatedFileSystem } from "../support/sample_exporter.ts";

const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Drops the lines whose value changes from one scrape to the next. */
function stable(body: string): string {
  return body.split("\n").filter((line) =>
    !line.startsWith("kvm_scrape_collector_duration_seconds")
  )
    .join("\n");
}

/** The `domain` label values of kvm_vm_info, sorted. */
function domains(body: string): string[] {
  return [...body.matchAll(/^kvm_vm_info\{domain="([^"]*)"/gm)].map((m) => m[1]!).sort();
}

Deno.test("createApp() answers 404 on paths other than its own", async () => {
  const { app } = await buildSampleApp();
  const cases: [string, string][] = [
    ["GET", "/nope"],
    ["GET", "/metrics/"],
    ["GET", "/metricsx"],
    ["GET", "/-/nope"],
    ["GET", "/-/reload"],
    ["POST", "/metrics"],
  ];
  for (const [method, path] of cases) {
    const response = await app.request(path, { method });
    await response.body?.cancel();
    assert.equal(response.status, 404, `${method} ${path}`);
  }
});

Deno.test("createApp() serves /metrics as text format 0.0.4 ending with a newline", async () => {
  const { app } = await buildSampleApp();
  const response = await app.request("/metrics");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("Content-Type"), CONTENT_TYPE);
  assert.equal(response.headers.get("Content-Encoding"), null);
  const body = await response.text();
  assert.ok(body.endsWith("\n"), "ends with a newline");
  assert.ok(!body.endsWith("\n\n"), "no empty last line");
  assert.match(body, /^# TYPE kvm_stat_exits_count gauge$/m);
  assert.match(body, /^kvm_stat_exits_count\{domain="global"\} \d+$/m);
  assert.match(body, /^kvm_scrape_collector_success\{collector="kvm_stat"\} 1$/m);
  assert.deepEqual(domains(body), ["31007-9", "target_vm", "web-01"]);
  assert.doesNotMatch(body, /^process_/m, "processMetrics: false");
});

Deno.test("createApp() answers HEAD /metrics with 200, the headers and no body", async () => {
  const { app } = await buildSampleApp();
  const response = await app.request("/metrics", { method: "HEAD" });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("Content-Type"), CONTENT_TYPE);
  assert.equal(await response.text(), "");
});

Deno.test("createApp() gzips /metrics for Accept-Encoding: gzip and not otherwise", async () => {
  const { app } = await buildSampleApp();
  const plain = await app.request("/metrics");
  const plainBody = await plain.text();
  assert.equal(plain.headers.get("Content-Encoding"), null);

  const zipped = await app.request("/metrics", { headers: { "Accept-Encoding": "gzip" } });
  assert.equal(zipped.status, 200);
  assert.equal(zipped.headers.get("Content-Encoding"), "gzip");
  assert.equal(zipped.headers.get("Content-Type"), CONTENT_TYPE);
  assert.match(zipped.headers.get("Vary") ?? "", /Accept-Encoding/i);
  const bytes = new Uint8Array(await zipped.arrayBuffer());
  assert.deepEqual([...bytes.slice(0, 2)], [0x1f, 0x8b], "gzip magic number");
  const unzipped = await new Response(
    new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip")),
  ).text();
  assert.ok(unzipped.endsWith("\n"));
  assert.equal(stable(unzipped), stable(plainBody));
});

Deno.test("createApp() serves metrics on --web.telemetry-path only", async () => {
  const { app } = await buildSampleApp({ args: ["--web.telemetry-path=/kvm/metrics"] });
  const custom = await app.request("/kvm/metrics");
  assert.equal(custom.status, 200);
  assert.match(await custom.text(), /^kvm_stat_exits_count\{domain="global"\} \d+$/m);
  const standard = await app.request("/metrics");
  await standard.body?.cancel();
  assert.equal(standard.status, 404);
});

/** Telemetry paths with characters that are route syntax in Hono, and paths they must not take. */
const LITERAL_PATHS: { path: string; others: string[] }[] = [
  { path: "/*", others: ["/", "/-/healthy", "/-/ready", "/anything"] },
  { path: "/m/:x", others: ["/m/abc"] },
  { path: "/kvm/*", others: ["/kvm/x", "/kvm/metrics"] },
];

for (const { path, others } of LITERAL_PATHS) {
  Deno.test(`createApp() matches --web.telemetry-path=${path} literally`, async () => {
    const { app } = await buildSampleApp({ args: [`--web.telemetry-path=${path}`] });
    const own = await app.request(path);
    assert.equal(own.status, 200);
    assert.equal(own.headers.get("Content-Type"), CONTENT_TYPE);
    await own.body?.cancel();
    for (const other of others) {
      const response = await app.request(other);
      const body = await response.text();
      assert.ok(!body.includes("# TYPE"), `${other} must not serve metrics`);
    }
    const root = await app.request("/");
    assert.match(await root.text(), /^<!DOCTYPE html>/);
    const ready = await app.request("/-/ready");
    assert.equal(await ready.text(), "OK\n");
  });
}

Deno.test("createApp() leaves out kvm_stat metrics with --no-collector.kvm_stat", async () => {
  const { app } = await buildSampleApp({ args: ["--no-collector.kvm_stat"] });
  const body = await (await app.request("/metrics")).text();
  assert.doesNotMatch(body, /^kvm_stat_/m);
  assert.doesNotMatch(body, /collector="kvm_stat"/);
  assert.match(body, /^kvm_exporter_build_info\{/m);
});

Deno.test("createApp() serves a landing page with the version, metrics link and VMs", async () => {
  for (const path of ["/metrics", "/kvm"]) {
    const { app } = await buildSampleApp({ args: [`--web.telemetry-path=${path}`] });
    await (await app.request(path)).body?.cancel(); // The page shows the last scrape.
    const response = await app.request("/");
    assert.equal(response.status, 200);
    assert.match(response.headers.get("Content-Type") ?? "", /^text\/html/);
    const html = await response.text();
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /Version 0\.1\.0\b/);
    assert.ok(html.includes(`<a href="${path}">`), `link to ${path}`);
    const table = /<table id="vms">([\s\S]*?)<\/table>/.exec(html)?.[1];
    assert.ok(table !== undefined, "a table of VMs");
    const rows = [...table.matchAll(/<tr><td>([^<]*)<\/td>/g)].map((m) => m[1]).sort();
    assert.deepEqual(rows, ["31007-9", "target_vm", "web-01"]);
  }
});

Deno.test("createApp() escapes VM names on the landing page", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_http_" });
  try {
    const path = `${dir}/vm.yaml`;
    await Deno.writeTextFile(path, 'vm_infos:\n  "<b>a&b</b>":\n    kvm_debug_dir: "10620-10"\n');
    const { app } = await buildSampleApp({ args: [`--collector.vmmap.path=${path}`] });
    await (await app.request("/metrics")).body?.cancel();
    const html = await (await app.request("/")).text();
    assert.ok(html.includes("<td>&#60;b&#62;a&#38;b&#60;/b&#62;</td>"), "escaped name");
    assert.ok(!html.includes("<b>a&b</b>"), "no raw name");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createApp() answers 200 on /-/healthy and /-/ready", async () => {
  const { app } = await buildSampleApp();
  for (const path of ["/-/healthy", "/-/ready"]) {
    const response = await app.request(path);
    assert.equal(response.status, 200, path);
    assert.equal(await response.text(), "OK\n");
  }
});

Deno.test("createApp() POST /-/reload loads a good vm.yaml and keeps it over a bad one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_http_" });
  try {
    const path = `${dir}/vm.yaml`;
    await Deno.copyFile(`${REPO_ROOT}/tests/fixtures/sample/vm.yaml`, path);
    const { app } = await buildSampleApp({
      args: [`--collector.vmmap.path=${path}`, "--web.enable-lifecycle"],
    });
    const scrape = async (): Promise<string> => await (await app.request("/metrics")).text();
    assert.deepEqual(domains(await scrape()), ["31007-9", "target_vm", "web-01"]);

    await Deno.writeTextFile(path, 'vm_infos:\n  renamed_vm:\n    kvm_debug_dir: "10620-10"\n');
    const good = await app.request("/-/reload", { method: "POST" });
    assert.equal(good.status, 200);
    assert.equal(await good.text(), "OK\n");
    const afterGood = await scrape();
    assert.deepEqual(domains(afterGood), ["31007-9", "renamed_vm", "web-01"]);
    assert.match(afterGood, /^kvm_exporter_config_last_reload_successful 1$/m);

    await Deno.writeTextFile(path, "vm_infos:\n  broken_vm:\n    bogus: 1\n");
    const bad = await app.request("/-/reload", { method: "POST" });
    assert.equal(bad.status, 500);
    const reason = await bad.text();
    assert.equal(reason.split("\n").length, 2, "one line and its newline");
    assert.ok(reason.includes(`${path}:3:5: `), reason);
    const afterBad = await scrape();
    assert.deepEqual(domains(afterBad), ["31007-9", "renamed_vm", "web-01"]);
    assert.match(afterBad, /^kvm_exporter_config_last_reload_successful 0$/m);
    const ready = await app.request("/-/ready");
    await ready.body?.cancel();
    assert.equal(ready.status, 200, "still ready with the old config");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Starts requests and records which have settled. */
function startRequests(
  count: number,
  request: (i: number) => Response | Promise<Response>,
): { settled: Set<number>; all: Promise<{ status: number; body: string; type: string }[]> } {
  const settled = new Set<number>();
  const all = Promise.all(Array.from({ length: count }, async (_, i) => {
    const response = await request(i);
    const result = {
      status: response.status,
      body: await response.text(),
      type: response.headers.get("Content-Type") ?? "",
    };
    settled.add(i);
    return result;
  }));
  return { settled, all };
}

/** A request with its own Prometheus timeout (5.01 s, 5.02 s, ...): its own scrape, not shared. */
/**
 * A request whose deadline ends before those of the requests `ownScrape(0..i-1)` made just before
 * it, so it joins none of their scrapes: the deadlines are 1 s apart, under `OWN_SCRAPES`.
 */
function ownScrape(i: number): RequestInit {
  return { headers: { "X-Prometheus-Scrape-Timeout-Seconds": `${59.5 - i}` } };
}

/** Lets the deadlines of `ownScrape()` be what the header asks. */
const OWN_SCRAPES = "--web.scrape-timeout=60s";

for (const limit of [1, 3]) {
  Deno.test(`createApp() answers 503 to scrape ${limit + 1} with --web.max-requests=${limit}`, async () => {
    const fs = new GatedFileSystem();
    try {
      const { app, logs } = await buildSampleApp({
        args: [`--web.max-requests=${limit}`, OWN_SCRAPES],
        fs,
      });
      const requests = startRequests(limit + 1, (i) => app.request("/metrics", ownScrape(i)));
      // Each scrape in flight holds exactly one file operation at the gate (listing the root).
      await waitFor(() => fs.waiting === limit && requests.settled.size === 1, {
        timeoutMs: 5000,
        what: `${limit} scrapes held at the gate and one answered`,
      });
      fs.open();
      const results = await requests.all;
      const refused = results.filter((r) => r.status === 503);
      assert.equal(refused.length, 1, JSON.stringify(results.map((r) => r.status)));
      assert.equal(results.filter((r) => r.status === 200).length, limit);
      const reason = refused[0]!.body;
      assert.equal(reason.split("\n").length, 2, "one line and its newline");
      assert.match(reason, new RegExp(`\\b${limit}\\b.*--web\\.max-requests`));
      assert.match(refused[0]!.type, /^text\/plain/);
      for (const ok of results.filter((r) => r.status === 200)) {
        assert.match(ok.body, /^kvm_scrape_collector_success\{collector="kvm_stat"\} 1$/m);
      }
      assert.equal(logs.filter((line) => / level=debug .*503/.test(line)).length, 1);

      // The slots are free again once the scrapes are done.
      const again = await app.request("/metrics");
      await again.body?.cancel();
      assert.equal(again.status, 200);
    } finally {
      fs.open();
    }
  });
}

Deno.test("createApp() sets no limit with --web.max-requests=0", async () => {
  const fs = new GatedFileSystem();
  try {
    const { app } = await buildSampleApp({ args: ["--web.max-requests=0", OWN_SCRAPES], fs });
    const count = 50; // More than the default limit of 40.
    const requests = startRequests(count, (i) => app.request("/metrics", ownScrape(i)));
    await waitFor(() => fs.waiting === count, {
      timeoutMs: 5000,
      what: `${count} scrapes held at the gate`,
    });
    assert.equal(requests.settled.size, 0, "no scrape answered while all are held");
    fs.open();
    const statuses = (await requests.all).map((r) => r.status);
    assert.deepEqual(statuses, Array(count).fill(200));
  } finally {
    fs.open();
  }
});

Deno.test("createApp() shares one scrape among the requests of the same moment", async () => {
  const fs = new GatedFileSystem();
  try {
    const { app } = await buildSampleApp({ fs });
    const count = 45; // More than --web.max-requests (40): joining a scrape takes no slot.
    const gzip = { headers: { "Accept-Encoding": "gzip" } };
    const responses = Array.from(
      { length: count },
      (_, i) => app.request("/metrics", i % 2 === 0 ? {} : gzip),
    );
    await waitFor(() => fs.waiting > 0, { timeoutMs: 5000, what: "a scrape held at the gate" });
    // A deadline that ends before the one in flight (10 s): a scrape of its own.
    const other = app.request("/metrics", {
      headers: { "X-Prometheus-Scrape-Timeout-Seconds": "5" },
    });
    await waitFor(() => fs.waiting === 2, { timeoutMs: 5000, what: "two scrapes at the gate" });
    fs.open();
    const bodies = await Promise.all(responses.map(async (pending) => {
      const response = await pending;
      assert.equal(response.status, 200);
      const bytes = new Uint8Array(await response.arrayBuffer());
      assert.equal(Number(response.headers.get("Content-Length")), bytes.length);
      if (response.headers.get("Content-Encoding") !== "gzip") {
        return new TextDecoder().decode(bytes);
      }
      return new TextDecoder().decode(gunzipSync(bytes));
    }));
    // One scrape: byte for byte the same text, its durations too, gzip'd or not.
    assert.match(bodies[0]!, /^kvm_scrape_collector_duration_seconds\{/m);
    assert.deepEqual(new Set(bodies).size, 1);
    assert.equal((await (await other).text()).endsWith("\n"), true);
  } finally {
    fs.open();
  }
});

Deno.test("createApp() lets a request with a later deadline join the scrape in flight", async () => {
  const fs = new GatedFileSystem();
  try {
    const { app } = await buildSampleApp({ fs });
    // Prometheus (its default 10 s, so 9.5 s) first, then curl (no header: the flag's 10 s).
    const prometheus = app.request("/metrics", {
      headers: { "X-Prometheus-Scrape-Timeout-Seconds": "10" },
    });
    await waitFor(() => fs.waiting === 1, { timeoutMs: 5000, what: "a scrape held at the gate" });
    const curl = app.request("/metrics");
    // A shorter deadline starts a scrape of its own; once it is at the gate, curl (asked before it,
    // on the same path) has joined or started one too.
    const short = app.request("/metrics", {
      headers: { "X-Prometheus-Scrape-Timeout-Seconds": "3" },
    });
    await waitFor(() => fs.waiting === 2, {
      timeoutMs: 5000,
      what: "the short scrape at the gate",
    });
    fs.open();
    const [a, b, c] = await Promise.all(
      [prometheus, curl, short].map(async (p) => (await p).text()),
    );
    assert.match(a!, /^kvm_scrape_collector_duration_seconds\{/m);
    assert.equal(a, b, "curl got the answer of Prometheus's scrape");
    assert.notEqual(a, c, "the shorter deadline got a scrape of its own");
  } finally {
    fs.open();
  }
});

Deno.test("createApp() does not let a request join a scrape given less than half its time", async () => {
  const fs = new GatedFileSystem();
  try {
    const { app } = await buildSampleApp({ fs });
    // A client with a 2 s timeout (1.5 s) first, then Prometheus (10 s: the flag's) beside it: its
    // answer must not be cut at the short deadline, so it gets a scrape of its own.
    const short = app.request("/metrics", {
      headers: { "X-Prometheus-Scrape-Timeout-Seconds": "2" },
    });
    await waitFor(() => fs.waiting === 1, { timeoutMs: 5000, what: "a scrape held at the gate" });
    const prometheus = app.request("/metrics");
    await waitFor(() => fs.waiting === 2, { timeoutMs: 5000, what: "a second scrape at the gate" });
    fs.open();
    const [a, b] = await Promise.all([short, prometheus].map(async (p) => (await p).text()));
    assert.notEqual(a, b);
  } finally {
    fs.open();
  }
});

Deno.test("createApp() answers HEAD /metrics with the Content-Length of the GET", async () => {
  const fs = new GatedFileSystem();
  try {
    const { app } = await buildSampleApp({ fs });
    for (const encoding of ["identity", "gzip"]) {
      const init = (method: string) => ({ method, headers: { "Accept-Encoding": encoding } });
      // Asked in the same moment, so both answer from the same scrape.
      const get = app.request("/metrics", init("GET"));
      const head = app.request("/metrics", init("HEAD"));
      fs.open();
      const [got, headed] = [await get, await head];
      const length = (await got.arrayBuffer()).byteLength;
      assert.equal(headed.status, 200, encoding);
      assert.equal(await headed.text(), "", encoding);
      assert.equal(headed.headers.get("Content-Length"), String(length), encoding);
      assert.equal(headed.headers.get("Content-Encoding"), got.headers.get("Content-Encoding"));
      assert.equal(headed.headers.get("Content-Type"), CONTENT_TYPE);
    }
  } finally {
    fs.open();
  }
});

Deno.test("createApp() answers / without waiting for the scrape in flight", async () => {
  const fs = new GatedFileSystem();
  const { app, exporter } = await buildSampleApp({ fs });
  let scraped = false;
  const held = Promise.resolve(app.request("/metrics")).finally(() => scraped = true);
  const page = await app.request("/");
  assert.equal(page.status, 200);
  assert.equal(scraped, false, "the page answered while the scrape was held");
  assert.match(await page.text(), /Last scrape: none has finished yet/);
  assert.equal(exporter.lastScrape, undefined, "the page started no scrape of its own");
  fs.open();
  assert.equal((await held).status, 200);
});

Deno.test("isCrossOrigin() refuses other sites' pages and lets same-origin and non-browsers in", () => {
  const cases: [Record<string, string>, boolean][] = [
    [{ Host: "h:9900" }, false],
    [{ Host: "127.0.0.1:9900", Origin: "http://127.0.0.1:9900" }, false],
    [{ Host: "[::1]:9900", Origin: "http://[::1]:9900" }, false],
    [{ Host: "localhost:9900", Origin: "http://localhost:9900" }, false],
    [
      { Host: "10.0.0.1:9900", Origin: "https://10.0.0.1:9900", "Sec-Fetch-Site": "same-origin" },
      false,
    ],
    [{ Host: "h:9900", "Sec-Fetch-Site": "none" }, false],
    [{ Host: "127.0.0.1:9900", Origin: "http://evil.example" }, true],
    [{ Host: "127.0.0.1:9900", Origin: "http://127.0.0.1:9901" }, true],
    [{ Host: "127.0.0.1:9900", Origin: "null" }, true],
    [{ Host: "h:9900", "Sec-Fetch-Site": "cross-site" }, true],
    [{ Host: "h:9900", "Sec-Fetch-Site": "same-site" }, true],
    [
      { Host: "127.0.0.1:9900", Origin: "http://127.0.0.1:9900", "Sec-Fetch-Site": "cross-site" },
      true,
    ],
    // DNS rebinding: a page on a name the attacker points at this host; Origin and Host agree.
    [{ Host: "evil.example:9900", Origin: "http://evil.example:9900" }, true],
    [{ Host: "evil.example", Origin: "http://evil.example" }, true],
    [{ Host: "h:9900", Origin: "http://h:9900", "Sec-Fetch-Site": "same-origin" }, true],
    [{ Host: "localhost.evil.example", Origin: "http://localhost.evil.example" }, true],
    [{ Host: "127.0.0.1.evil.example", Origin: "http://127.0.0.1.evil.example" }, true],
  ];
  for (const [headers, want] of cases) {
    assert.equal(isCrossOrigin(new Headers(headers)), want, JSON.stringify(headers));
  }
});

Deno.test("createApp() answers a client that takes no gzip in plain text, with Vary", async () => {
  const { app } = await buildSampleApp();
  for (const accept of ["deflate", "gzip;q=0", "identity"]) {
    const res = await app.request("/metrics", { headers: { "Accept-Encoding": accept } });
    assert.equal(res.headers.get("Content-Encoding"), null, accept);
    assert.match(res.headers.get("Vary") ?? "", /Accept-Encoding/i);
    assert.ok((await res.text()).startsWith("# HELP "), accept);
  }
});

Deno.test("createApp() tells its heap release when a scrape and its rendering run", async () => {
  const events: string[] = [];
  const heapRelease = new IdleHeapRelease({
    quietMs: 1000,
    collect: () => events.push("collect"),
    heapBytes: () => 1,
    schedule: (run) => {
      events.push("scheduled");
      queueMicrotask(run);
      return () => events.push("cancelled");
    },
  });
  const { app } = await buildSampleApp({ heapRelease });
  const res = await app.request("/metrics", { headers: { "Accept-Encoding": "gzip" } });
  assert.equal(res.headers.get("Content-Encoding"), "gzip");
  await res.arrayBuffer();
  await waitFor(() => events.includes("collect"), { what: "the heap collected" });
  assert.deepEqual(events, ["scheduled", "collect"]);
});
