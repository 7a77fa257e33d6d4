/** Basic auth: header parsing, bcrypt verification, the cache and its bounds. */

import assert from "node:assert/strict";
import fc from "fast-check";
import { BasicAuth, MAX_AUTHORIZATION_LENGTH, parseBasic } from "../../src/http/basic_auth.ts";
import { propertyParams } from "../support/property.ts";

// htpasswd -nbBC 10 user secret
const HASH = "$2y$10$9rBQ97XfkulR16ekCmwDZ.U1SHp6JuT.VnHfvSk9ZyQvC19gDaa7C";

function basic(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

Deno.test("parseBasic() splits at the first colon and refuses malformed headers", () => {
  const cases: [string | null, { user: string; password: string } | undefined][] = [
    [basic("alice", "a:b"), { user: "alice", password: "a:b" }],
    [basic("", ""), { user: "", password: "" }],
    [basic("zoë", "pässword"), { user: "zoë", password: "pässword" }],
    [`basic ${btoa("a:b")}`, { user: "a", password: "b" }],
    [null, undefined],
    ["Bearer abc", undefined],
    [`Basic ${btoa("nocolon")}`, undefined],
    ["Basic !!!", undefined],
    [`Basic ${btoa("\xff:x")}`, undefined],
  ];
  for (const [header, want] of cases) assert.deepEqual(parseBasic(header), want, String(header));
});

Deno.test("BasicAuth.verify() lets everyone in without users", async () => {
  assert.equal(await new BasicAuth(new Map()).verify(null), true);
});

Deno.test("BasicAuth.verify() checks bcrypt hashes of each user ($2y$, $2b$, $2a$)", async () => {
  const auth = new BasicAuth(
    new Map([["alice", HASH], ["bob", HASH.replace("$2y$", "$2b$")], [
      "eve",
      HASH.replace("$2y$", "$2a$"),
    ]]),
  );
  for (const user of ["alice", "bob", "eve"]) {
    assert.equal(await auth.verify(basic(user, "secret")), true, user);
  }
  assert.equal(await auth.verify(basic("alice", "wrong")), false);
  assert.equal(await auth.verify(basic("mallory", "secret")), false);
  assert.equal(await auth.verify(null), false);
  assert.equal(await auth.verify("Basic"), false);
});

Deno.test("BasicAuth.verify() remembers a success until its TTL, and only that success", async () => {
  let now = 0;
  const auth = new BasicAuth(new Map([["alice", HASH]]), { ttlMs: 1000, now: () => now });
  assert.equal(await auth.verify(basic("alice", "secret")), true);
  // Cached: a run of verifications costs far less than one bcrypt each. Compared in one run.
  const t0 = performance.now();
  for (let i = 0; i < 50; i++) await auth.verify(basic("alice", "secret"));
  const cached = performance.now() - t0;
  now = 2000;
  const t1 = performance.now();
  assert.equal(await auth.verify(basic("alice", "secret")), true);
  const uncached = performance.now() - t1;
  assert.ok(cached < uncached * 10, `50 cached ${cached} ms vs one bcrypt ${uncached} ms`);
  assert.equal(
    await auth.verify(basic("alice", "secreT")),
    false,
    "a cache hit needs the password",
  );
});

Deno.test("parseBasic() returns on headers that made the old pattern backtrack exponentially", () => {
  // /^Basic +([A-Za-z0-9+/]+=*)*$/ tried 2^40 splits of these before failing on the "!".
  const cases = [
    `Basic ${"A".repeat(40)}!`,
    `Basic ${"A".repeat(MAX_AUTHORIZATION_LENGTH - 7)}!`,
    `Basic ${"A".repeat(100_000)}!`,
    `Basic ${"A".repeat(100_000)}`,
    `Basic ${"=".repeat(100_000)}`,
  ];
  for (const header of cases) assert.equal(parseBasic(header), undefined, header.slice(0, 20));
});

Deno.test("parseBasic() refuses a header longer than the cap unread, valid or not", () => {
  const long = basic("alice", "x".repeat(MAX_AUTHORIZATION_LENGTH));
  assert.ok(long.length > MAX_AUTHORIZATION_LENGTH);
  assert.equal(parseBasic(long), undefined);
  const fits = basic("alice", "x".repeat(MAX_AUTHORIZATION_LENGTH / 2));
  assert.deepEqual(parseBasic(fits), { user: "alice", password: "x".repeat(2_048) });
});

Deno.test("BasicAuth.verify() answers false to a 100k-character header", async () => {
  const auth = new BasicAuth(new Map([["alice", HASH]]));
  assert.equal(await auth.verify(`Basic ${"A".repeat(100_000)}!`), false);
});

Deno.test("parseBasic() never throws and accepts only Basic headers (random strings)", () => {
  const header = fc.oneof(
    fc.string({ unit: "binary", maxLength: 300 }),
    fc.string({ unit: "binary-ascii", maxLength: 300 }).map((s) => `Basic ${s}`),
    fc.stringMatching(/^[A-Za-z0-9+/=!]{0,300}$/).map((s) => `Basic ${s}`),
  );
  fc.assert(
    fc.property(header, (text) => {
      const credentials = parseBasic(text);
      if (credentials === undefined) return;
      assert.match(text, /^basic +[A-Za-z0-9+/]*={0,2}$/i);
      assert.ok(!credentials.user.includes(":"));
    }),
    propertyParams(500),
  );
});

Deno.test("parseBasic() round-trips random credentials, any scheme case and spacing", () => {
  const credentials = fc.record({
    user: fc.string({ unit: "grapheme", maxLength: 40 }).filter((u) => !u.includes(":")),
    password: fc.string({ unit: "grapheme", maxLength: 80 }),
    scheme: fc.constantFrom("Basic", "basic", "BASIC", "bAsIc"),
    spaces: fc.integer({ min: 1, max: 3 }),
  });
  fc.assert(
    fc.property(credentials, ({ user, password, scheme, spaces }) => {
      const header = basic(user, password).replace(/^Basic /, `${scheme}${" ".repeat(spaces)}`);
      assert.deepEqual(parseBasic(header), { user, password });
    }),
    propertyParams(500),
  );
});
