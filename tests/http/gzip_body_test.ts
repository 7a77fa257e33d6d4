import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { acceptsGzip, gzipBody } from "../../src/http/gzip_body.ts";

Deno.test("acceptsGzip() follows the header's codings and q-values", async (t) => {
  const cases: [string | undefined, boolean][] = [
    [undefined, false],
    ["", false],
    ["gzip", true],
    ["GZIP", true],
    ["deflate, gzip;q=0.5", true],
    ["gzip;q=0", false],
    ["gzip; q=0.000", false],
    ["deflate", false],
    ["identity", false],
    ["*", true],
    ["*;q=0", false],
    ["gzip;q=0, *", false],
    ["*, gzip;q=0", false],
    ["br, *;q=0.1", true],
    ["x-gzip", false],
  ];
  for (const [header, want] of cases) {
    await t.step(String(header), () => assert.equal(acceptsGzip(header), want));
  }
});

Deno.test("gzipBody() makes one gzip member of the bytes, at its level", async () => {
  const text = new TextEncoder().encode('kvm_stat_exits_count{domain="a"} 1\n'.repeat(10_000));
  const zipped = await gzipBody(text);
  assert.deepEqual([...zipped.slice(0, 2)], [0x1f, 0x8b]);
  assert.ok(zipped.length < text.length / 20);
  assert.deepEqual(new Uint8Array(gunzipSync(zipped)), text);
});
