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

Deno.test("BasicAuth.check() lets everyone in without users", async () => {
  assert.equal(await new BasicAuth(new Map()).check(null), "allowed");
});

Deno.test("BasicAuth.check() checks bcrypt hashes of each user ($2y$, $2b$, $2a$)", async () => {
  const auth = new BasicAuth(
    new Map([["alice", HASH], ["bob", HASH.replace("$2y$", "$2b$")], [
      "eve",
      HASH.replace("$2y$", "$2a$"),
    ]]),
  );
  for (const user of ["alice", "bob", "eve"]) {
    assert.equal(await auth.check(basic(user, "secret")), "allowed", user);
  }
  assert.equal(await auth.check(basic("alice", "wrong")), "denied");
  assert.equal(await auth.check(basic("mallory", "secret")), "denied");
  assert.equal(await auth.check(null), "denied");
  assert.equal(await auth.check("Basic"), "denied");
});

Deno.test("BasicAuth.check() remembers a success until its TTL, and only that success", async () => {
  let now = 0;
  const auth = new BasicAuth(new Map([["alice", HASH]]), { ttlMs: 1000, now: () => now });
  assert.equal(await auth.check(basic("alice", "secret")), "allowed");
  // Cached: a run of verifications costs far less than one bcrypt each. Compared in one run.
  const t0 = performance.now();
  for (let i = 0; i < 50; i++) await auth.check(basic("alice", "secret"));
  const cached = performance.now() - t0;
  now = 2000;
  const t1 = performance.now();
  assert.equal(await auth.check(basic("alice", "secret")), "allowed");
  const uncached = performance.now() - t1;
  assert.ok(cached < uncached * 10, `50 cached ${cached} ms vs one bcrypt ${uncached} ms`);
  assert.equal(
    await auth.check(basic("alice", "secreT")),
    "denied",
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

Deno.test("BasicAuth.check() denies a 100k-character header", async () => {
  const auth = new BasicAuth(new Map([["alice", HASH]]));
  assert.equal(await auth.check(`Basic ${"A".repeat(100_000)}!`), "denied");
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

Deno.test("BasicAuth.check() answers busy past maxConcurrent bcrypts, and lets cached users in", async () => {
  const auth = new BasicAuth(new Map([["alice", HASH]]), { maxConcurrent: 2 });
  assert.equal(await auth.check(basic("alice", "secret")), "allowed");
  // Both slots taken by wrong passwords being hashed; nothing queues behind them.
  const hashing = [auth.check(basic("alice", "wrong1")), auth.check(basic("alice", "wrong2"))];
  assert.equal(await auth.check(basic("alice", "wrong3")), "busy");
  assert.equal(await auth.check(basic("mallory", "x")), "busy");
  assert.equal(await auth.check(basic("alice", "secret")), "allowed", "cached: no bcrypt");
  assert.equal(await auth.check("Bearer x"), "denied", "malformed: no bcrypt");
  assert.deepEqual(await Promise.all(hashing), ["denied", "denied"]);
  assert.equal(await auth.check(basic("alice", "wrong3")), "denied", "slots free again");
});

Deno.test("BasicAuth.check() remembers a failure for failureTtlMs without hashing it again", async () => {
  let now = 0;
  const auth = new BasicAuth(new Map([["alice", HASH]]), {
    maxConcurrent: 1,
    failureTtlMs: 1_000,
    now: () => now,
  });
  assert.equal(await auth.check(basic("alice", "wrong")), "denied");
  assert.equal(await auth.check(basic("bob", "wrong")), "denied");
  // The only slot is taken: an answer other than "busy" proves no bcrypt ran.
  const hashing = auth.check(basic("alice", "other"));
  assert.equal(await auth.check(basic("alice", "wrong")), "denied");
  assert.equal(await auth.check(basic("bob", "wrong")), "denied", "unknown users too");
  now = 1_000;
  assert.equal(await auth.check(basic("alice", "wrong")), "busy", "expired: needs bcrypt");
  assert.equal(await hashing, "denied");
});

Deno.test("BasicAuth.check() keeps at most maxEntries failures", async () => {
  const auth = new BasicAuth(new Map([["alice", HASH.replace("$10$", "$04$")]]), {
    maxConcurrent: 1,
    maxEntries: 2,
  });
  for (const password of ["a", "b", "c"]) {
    assert.equal(await auth.check(basic("alice", password)), "denied");
  }
  const hashing = auth.check(basic("alice", "d"));
  assert.equal(await auth.check(basic("alice", "c")), "denied", "recent: remembered");
  assert.equal(await auth.check(basic("alice", "a")), "busy", "oldest: forgotten");
  await hashing;
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

Deno.test("BasicAuth.check() takes as long for an unknown user as for any user's wrong password", async () => {
  // htpasswd -nbBC 12 dear secret; htpasswd -nbBC 4 cheap secret
  const auth = new BasicAuth(
    new Map([
      ["dear", "$2y$12$VZGTekeM4tyf2j4TW4WlqO1S9JSMPj1VtHZ.w8VEKWoNedOG/SQSC"],
      ["cheap", "$2y$04$OcpEFkxq3dtVyNFHRmezWOqA4s9QwErNZIMuJzHEof52zlWsxjtxm"],
    ]),
    { maxConcurrent: 1 },
  );
  const classes = { unknown: "mallory", dear: "dear", cheap: "cheap" };
  const times: Record<string, number[]> = { unknown: [], dear: [], cheap: [] };
  // Interleaved, so a noisy spell on the shared machine falls on every class alike. A fresh
  // password each time: a remembered failure would not be hashed at all.
  for (let i = 0; i < 5; i++) {
    for (const [name, user] of Object.entries(classes)) {
      const start = performance.now();
      assert.equal(await auth.check(basic(user, `wrong${i}`)), "denied");
      times[name]!.push(performance.now() - start);
    }
  }
  const dear = median(times.dear!);
  // Before: the unknown user cost a cost-10 bcrypt (1/4 of dear's), cheap's wrong password 1/256.
  for (const name of ["unknown", "cheap"]) {
    const ratio = median(times[name]!) / dear;
    assert.ok(
      ratio > 0.5 && ratio < 2,
      `median ${name} / median dear = ${ratio.toFixed(2)} (${JSON.stringify(times)})`,
    );
  }
});
