/**
 * What attention needs per forward besides weights: the rotary tables of the new positions and
 * the additive mask (causal among new positions, and blind to cache rows a rollback rejected).
 * Both are computed in JS and uploaded once per forward, shared by every block.
 *
 * Rotary angles follow llama2.c's run.c and Hugging Face's `LlamaRotaryEmbedding`, both in
 * float32: freq_i = 1 / θ^(2i/hs), angle = fround(pos · freq_i); no table, so no length limit.
 * A `ropeScaling` changes the frequencies as transformers' `modeling_rope_utils.py` does
 * (`_compute_linear_scaling_rope_parameters`, `_compute_llama3_parameters`), op by op in float32.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RopeLayout, RopeScaling } from './config.js';
import type { Rope } from './ops.js';

const f32 = Math.fround;

/** The other dimension of each rotating pair, and the pair index i (angle pos·θ^(−2i/hs)) of each dimension. */
function pairs(hs: number, layout: RopeLayout): { partner: Int32Array; pair: Int32Array; first: boolean[] } {
  const partner = new Int32Array(hs);
  const pair = new Int32Array(hs);
  const first: boolean[] = [];
  const half = hs / 2;
  for (let d = 0; d < hs; d++) {
    if (layout === 'interleaved') {
      partner[d] = d ^ 1; // (2i, 2i+1)
      pair[d] = d >> 1;
      first.push(d % 2 === 0);
    } else {
      partner[d] = d < half ? d + half : d - half; // (i, i + hs/2)
      pair[d] = d < half ? d : d - half;
      first.push(d < half);
    }
  }
  return { partner, pair, first };
}

/**
 * The hs/2 inverse frequencies of a head of size `hs` (pair i turns by pos · freq_i), float32 as
 * transformers computes them: θ^(−2i/hs), then the scaling if any.
 */
export function inverseFrequencies(hs: number, theta: number, scaling: RopeScaling | null = null): number[] {
  const base = Array.from({ length: hs / 2 }, (_, i) => f32(1 / f32(Math.pow(theta, f32((2 * i) / hs)))));
  if (scaling === null) return base;
  // a Python number meets a float32 tensor as a float32 (torch's type promotion)
  const factor = f32(scaling.factor);
  if (scaling.type === 'linear') return base.map((f) => f32(f / factor));
  // llama3: keep short wavelengths, divide long ones by factor, blend those between
  const { lowFreqFactor: low, highFreqFactor: high, originalMaxLength: context } = scaling;
  const [lowFreqWavelen, highFreqWavelen] = [f32(context / low), f32(context / high)];
  return base.map((f) => {
    const wavelen = f32(f32(2 * Math.PI) / f);
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f32(f / factor);
    const smooth = f32(f32(f32(f32(context) / wavelen) - f32(low)) / f32(high - low));
    return f32(f32(f32(f32(1 - smooth) * f) / factor) + f32(smooth * f));
  });
}

/**
 * Rotary tables for positions `start … start + T − 1` over `n` heads of size `hs`, laid out like
 * the projection's output row `[n·hs]` (head-major). Allocates three small tensors.
 */
export function rotaryTables(start: number, T: number, n: number, hs: number, theta: number, layout: RopeLayout, scaling: RopeScaling | null = null): Rope {
  return rotaryTablesAt(Array.from({ length: T }, (_, t) => start + t), n, hs, theta, layout, scaling);
}

/**
 * Rotary tables for the given positions, one row each (a tree's nodes share positions: each sits at
 * the prefix length + its depth). Layout as {@link rotaryTables}.
 */
export function rotaryTablesAt(positions: readonly number[], n: number, hs: number, theta: number, layout: RopeLayout, scaling: RopeScaling | null = null): Rope {
  const T = positions.length;
  const { partner, pair, first } = pairs(hs, layout);
  const freq = inverseFrequencies(hs, theta, scaling);
  const width = n * hs;
  const cos = new Float32Array(T * width);
  const sin = new Float32Array(T * width);
  for (let t = 0; t < T; t++) {
    for (let d = 0; d < hs; d++) {
      const angle = f32(positions[t]! * freq[pair[d]!]!);
      const [c, s] = [Math.cos(angle), first[d] ? -Math.sin(angle) : Math.sin(angle)]; // out[first] = x·cos − x[partner]·sin
      for (let h = 0; h < n; h++) {
        cos[t * width + h * hs + d] = c;
        sin[t * width + h * hs + d] = s;
      }
    }
  }
  const partners = new Int32Array(width);
  for (let h = 0; h < n; h++) for (let d = 0; d < hs; d++) partners[h * hs + d] = h * hs + partner[d]!;
  return { cos: tf.tensor2d(cos, [T, width]), sin: tf.tensor2d(sin, [T, width]), partner: tf.tensor1d(partners, 'int32') };
}

/**
 * Additive attention mask `[g·T, L + T]` for T new positions after L cache rows, `visible[j]`
 * saying whether row j is live (a rolled-back row stays in the buffer but is masked out). Row
 * r of the mask is query position r mod T (the g query heads of a key head are stacked as rows).
 * Among the new positions the mask is causal, or, given `parents` (a tree: `parents[t]` is the new
 * position t hangs under, −1 for the last cached one), each position sees itself and its
 * ancestors only (the tree attention of SpecInfer §4.2 / Medusa §2.1.2).
 * Null when no mask is needed (one new position and every cache row live).
 */
export function attentionMask(T: number, visible: readonly boolean[], g: number, parents: readonly number[] | null = null): tf.Tensor2D | null {
  const L = visible.length;
  if (T === 1 && visible.every(Boolean)) return null;
  const width = L + T;
  const one = new Float32Array(T * width);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < L; j++) if (!visible[j]) one[t * width + j] = -1e9;
    if (parents === null) {
      one.fill(-1e9, t * width + L + t + 1, (t + 1) * width); // causal among the new positions
    } else {
      one.fill(-1e9, t * width + L, (t + 1) * width); // then open the path back to the cache
      for (let a = t; a >= 0; a = parents[a]!) one[t * width + L + a] = 0;
    }
  }
  const mask = new Float32Array(g * T * width);
  for (let j = 0; j < g; j++) mask.set(one, j * T * width);
  return tf.tensor2d(mask, [g * T, width]);
}
