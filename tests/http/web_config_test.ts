/**
 * The web config parser: good files, and a table of bad ones, each refused at its
 * `path:line:col` naming the key.
 */

import assert from "node:assert/strict";
import { ConfigError } from "../../src/config/config_error.ts";
import { MAX_PEM_BYTES, parseWebConfig, readWebConfig } from "../../src/http/web_config.ts";
import { mkfifo, startSwapper, unblockFifo, within } from "../support/fifo.ts";
import { bcryptHash, makeCert, onPath } from "../support/tls.ts";

const HASH = "$2y$10$9rBQ97XfkulR16ekCmwDZ.U1SHp6JuT.VnHfvSk9ZyQvC19gDaa7C";
const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
const FILES: Record<string, string> = { "/etc/kvm/server.crt": CERT, "/etc/kvm/server.key": KEY };

function parse(text: string): ReturnType<typeof parseWebConfig> {
  return parseWebConfig(text, {
    path: "/etc/kvm/web.yml",
    readFile: (file) => {
      const text = FILES[file];
      return text === undefined
        ? Promise.reject(new Deno.errors.NotFound(`No such file: ${file}`))
        : Promise.resolve(text);
    },
  });
}

Deno.test("parseWebConfig() reads TLS files relative to the config, users and headers", async () => {
  const config = await parse(
    [
      "tls_server_config:",
      "  cert_file: server.crt",
      "  key_file: /etc/kvm/server.key",
      "  client_auth_type: NoClientCert",
      "basic_auth_users:",
      `  alice: ${HASH}`,
      `  bob: '${HASH.replace("$2y$", "$2b$")}'`,
      "http_server_config:",
      "  http2: false",
      "  headers:",
      "    Strict-Transport-Security: max-age=31536000",
      "    X-Frame-Options: sameorigin",
      "",
    ].join("\n"),
  );
  assert.deepEqual(config.tls, {
    cert: CERT,
    key: KEY,
    files: ["/etc/kvm/server.crt", "/etc/kvm/server.key"],
  });
  assert.deepEqual([...config.users.keys()], ["alice", "bob"]);
  assert.deepEqual(config.headers, [
    ["Strict-Transport-Security", "max-age=31536000"],
    ["X-Frame-Options", "sameorigin"],
  ]);
});

Deno.test("parseWebConfig() takes inline cert and key, and an empty file", async () => {
  const inline = await parse(
    `tls_server_config:\n  cert: |\n${indent(CERT)}\n  key: |\n${indent(KEY)}\n`,
  );
  assert.equal(inline.tls?.cert, CERT);
  assert.deepEqual(inline.tls?.files, []);
  const empty = await parse("# nothing\n");
  assert.equal(empty.tls, undefined);
  assert.equal(empty.users.size, 0);
});

function indent(text: string): string {
  return text.trimEnd().split("\n").map((line) => `    ${line}`).join("\n");
}

