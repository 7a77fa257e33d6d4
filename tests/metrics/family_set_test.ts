import assert from "node:assert/strict";
import { FamilySet, type Labels } from "../../src/metrics/model.ts";

const A = { name: "a", help: "A.", type: "gauge" } as const;
const B = { name: "b", help: "B.", type: "gauge" } as const;

Deno.test("FamilySet.add() keeps the first sample of each series, by label content", async (t) => {
  const vm: Labels = [["domain", "web"]];
  const many: Labels[] = Array.from({ length: 100 }, (_, i) => [["domain", `vm${i}`]]);
  const cases: {
    name: string;
    adds: (readonly [typeof A | typeof B, Labels, number])[];
    added: boolean[];
    families: Record<string, number[]>;
  }[] = [
    {
      name: "one label set twice: the first wins",
      adds: [[A, vm, 1], [A, vm, 2]],
      added: [true, false],
      families: { a: [1] },
    },
    {
      name: "equal label sets in two objects are one series",
      adds: [[A, [["domain", "web"]], 1], [A, [["domain", "web"]], 2]],
      added: [true, false],
      families: { a: [1] },
    },
    {
      name: "one label set in two families",
      adds: [[A, vm, 1], [B, vm, 2]],
      added: [true, true],
      families: { a: [1], b: [2] },
    },
    {
      name: "label sets that differ in a name, a value or the order",
      adds: [
        [A, [["domain", "web"], ["vcpu", "0"]], 1],
        [A, [["domain", "web"], ["vcpu", "1"]], 2],
        [A, [["vcpu", "0"], ["domain", "web"]], 3],
        [A, [["domain", "web\u00000"]], 4],
        [A, [], 5],
        [A, [], 6],
      ],
      added: [true, true, true, true, true, false],
      families: { a: [1, 2, 3, 4, 5] },
    },
    {
      // Past the first bytes of a family's series: each one once, then each a duplicate.
      name: "a hundred label sets, added twice",
      adds: [...many.map((l, i) => [B, l, i] as const), ...many.map((l) => [B, l, -1] as const)],
      added: [...many.map(() => true), ...many.map(() => false)],
      families: { b: many.map((_, i) => i) },
    },
    {
      name: "a family whose first label set has a late id",
      adds: [...many.map((l, i) => [A, l, i] as const), [B, many[99]!, 7], [B, many[0]!, 8]],
      added: [...many.map(() => true), true, true],
      families: { a: many.map((_, i) => i), b: [7, 8] },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const set = new FamilySet();
      assert.deepEqual(
        c.adds.map(([meta, labels, value]) => set.add(meta, labels, value)),
        c.added,
      );
      assert.deepEqual(
        Object.fromEntries(set.families().map((f) => [f.name, f.samples.map((s) => s.value)])),
        c.families,
      );
    });
  }
});
