/**
 * A small seeded random stream (SplitMix32) for reproducible sampling. Uniforms are drawn on the
 * JS side and uploaded with each step, so a seed gives the same tokens on every backend (up to
 * float rounding in the model itself) and no backend RNG state is involved.
 */

/** Returns a function that yields uniforms in [0, 1) (32-bit fractions) from a uint32 seed. */
export function uniformStream(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    return (z >>> 0) / 4294967296;
  };
}

/**
 * `u` ∈ [0, 1) rounded down to 24 bits, so that it is exactly a float32 and still below 1 after
 * the upload (a 32-bit fraction above 1 − 2⁻²⁵ rounds to 1.0 in float32).
 */
export function toFloat32Unit(u: number): number {
  return Math.floor(u * 16777216) / 16777216;
}

/** Draws `n` uniforms from `next` into a Float32Array, each in [0, 1) after the cast. */
export function uniforms(next: () => number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = toFloat32Unit(next());
  return out;
}