/** A bad file and the start of the one-line error it must give. */
const BAD: { text: string; error: string }[] = [
  { text: "tls_server_config: [\n", error: "/etc/kvm/web.yml:2:1: " },
  { text: "basic_auth_users:\n  alice: plain\n", error: "/etc/kvm/web.yml:2:10: the password" },
  {
    text: "basic_auth_users:\n  alice: $2x$10$abc\n",
    error: '/etc/kvm/web.yml:2:10: the password of "alice" is not a bcrypt hash',
  },
  { text: "basic_auth_users:\n  alice: 12\n", error: "/etc/kvm/web.yml:2:10: the password hash" },
  { text: `basic_auth_users:\n  "a:b": ${HASH}\n`, error: "/etc/kvm/web.yml:2:3: user name" },
  { text: "bogus: 1\n", error: '/etc/kvm/web.yml:1:1: unknown key "bogus"' },
  { text: "rate_limit:\n  burst: 2\n", error: '/etc/kvm/web.yml:1:1: key "rate_limit"' },
  {
    text: "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
    error: '/etc/kvm/web.yml:2:14: cannot read cert_file "/etc/kvm/missing.crt": no such file',
  },
  {
    text: "tls_server_config:\n  cert_file: server.crt\n",
    error: "/etc/kvm/web.yml:2:3: tls_server_config needs a certificate and a key",
  },
  {
    text: `tls_server_config:\n  cert: "x"\n  key_file: server.key\n`,
    error: "/etc/kvm/web.yml:2:3: the certificate is not PEM",
  },
  {
    text: `tls_server_config:\n  cert: "x"\n  cert_file: server.crt\n  key_file: server.key\n`,
    error: "/etc/kvm/web.yml:3:3: cert_file and cert are both set",
  },
  {
    text: "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n",
    error: '/etc/kvm/web.yml:2:21: client_auth_type "RequireAndVerifyClientCert" is not supported',
  },
  ...[
    "client_ca_file: ca.crt",
    "client_ca: x",
    "cipher_suites: [TLS_AES_128_GCM_SHA256]",
    "min_version: TLS13",
    "max_version: TLS12",
    "curve_preferences: [X25519]",
    "prefer_server_cipher_suites: true",
    "client_allowed_sans: [a]",
  ].map((line) => ({
    text: `tls_server_config:\n  cert_file: missing.crt\n  ${line}\n`,
    error: `/etc/kvm/web.yml:3:3: key "${line.split(":")[0]}" is not supported: Deno's TLS server`,
  })),
  { text: "tls_server_config:\n  bogus: 1\n", error: '/etc/kvm/web.yml:2:3: unknown key "bogus"' },
  {
    text: "http_server_config:\n  http2: true\n",
    error: "/etc/kvm/web.yml:2:10: http2 is not supported",
  },
  {
    text: "http_server_config:\n  headers:\n    Content-Type: text/html\n",
    error: '/etc/kvm/web.yml:3:5: header "Content-Type" cannot be set',
  },
  {
    text: "http_server_config:\n  headers:\n    Authorization: x\n",
    error: '/etc/kvm/web.yml:3:5: header "Authorization" cannot be set',
  },
  {
    text: "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
    error: "/etc/kvm/web.yml:3:22: header X-Frame-Options must be one of deny, sameorigin",
  },
  {
    text: "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
    error: "/etc/kvm/web.yml:3:29: header X-Content-Type-Options must be one of nosniff",
  },
  { text: "http_server_config:\n  bogus: 1\n", error: '/etc/kvm/web.yml:2:3: unknown key "bogus"' },
  { text: "basic_auth_users: [a]\n", error: "/etc/kvm/web.yml:1:19: basic_auth_users must be" },
  { text: "- a\n", error: "/etc/kvm/web.yml:1:1: the web config must be a mapping" },
];

for (const { text, error } of BAD) {
  Deno.test(`parseWebConfig() refuses ${JSON.stringify(text)}`, async () => {
    const rejection = await parse(text).then(() => undefined, (e: unknown) => e);
    assert.ok(rejection instanceof ConfigError, `not refused: ${String(rejection)}`);
    assert.ok(rejection.message.startsWith(error), rejection.message);
    assert.ok(!rejection.message.includes("\n"), "one line");
  });
}

