import { deepStrictEqual } from "node:assert/strict";
import { selfTimes } from "../../bench/profile.ts";

Deno.test("selfTimes() sums each sample's time into its function and module", () => {
  const frame = (functionName: string, url: string, lineNumber: number) => ({
    functionName,
    url,
    lineNumber,
  });
  const profile = {
    nodes: [
      { id: 1, callFrame: frame("(program)", "", -1) },
      { id: 2, callFrame: frame("run", "file:///x/src/system/limiter.ts", 40) },
      { id: 3, callFrame: frame("", "file:///x/src/system/limiter.ts", 50) },
    ],
    samples: [2, 2, 3, 1],
    timeDeltas: [1000, 3000, 500, 250],
  };
  deepStrictEqual(selfTimes(profile), {
    functions: [
      ["run (src/system/limiter.ts:41)", 4],
      ["(anonymous) (src/system/limiter.ts:51)", 0.5],
      ["(program) ((native):0)", 0.25],
    ],
    modules: [["src/system/limiter.ts", 4.5], ["(native)", 0.25]],
  });
});
