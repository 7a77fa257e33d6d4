/** The web config store: reloads keep the old config on error and never pile up. */

import assert from "node:assert/strict";
import { WebConfigStore } from "../../src/http/web_config_store.ts";
import { createLogger } from "../../src/log/logger.ts";
import { waitFor } from "../support/exporter_process.ts";
import { mkfifo } from "../support/fifo.ts";

const HASH = "$2y$10$9rBQ97XfkulR16ekCmwDZ.U1SHp6JuT.VnHfvSk9ZyQvC19gDaa7C";

Deno.test("WebConfigStore.reload() keeps the config in force on error and coalesces bursts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_webstore_" });
  try {
    const path = `${dir}/web.yml`;
    await Deno.writeTextFile(path, `basic_auth_users:\n  a: ${HASH}\n`);
    const logs: string[] = [];
    const store = new WebConfigStore({
      path,
      logger: createLogger({ level: "debug", write: (line) => logs.push(line) }),
    });
    await store.loadInitial();
    assert.deepEqual([...store.config.users.keys()], ["a"]);

    await Deno.writeTextFile(path, "basic_auth_users:\n  a: plain\n");
    const error = await store.reload("test");
    assert.match(error?.message ?? "", new RegExp(`^${path}:2:6: the password of "a"`));
    assert.deepEqual([...store.config.users.keys()], ["a"], "the old users stay");

    await Deno.writeTextFile(path, `basic_auth_users:\n  b: ${HASH}\n`);
    const loadsBefore = logs.filter((l) => l.includes("Loaded the web config")).length;
    const results = await Promise.all(Array.from({ length: 100 }, () => store.reload("burst")));
    assert.ok(results.every((r) => r === undefined));
    const loads = logs.filter((l) => l.includes("Loaded the web config")).length - loadsBefore;
    assert.ok(loads >= 1 && loads <= 2, `100 reloads asked, ${loads} run`);
    assert.deepEqual([...store.config.users.keys()], ["b"]);
    assert.equal(store.auth.enabled, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WebConfigStore without a path serves the empty config: no TLS, no auth", async () => {
  const store = new WebConfigStore({ path: undefined, logger: createLogger({ write: () => {} }) });
  const config = await store.loadInitial();
  assert.equal(config.tls, undefined);
  assert.equal(store.auth.enabled, false);
  assert.equal(await store.reload("test"), undefined);
});

function pem(kind: string, body: string): string {
  return `-----BEGIN ${kind}-----\n${body}\n-----END ${kind}-----\n`;
}

/** Writes web.yml naming server.crt (body "old") and server.key in `dir`. */
async function writeTlsConfig(dir: string): Promise<void> {
  await Deno.writeTextFile(`${dir}/server.crt`, pem("CERTIFICATE", "old"));
  await Deno.writeTextFile(`${dir}/server.key`, pem("PRIVATE KEY", "key"));
  await Deno.writeTextFile(
    `${dir}/web.yml`,
    "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
  );
}

Deno.test("WebConfigStore.reload() refuses a FIFO as cert_file in one line, then loads a new cert", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_webstore_" });
  try {
    await writeTlsConfig(dir);
    const logs: string[] = [];
    const served: string[] = [];
    const store = new WebConfigStore({
      path: `${dir}/web.yml`,
      logger: createLogger({ level: "debug", write: (line) => logs.push(line) }),
      onTlsChange: (config) => void served.push(config.tls?.cert ?? ""),
    });
    await store.loadInitial();

    await mkfifo(`${dir}/new.fifo`);
    await Deno.rename(`${dir}/new.fifo`, `${dir}/server.crt`);
    const before = logs.length;
    const error = await store.reload("test");
    assert.equal(
      error?.message,
      `${dir}/web.yml:2:14: cannot read cert_file "${dir}/server.crt": not a regular file (a FIFO)`,
    );
    assert.equal(logs.length - before, 1, logs.slice(before).join(""));
    assert.match(logs.at(-1)!, /level=error msg="Cannot load the web config/);
    assert.equal(store.config.tls?.cert, pem("CERTIFICATE", "old"), "the old cert stays");

    await Deno.writeTextFile(`${dir}/new.crt`, pem("CERTIFICATE", "new"));
    await Deno.rename(`${dir}/new.crt`, `${dir}/server.crt`);
    assert.equal(await store.reload("test"), undefined);
    assert.deepEqual(served, [pem("CERTIFICATE", "new")]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WebConfigStore.reload() keeps the old config when the new TLS settings cannot be served", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_webstore_" });
  try {
    await writeTlsConfig(dir);
    const logs: string[] = [];
    const store = new WebConfigStore({
      path: `${dir}/web.yml`,
      logger: createLogger({ level: "debug", write: (line) => logs.push(line) }),
      onTlsChange: () => Promise.reject(new Error("cannot listen")),
    });
    await store.loadInitial();
    await Deno.writeTextFile(`${dir}/server.crt`, pem("CERTIFICATE", "new"));
    const before = logs.length;
    assert.equal((await store.reload("test"))?.message, "cannot listen");
    assert.equal(store.config.tls?.cert, pem("CERTIFICATE", "old"), "the old cert stays");
    assert.equal(logs.length - before, 1, logs.slice(before).join(""));
    assert.match(logs.at(-1)!, /level=error msg="Cannot serve the new TLS settings/);
    // A plain read error is logged as one.
    await Deno.writeTextFile(`${dir}/web.yml`, "bogus: 1\n");
    assert.ok(await store.reload("test") instanceof Error);
    assert.match(logs.at(-1)!, /level=error msg="Cannot load the web config/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WebConfigStore.watch() loads a change made before the watch was armed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvm_exporter_webstore_" });
  const controller = new AbortController();
  let watching: Promise<void> | undefined;
  try {
    const path = `${dir}/web.yml`;
    await Deno.writeTextFile(path, `basic_auth_users:\n  a: ${HASH}\n`);
    const store = new WebConfigStore({ path, logger: createLogger({ write: () => {} }) });
    await store.loadInitial();
    // Between the first load and the first watch (a busy machine makes this window long).
    await Deno.writeTextFile(path, `basic_auth_users:\n  b: ${HASH}\n`);
    watching = store.watch(controller.signal);
    await waitFor(() => store.config.users.has("b"), {
      timeoutMs: 10_000,
      what: "the early change to load",
    });
  } finally {
    controller.abort();
    await watching;
    await Deno.remove(dir, { recursive: true });
  }
});
