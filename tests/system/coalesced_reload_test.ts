import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { CoalescedReload } from "../../src/system/coalesced_reload.ts";

/** A load that records its reasons and ends when the test says, with its own number. */
function gatedLoad(): {
  load: (reason: string) => Promise<number>;
  reasons: string[];
  finish: () => void;
} {
  const reasons: string[] = [];
  const gates: (() => void)[] = [];
  const load = (reason: string): Promise<number> => {
    reasons.push(reason);
    const n = reasons.length;
    return new Promise((resolve) => gates.push(() => resolve(n)));
  };
  const finish = (): void => gates.shift()?.();
  return { load, reasons, finish };
}

Deno.test("CoalescedReload.request() costs at most 2 loads per burst, callers share the covering outcome", async (t) => {
  const cases: { burst: number; loads: number; outcomes: number[] }[] = [
    { burst: 1, loads: 1, outcomes: [1] },
    { burst: 2, loads: 2, outcomes: [1, 2] },
    { burst: 3, loads: 2, outcomes: [1, 2, 2] },
    { burst: 100, loads: 2, outcomes: [1, ...Array<number>(99).fill(2)] },
  ];
  for (const { burst, loads, outcomes } of cases) {
    await t.step(`${burst} requests in a row`, async () => {
      const { load, reasons, finish } = gatedLoad();
      const reload = new CoalescedReload(load);
      const all = Promise.all(Array.from({ length: burst }, (_, i) => reload.request(`r${i}`)));
      for (let i = 0; i < loads; i++) {
        finish();
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      deepStrictEqual(await all, outcomes);
      deepStrictEqual(
        reasons,
        ["r0", "r1"].slice(0, loads),
        "the first request of a load names it",
      );
    });
  }
});

Deno.test("CoalescedReload.request() runs a load of its own once idle", async () => {
  const reload = new CoalescedReload((reason) => Promise.resolve(reason));
  strictEqual(await reload.request("a"), "a");
  strictEqual(await reload.request("b"), "b");
});

Deno.test("CoalescedReload.request() shares a rejection and still runs the waiting load", async () => {
  let loads = 0;
  const reload = new CoalescedReload((_reason) => {
    loads++;
    return loads === 1 ? Promise.reject(new Error("bad")) : Promise.resolve(loads);
  });
  const first = reload.request("a");
  const second = reload.request("b");
  const third = reload.request("c");
  const [a, b, c] = await Promise.allSettled([first, second, third]);
  strictEqual(a?.status, "rejected");
  deepStrictEqual([b, c], [{ status: "fulfilled", value: 2 }, { status: "fulfilled", value: 2 }]);
  strictEqual(loads, 2);
});
