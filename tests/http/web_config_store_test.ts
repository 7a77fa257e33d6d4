/** The web config store: reloads keep the old config on error and never pile up. */

import assert from "node:assert/strict";
import { WebConfigStore } from "../../src/http/web_config_store.ts";
import { createLogger } from "../../src/log/logger.ts";

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
