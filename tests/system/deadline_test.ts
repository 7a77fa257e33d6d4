import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { Deadline } from "../../src/system/deadline.ts";

const never = new Promise<never>(() => {});

Deno.test("Deadline.race() rejects with the deadline's error when the time is up or the signal aborts", async (t) => {
  const cases: {
    what: string;
    timeoutMs: number;
    abort?: "before" | "during";
    message: RegExp;
  }[] = [
    { what: "time up", timeoutMs: 5, message: /: time up$/ },
    { what: "aborted before", timeoutMs: 60_000, abort: "before", message: /: aborted: why$/ },
    { what: "aborted during", timeoutMs: 60_000, abort: "during", message: /: aborted: why$/ },
  ];
  for (const c of cases) {
    await t.step(c.what, async () => {
      const controller = new AbortController();
      if (c.abort === "before") controller.abort("why");
      const events: string[] = [];
      const deadline = new Deadline({
        timeoutMs: c.timeoutMs,
        timeoutError: () => new Error("time up"),
        signal: controller.signal,
        abortError: (reason) => new Error(`aborted: ${reason}`),
      });
      try {
        // A step that ends after the deadline hands its result over, e.g. a socket to close.
        const late = new Promise<string>((resolve) => setTimeout(() => resolve("late"), 30));
        const races = [
          deadline.race(never, { onExpire: () => events.push("expire") }),
          deadline.race(late, { onLateResult: (value) => events.push(value) }),
        ];
        if (c.abort === "during") setTimeout(() => controller.abort("why"), 5);
        for (const race of races) await rejects(race, c.message);
        ok(deadline.expired);
        deepStrictEqual(events, ["expire"]);
        await late;
        await Promise.resolve();
        deepStrictEqual(events, ["expire", "late"]);
      } finally {
        deadline.clear();
      }
    });
  }
});

Deno.test("Deadline.race() passes through what the work yields or throws, in time", async (t) => {
  const cases: { what: string; work: () => Promise<string>; expected: string | RegExp }[] = [
    { what: "a value", work: () => Promise.resolve("done"), expected: "done" },
    { what: "an error", work: () => Promise.reject(new Error("broken")), expected: /broken/ },
  ];
  for (const c of cases) {
    await t.step(c.what, async () => {
      const deadline = new Deadline({ timeoutMs: 60_000, timeoutError: () => new Error("late") });
      let expired = false;
      try {
        const race = deadline.race(c.work(), { onExpire: () => expired = true });
        if (typeof c.expected === "string") strictEqual(await race, c.expected);
        else await rejects(race, c.expected);
        strictEqual(expired, false);
        strictEqual(deadline.expired, false);
      } finally {
        deadline.clear();
      }
    });
  }
});
