/**
 * main.ts with a web config, through real clients: TLS and basic auth with `curl` (a certificate
 * from `openssl`, hashes from `htpasswd`), reloads that keep the old config on error, a bad
 * config at start, the lifecycle flag and cross-origin reloads.
 */

import assert from "node:assert/strict";
import {
  fetchText,
  LOOPBACK_ANY_PORT,
  runMain,
  SAMPLE_ARGS,
  startExporter,
  waitFor,
} from "../support/exporter_process.ts";
import { bcryptHash, makeCert, onPath } from "../support/tls.ts";

const tools = onPath("openssl") && onPath("htpasswd") && onPath("curl");
if (!tools) console.log("web_security_test: TLS tests skipped: openssl, htpasswd or curl missing");

/** `curl` against the exporter; returns the status code and body. */
async function curl(url: string, args: string[]): Promise<{ status: number; body: string }> {
  const output = await new Deno.Command("curl", {
    args: ["-sS", "--max-time", "20", "-w", "\n%{http_code}", ...args, url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const cut = text.lastIndexOf("\n");
  return { status: Number(text.slice(cut + 1)), body: text.slice(0, cut) };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_websec_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function webYaml(users: Record<string, string>, tls = true): string {
  const lines = tls
    ? ["tls_server_config:", "  cert_file: server.crt", "  key_file: server.key"]
    : [];
  lines.push("basic_auth_users:", ...Object.entries(users).map(([u, h]) => `  ${u}: ${h}`));
  return `${lines.join("\n")}\n`;
}

Deno.test({
  name:
    "main.ts --web.config.file serves TLS and basic auth to curl on every endpoint, least privilege",
  ignore: !tools,
  async fn() {
    await withDir(async (dir) => {
      const { certFile } = await makeCert(dir);
      await Deno.writeTextFile(`${dir}/web.yml`, webYaml({ prom: await bcryptHash("s3cret") }));
      // Least privilege: read access to the sample tree and the web config's dir, nothing more.
      await using exporter = await startExporter([
        ...SAMPLE_ARGS,
        LOOPBACK_ANY_PORT,
        `--web.config.file=${dir}/web.yml`,
      ], { permissions: [`--allow-read=tests/fixtures/sample,${dir}`, "--allow-net=127.0.0.1"] });
      const base = `https://localhost:${exporter.port}`;
      const tls = ["--cacert", certFile];
      const ok = await curl(`${base}/metrics`, [...tls, "-u", "prom:s3cret"]);
      assert.equal(ok.status, 200, ok.body);
      assert.match(ok.body, /^kvm_stat_exits_count\{domain="global"\} \d+$/m);
      for (const path of ["/metrics", "/", "/-/healthy", "/-/ready", "/nope"]) {
        for (const auth of [[], ["-u", "prom:wrong"], ["-u", "other:s3cret"]]) {
          const refused = await curl(`${base}${path}`, [...tls, ...auth, "-D", "-"]);
          assert.equal(refused.status, 401, `${path} ${auth.join(" ")}`);
          assert.match(refused.body, /www-authenticate: Basic realm="kvm_exporter"/i);
        }
      }
      const post = await curl(`${base}/-/reload`, [...tls, "-X", "POST"]);
      assert.equal(post.status, 401, "reload needs auth too");
      // Plain HTTP on the TLS port gets no answer but a closed connection.
      const plain = await curl(`http://127.0.0.1:${exporter.port}/metrics`, []);
      assert.notEqual(plain.status, 200);
    });
  },
});

Deno.test({
  name: "main.ts reloads the web config on SIGHUP and on change, keeping the old one on error",
  ignore: !tools,
  async fn() {
    await withDir(async (dir) => {
      const { certFile } = await makeCert(dir);
      const [one, two] = [await bcryptHash("one"), await bcryptHash("two")];
      await Deno.writeTextFile(`${dir}/web.yml`, webYaml({ prom: one }));
      await using exporter = await startExporter([
        ...SAMPLE_ARGS,
        LOOPBACK_ANY_PORT,
        `--web.config.file=${dir}/web.yml`,
      ]);
      const base = `https://localhost:${exporter.port}`;
      const as = async (password: string, ca = certFile): Promise<number> =>
        (await curl(`${base}/-/healthy`, ["--cacert", ca, "-u", `prom:${password}`])).status;
      assert.equal(await as("one"), 200);

      // A broken file is refused with path:line:col; the old users stay.
      await Deno.writeTextFile(`${dir}/web.yml`, `${webYaml({ prom: one })}  bad: nohash\n`);
      Deno.kill(exporter.pid, "SIGHUP");
      await waitFor(() => exporter.stderrText().includes(`${dir}/web.yml:6:8: the password`), {
        what: "the refused reload in the log",
      });
      assert.equal(await as("one"), 200);

      // A good change is picked up by the watch, without a signal.
      await Deno.writeTextFile(`${dir}/web.yml`, webYaml({ prom: two }));
      await waitFor(async () => await as("two") === 200, {
        timeoutMs: 20_000,
        what: "the new password in force",
      });
      assert.equal(await as("one"), 401);

      // A new certificate takes effect on reload: the listener is re-opened with it.
      await Deno.copyFile(certFile, `${dir}/old.crt`);
      const fresh = await makeCert(dir, "fresh");
      await Deno.rename(fresh.certFile, `${dir}/server.crt`);
      await Deno.rename(fresh.keyFile, `${dir}/server.key`);
      await waitFor(async () => await as("two", `${dir}/server.crt`) === 200, {
        timeoutMs: 20_000,
        what: "the new certificate served",
      });
      assert.notEqual(await as("two", `${dir}/old.crt`), 200, "the old certificate is gone");
    });
  },
});

Deno.test("main.ts exits 1 at start with path:line:col for a bad web config", async () => {
  await withDir(async (dir) => {
    const cases: [string, string][] = [
      [
        "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS13\n",
        ':4:3: key "min_version" is not supported',
      ],
      ["basic_auth_users:\n  a: nohash\n", ':2:6: the password of "a" is not a bcrypt hash'],
      ["tls_server_config:\n  cert_file: missing.crt\n", ":2:14: cannot read cert_file"],
      ["headers: [\n", ":2:1: "],
    ];
    for (const [text, error] of cases) {
      await Deno.writeTextFile(`${dir}/web.yml`, text);
      const run = await runMain([
        ...SAMPLE_ARGS,
        LOOPBACK_ANY_PORT,
        `--web.config.file=${dir}/web.yml`,
      ]);
      assert.equal(run.code, 1, run.stderr);
      // logfmt escapes the quotes inside the err field.
      assert.ok(run.stderr.replaceAll('\\"', '"').includes(`${dir}/web.yml${error}`), run.stderr);
    }
    const missing = await runMain([
      ...SAMPLE_ARGS,
      LOOPBACK_ANY_PORT,
      `--web.config.file=${dir}/no.yml`,
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Cannot read web config .*no such file/);
  });
});

Deno.test("main.ts serves POST /-/reload only with --web.enable-lifecycle, and never cross-origin", async () => {
  {
    await using off = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
    const response = await fetchText(`${off.baseUrl}/-/reload`, { method: "POST" });
    assert.equal(response.status, 404);
    assert.equal(
      response.body,
      "Lifecycle API is not enabled: start with --web.enable-lifecycle\n",
    );
  }
  await using on = await startExporter([
    ...SAMPLE_ARGS,
    LOOPBACK_ANY_PORT,
    "--web.enable-lifecycle",
  ]);
  const reloads = (): number =>
    on.stderrText().split("\n").filter((l) => l.includes("POST /-/reload")).length;
  const host = new URL(on.baseUrl).host;
  const refused: Record<string, string>[] = [
    { Origin: "http://evil.example", "Content-Type": "text/plain" },
    { Origin: "null", "Content-Type": "text/plain" },
    { "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain" },
    { "Sec-Fetch-Site": "same-site", Origin: `http://${host}` },
  ];
  for (const headers of refused) {
    const response = await fetchText(`${on.baseUrl}/-/reload`, {
      method: "POST",
      headers,
      body: "x",
    });
    assert.equal(response.status, 403, JSON.stringify(headers));
  }
  // DNS rebinding: the page's name resolves to this host, so Origin and Host agree on it.
  const rebound = await curl(`${on.baseUrl}/-/reload`, [
    "-X",
    "POST",
    "-H",
    "Host: evil.example",
    "-H",
    "Origin: http://evil.example",
  ]);
  assert.equal(rebound.status, 403, rebound.body);
  // Paths a proxy in front blocking the literal /-/reload lets through; each reloaded before.
  for (const path of ["//x/-/reload", "/%2d/reload", "/a/../-/reload", "/%2e/-/reload"]) {
    const sneaked = await curl(`${on.baseUrl}${path}`, ["--path-as-is", "-X", "POST"]);
    assert.equal(sneaked.status, 400, `${path}: ${sneaked.body}`);
  }
  assert.equal(reloads(), 0, "no refused request reloaded");
  for (const headers of [{}, { Origin: `http://${host}`, "Sec-Fetch-Site": "same-origin" }]) {
    const response = await fetchText(`${on.baseUrl}/-/reload`, { method: "POST", headers });
    assert.equal(response.status, 200, JSON.stringify(headers));
  }
  assert.equal(reloads(), 2);
});

Deno.test("main.ts sends CSP, nosniff and DENY on the status page, and the web config's headers", async () => {
  {
    await using exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
    const page = await fetchText(`${exporter.baseUrl}/`);
    assert.match(page.headers.get("content-security-policy")!, /default-src 'none'/);
    assert.doesNotMatch(page.headers.get("content-security-policy")!, /script-src/);
    assert.equal(page.headers.get("x-content-type-options"), "nosniff");
    assert.equal(page.headers.get("x-frame-options"), "DENY");
  }
  await withDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/web.yml`,
      "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n    Strict-Transport-Security: max-age=60\n",
    );
    await using exporter = await startExporter([
      ...SAMPLE_ARGS,
      LOOPBACK_ANY_PORT,
      `--web.config.file=${dir}/web.yml`,
    ]);
    const page = await fetchText(`${exporter.baseUrl}/metrics`);
    assert.equal(page.headers.get("x-frame-options"), "sameorigin");
    assert.equal(page.headers.get("strict-transport-security"), "max-age=60");
    // The server's own answer to an unparsable Host: the same headers, the Host not echoed.
    const badHost = await curl(`${exporter.baseUrl}/`, ["-i", "-H", "Host: [::1"]);
    assert.equal(badHost.status, 400, badHost.body);
    assert.match(badHost.body, /\r\nX-Frame-Options: sameorigin\r\n/i);
    assert.match(badHost.body, /\r\nStrict-Transport-Security: max-age=60\r\n/i);
    assert.match(badHost.body, /\r\nX-Content-Type-Options: nosniff\r\n/i);
    assert.ok(!badHost.body.includes("[::1"), badHost.body);
  });
});

Deno.test("main.ts refuses paths a proxy would route otherwise, and serves metrics as sent", async () => {
  await using exporter = await startExporter([...SAMPLE_ARGS, LOOPBACK_ANY_PORT]);
  for (const path of ["//evil/metrics", "/%6detrics", "/./metrics", "/x/../metrics"]) {
    const response = await curl(`${exporter.baseUrl}${path}`, ["--path-as-is"]);
    assert.equal(response.status, 400, `${path}: ${response.body}`);
    assert.doesNotMatch(response.body, /# TYPE/, path);
  }
  const metrics = await curl(`${exporter.baseUrl}/metrics?collect%5B%5D=x&y=..%2F`, []);
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /# TYPE /);
  // Methods are case-sensitive: "head" is unknown, answered 501 with a body saying so.
  const lower = await curl(`${exporter.baseUrl}/metrics`, ["-X", "head"]);
  assert.equal(lower.status, 501, lower.body);
  assert.match(lower.body, /GET, HEAD, POST/);
});
