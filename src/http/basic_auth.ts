/**
 * HTTP basic auth against bcrypt hashes, with a short cache of successful verifications so that
 * a scrape storm costs one bcrypt per user and minute, not one per request. A bcrypt costs tens
 * of milliseconds of CPU on the event loop, so at most a few run at once (more are answered
 * "busy", never queued), and a recent failure is remembered so that a client repeating a wrong
 * password is not hashed again.
 *
 * @module
 */

import bcrypt from "bcryptjs";
import { createHash, timingSafeEqual } from "node:crypto";

/** Options of {@linkcode BasicAuth}. */
export interface BasicAuthOptions {
  /** How long a successful verification is remembered. Default 60 000 ms. */
  ttlMs?: number;
  /** Most verifications remembered, successes and failures each. Default 1 024. */
  maxEntries?: number;
  /** How long a failed verification is remembered. Default 10 000 ms. */
  failureTtlMs?: number;
  /** bcrypt verifications run at once; past this a check answers "busy". Default 2. */
  maxConcurrent?: number;
  /** Clock in ms, for tests. */
  now?: () => number;
}

/**
 * A hash of nothing anyone sends, at a chosen cost: hashing a password against it costs the
 * same as against a user's hash of that cost, and never matches.
 */
function dummyHash(cost: number): string {
  const twoDigits = String(cost).padStart(2, "0");
  return `$2y$${twoDigits}$Q1/j1OWD8KI1ZRnVQx4bc.8FqAhkftSWlOM9Me4FN9qs3GYmtLSRq`;
}

/** The cost of a bcrypt hash (`$2y$12$...` is 12); 10 when the hash does not say. */
function costOf(hash: string): number {
  return Number(/^\$2[aby]\$(\d\d)\$/.exec(hash)?.[1] ?? 10);
}

/**
 * What a check decided: let the request in, refuse it (401), or refuse it for now because
 * enough bcrypt verifications are running already (503).
 */
export type AuthOutcome = "allowed" | "denied" | "busy";

/** Verifies `Authorization: Basic` headers against one set of users. */
export class BasicAuth {
  #users: Map<string, string>;
  #ttlMs: number;
  #failureTtlMs: number;
  #maxEntries: number;
  #maxConcurrent: number;
  #now: () => number;
  /** SHA-256 of user, password and hash → expiry time, for successes and for failures. */
  #verified = new Map<string, number>();
  #failed = new Map<string, number>();
  #hashing = 0;
  /** The highest cost among the users' hashes: what every failed check costs. */
  #maxCost: number;

  /**
   * Creates a verifier; make a new one when the users change, which empties the cache.
   *
   * @param users User names and their bcrypt hashes.
   * @param options Cache bounds and clock.
   */
  constructor(users: Map<string, string>, options: BasicAuthOptions = {}) {
    this.#users = users;
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#failureTtlMs = options.failureTtlMs ?? 10_000;
    this.#maxEntries = options.maxEntries ?? 1_024;
    this.#maxConcurrent = options.maxConcurrent ?? 2;
    this.#now = options.now ?? Date.now;
    this.#maxCost = Math.max(4, ...[...users.values()].map(costOf));
  }

  /** Whether any user is configured (else every request passes). */
  get enabled(): boolean {
    return this.#users.size > 0;
  }

  /**
   * Checks an `Authorization` header.
   *
   * @example Usage
   * ```ts
   * import assert from "node:assert/strict";
   * import { BasicAuth } from "./basic_auth.ts";
   * const auth = new BasicAuth(new Map());
   * assert.equal(await auth.check(null), "allowed"); // no users: no auth
   * ```
   *
   * @param header The header's value, or null.
   * @returns Whether the request may pass, or "busy" when it would need a bcrypt verification
   *   while `maxConcurrent` are running.
   */
  async check(header: string | null): Promise<AuthOutcome> {
    if (!this.enabled) return "allowed";
    const credentials = parseBasic(header);
    if (credentials === undefined) return "denied";
    const hash = this.#hashOf(credentials.user);
    const key = cacheKey(credentials.user, credentials.password, hash ?? "");
    const now = this.#now();
    if (hash !== undefined && (this.#verified.get(key) ?? 0) > now) return "allowed";
    if ((this.#failed.get(key) ?? 0) > now) return "denied";
    if (this.#hashing >= this.#maxConcurrent) return "busy";
    this.#hashing++;
    let ok: boolean;
    try {
      ok = await this.#verify(credentials.password, hash);
    } finally {
      this.#hashing--;
    }
    if (!ok) {
      this.#remember(this.#failed, key, now + this.#failureTtlMs);
      return "denied";
    }
    this.#remember(this.#verified, key, now + this.#ttlMs);
    return "allowed";
  }

  /**
   * Whether the password matches the hash. A failure costs 2^maxCost bcrypt rounds whoever the
   * user: an unknown one is hashed at the highest cost, a cheaper user's wrong password is
   * padded with dummy hashes of costs c, c+1, ..., max-1 (2^c + 2^c + ... + 2^(max-1) = 2^max),
   * so timing tells neither which names exist nor which hash is cheap.
   */
  async #verify(password: string, hash: string | undefined): Promise<boolean> {
    if (hash === undefined) {
      await bcrypt.compare(password, dummyHash(this.#maxCost));
      return false;
    }
    if (await bcrypt.compare(password, hash)) return true;
    for (let cost = costOf(hash); cost < this.#maxCost; cost++) {
      await bcrypt.compare(password, dummyHash(cost));
    }
    return false;
  }

  /** The user's hash, comparing names in constant time over every user. */
  #hashOf(user: string): string | undefined {
    const wanted = digest(user);
    let found: string | undefined;
    for (const [name, hash] of this.#users) {
      if (timingSafeEqual(digest(name), wanted)) found = hash;
    }
    return found;
  }

  #remember(cache: Map<string, number>, key: string, expiry: number): void {
    if (cache.size >= this.#maxEntries) {
      const now = this.#now();
      for (const [k, until] of cache) {
        if (until <= now) cache.delete(k);
      }
      // Still full: forget the oldest (Map keeps insertion order).
      if (cache.size >= this.#maxEntries) cache.delete(cache.keys().next().value!);
    }
    cache.delete(key);
    cache.set(key, expiry);
  }
}

/** Longest `Authorization` header parsed; longer ones are refused unread (401). */
export const MAX_AUTHORIZATION_LENGTH = 4_096;

/**
 * Splits an `Authorization: Basic` header into user and password.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBasic } from "./basic_auth.ts";
 * assert.deepEqual(parseBasic(`Basic ${btoa("alice:s:ecret")}`), { user: "alice", password: "s:ecret" });
 * ```
 *
 * @param header The header's value, or null.
 * @returns The credentials, or undefined when the header is missing, malformed or longer than
 *   {@linkcode MAX_AUTHORIZATION_LENGTH}.
 */
export function parseBasic(header: string | null): { user: string; password: string } | undefined {
  // Capped before matching, and the pattern is linear: the header is the client's to choose.
  if (header === null || header.length > MAX_AUTHORIZATION_LENGTH) return undefined;
  const match = /^Basic +([A-Za-z0-9+/]*={0,2})$/i.exec(header);
  if (match === null || match[1] === undefined) return undefined;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(atob(match[1]), (c) => c.charCodeAt(0)),
    );
  } catch {
    return undefined;
  }
  const colon = text.indexOf(":");
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

function cacheKey(user: string, password: string, hash: string): string {
  return createHash("sha256").update(`${user}\0${password}\0${hash}`).digest("hex");
}
