/**
 * Shared settings of the property-based tests: how many runs, and a seed to replay a failure.
 *
 * @module
 */

import type fc from "fast-check";

/**
 * fast-check parameters: `numRuns` runs, and the seed of `FC_SEED` when set (fast-check prints
 * the seed and path of a failing run; `FC_SEED=<seed> deno test -A tests/hostile/` replays it).
 *
 * @param numRuns How many runs.
 * @returns The parameters.
 */
export function propertyParams<T>(numRuns: number): fc.Parameters<T> {
  const seed = Deno.env.get("FC_SEED");
  const params: fc.Parameters<T> = { numRuns };
  if (seed !== undefined) params.seed = Number(seed);
  return params;
}
