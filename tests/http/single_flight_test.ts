/**
 * SingleFlight: callers of one key share one run while it is in flight, and only while.
 */

import assert from "node:assert/strict";
import { SingleFlight } from "../../src/http/single_flight.ts";

/** A run that settles when the test says. */
function gate<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => [resolve, reject] = [res, rej]);
  return { promise, resolve, reject };
}

Deno.test("SingleFlight.join() shares by key while in flight, starts anew once settled", async () => {
  const cases: { name: string; keys: string[]; starts: number }[] = [
    { name: "one key, three callers", keys: ["a", "a", "a"], starts: 1 },
    { name: "two keys", keys: ["a", "b", "a", "b"], starts: 2 },
    { name: "every key its own", keys: ["a", "b", "c"], starts: 3 },
  ];
  for (const { name, keys, starts } of cases) {
    const flights = new SingleFlight<string, string>();
    const runs: ReturnType<typeof gate<string>>[] = [];
    const joined = keys.map((key) =>
      flights.join(key, () => {
        const run = gate<string>();
        runs.push(run);
        return run.promise.then(() => `${key}${runs.length}`);
      })!
    );
    assert.equal(runs.length, starts, name);
    assert.equal(flights.size, starts, name);
    for (const run of runs) run.resolve("");
    const values = await Promise.all(joined);
    for (const [i, key] of keys.entries()) {
      assert.equal(values[i], values[keys.indexOf(key)], `${name}: same key, same value`);
    }
    assert.equal(flights.size, 0, `${name}: nothing in flight once settled`);
    let again = 0;
    await flights.join(keys[0]!, () => Promise.resolve(`${++again}`));
    assert.equal(again, 1, `${name}: a settled key starts anew`);
  }
});

Deno.test("SingleFlight.join() gives every joiner the rejection, then forgets it", async () => {
  const flights = new SingleFlight<number, number>();
  const run = gate<number>();
  const [a, b] = [flights.join(1, () => run.promise), flights.join(1, () => Promise.resolve(2))];
  run.reject(new Error("scrape failed"));
  await assert.rejects(a!, /scrape failed/);
  await assert.rejects(b!, /scrape failed/);
  assert.equal(flights.size, 0);
  assert.equal(await flights.join(1, () => Promise.resolve(3)), 3);
});

Deno.test("SingleFlight.join() returns undefined and holds nothing when start refuses", () => {
  const flights = new SingleFlight<string, number>();
  assert.equal(flights.join("k", () => undefined), undefined);
  assert.equal(flights.size, 0);
});
