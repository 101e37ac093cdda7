/**
 * Seeds of the random initial values of one layer's weights, derived from one configured seed:
 * weight `parts` of a layer seeded `seed` gets its own stream (a 32-bit mix), so weights never
 * share random values and the same seed always gives the same weights.
 */

/** A 31-bit non-negative seed derived from `seed` and the indices `parts` (e.g. offset, weight). */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const p of parts) {
    h = Math.imul(h ^ (p + 0x7f4a7c15), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h & 0x7fffffff;
}