const tools = onPath("openssl") && onPath("htpasswd");
Deno.test({
  name: "readWebConfig() reads a real openssl certificate and an htpasswd hash",
  ignore: !tools,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_webcfg_" });
    try {
      await makeCert(dir);
      const hash = await bcryptHash("secret");
      await Deno.writeTextFile(
        `${dir}/web.yml`,
        `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prom: ${hash}\n`,
      );
      const config = await readWebConfig(`${dir}/web.yml`);
      assert.match(config.tls!.cert, /BEGIN CERTIFICATE/);
      assert.equal(config.users.get("prom"), hash);
      await Deno.remove(`${dir}/server.key`);
      await assert.rejects(
        readWebConfig(`${dir}/web.yml`),
        (e: Error) => e.message.startsWith(`${dir}/web.yml:3:13: cannot read key_file`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
if (!tools) console.log("web_config_test: real certificate test skipped: no openssl or htpasswd");

Deno.test("readWebConfig() refuses a FIFO, a device, a directory or a huge file as cert or key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_webcfg_" });
  try {
    await Deno.writeTextFile(`${dir}/server.crt`, CERT);
    await Deno.writeTextFile(`${dir}/server.key`, KEY);
    // Opening the FIFO would block until a writer comes: the read must not even open it.
    await mkfifo(`${dir}/fifo`);
    await Deno.writeTextFile(`${dir}/huge.pem`, `${CERT}${"A".repeat(MAX_PEM_BYTES)}`);
    await Deno.mkdir(`${dir}/dir.pem`);
    const cases: [string, string, string][] = [
      ["cert_file", `${dir}/fifo`, "not a regular file (a FIFO)"],
      ["key_file", "/dev/zero", "not a regular file (a character device)"],
      ["cert_file", `${dir}/dir.pem`, "not a regular file (a directory)"],
      ["cert_file", `${dir}/huge.pem`, `larger than ${MAX_PEM_BYTES} bytes`],
    ];
    for (const [key, file, reason] of cases) {
      const other = key === "cert_file" ? "key_file: server.key" : "cert_file: server.crt";
      await Deno.writeTextFile(
        `${dir}/web.yml`,
        `tls_server_config:\n  ${other}\n  ${key}: ${file}\n`,
      );
      const rejection = await readWebConfig(`${dir}/web.yml`).then(() => undefined, (e) => e);
      assert.ok(rejection instanceof ConfigError, `${file}: not refused: ${String(rejection)}`);
      const column = key.length + 5;
      assert.equal(
        rejection.message,
        `${dir}/web.yml:3:${column}: cannot read ${key} ${JSON.stringify(file)}: ${reason}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readWebConfig() refuses a FIFO or a device as the config file itself", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_webcfg_" });
  try {
    await mkfifo(`${dir}/web.yml`);
    for (const [path, reason] of [[`${dir}/web.yml`, "a FIFO"], ["/dev/zero", "a character"]]) {
      await assert.rejects(
        readWebConfig(path!),
        (e: Error) =>
          e.message.startsWith(`Cannot read web config ${JSON.stringify(path)}`) &&
          e.message.includes(reason!),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readWebConfig() settles on every read while a FIFO swaps in and out of it and its cert", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_webswap_" });
  const fifo = `${dir}/swap.fifo`;
  const outcomes = new Map<string, number>();
  try {
    await Deno.writeTextFile(`${dir}/good.crt`, CERT);
    await Deno.writeTextFile(`${dir}/server.key`, KEY);
    await Deno.writeTextFile(
      `${dir}/good.yml`,
      "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    const targets = [
      { path: `${dir}/web.yml`, good: `${dir}/good.yml` },
      { path: `${dir}/server.crt`, good: `${dir}/good.crt` },
    ];
    for (const { path, good } of targets) await Deno.copyFile(good, path);
    await mkfifo(fifo);
    await using _swapper = startSwapper({ targets, fifo });
    // Checking a path's type and then opening it lost the race once in a few reads, and the
    // open of the FIFO then blocked for good.
    for (let i = 0; i < 400; i++) {
      const outcome = await within(
        readWebConfig(`${dir}/web.yml`).then(
          (config) => `loaded ${config.tls?.files.length} files`,
          (error: Error) => error.message,
        ),
        5_000,
      );
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (outcome === "timeout") break;
    }
    assert.deepEqual([...outcomes.keys()].sort(), [
      `${dir}/web.yml:2:14: cannot read cert_file "${dir}/server.crt": not a regular file (a FIFO)`,
      `Cannot read web config "${dir}/web.yml": not a regular file (a FIFO)`,
      "loaded 2 files",
    ], JSON.stringify([...outcomes]));
  } finally {
    // A read blocked opening the FIFO (the defect) gets its writer and returns.
    if (outcomes.has("timeout")) await unblockFifo(fifo);
    await Deno.remove(dir, { recursive: true });
  }
});
