/**
 * The transformer's math as plain functions of tensors — the one implementation that both the
 * tfjs-layers graph (full sequence, training, save/load) and the KV-cached decoder run, so the
 * two agree by construction rather than by test alone. One function per concern, in the order
 * a block runs them: norm → attention (with rotary q/k and grouped key/value heads) → MLP.
 *
 * Reference: nanoGPT's model.py (LayerNorm → CausalSelfAttention → MLP → Block, GPT-2 §2.3
 * pre-norm); llama2.c's run.c `forward()` (RMSNorm, RoPE, GQA, SwiGLU); Vaswani et al. (2017)
 * §3.2; Su et al., "RoFormer" (2021) §3.4; Ainslie et al., "GQA" (2023); Shazeer, "GLU Variants
 * Improve Transformer" (2020).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MlpKind, NormKind } from './config.js';

/** A projection `y = x·W (+ b)`, `W` stored `[in, out]`. */
export interface Linear {
  weight: tf.Tensor2D; // [in, out]
  bias?: tf.Tensor1D; // [out]
}

/** A norm's scale (and, for layerNorm, shift). */
export interface Norm {
  weight: tf.Tensor1D; // [D]
  bias?: tf.Tensor1D; // [D]
}

/** Weights of one pre-norm block. */
export interface BlockWeights {
  attentionNorm: Norm;
  wq: Linear; // [D, H·hs]
  wk: Linear; // [D, Hkv·hs]
  wv: Linear; // [D, Hkv·hs]
  wo: Linear; // [H·hs, D]
  ffnNorm: Norm;
  w1: Linear; // [D, F]
  w2: Linear; // [F, D]
  w3?: Linear; // [D, F] (swiglu only)
}

/** The architecture a block needs (a subset of the resolved config). */
export interface BlockSpec {
  numHeads: number;
  numKeyValueHeads: number;
  norm: NormKind;
  normEpsilon: number;
  mlp: MlpKind;
}

/** Keys and values of the positions already seen, per block: `[B, Hkv, L, hs]` each. */
export interface KeyValue {
  keys: tf.Tensor4D;
  values: tf.Tensor4D;
}

/**
 * What attention needs besides weights, computed once per forward for every block:
 * the additive mask and the rotary tables (null for learned positions).
 */
export interface AttentionContext {
  /** `[g·T, L + T]` (g = H / Hkv query heads per key head): 0 where a query may look, −1e9 elsewhere; null when every key is visible. */
  mask: tf.Tensor2D | null;
  /** Rotary tables for the T new positions, for the query and the key heads, or null (learned positions). */
  rope: { q: Rope; k: Rope } | null;
}

/** Rotary tables over n heads: `rotate(x) = x ⊙ cos + x[partner] ⊙ sin`, sin carrying the pair's sign. */
export interface Rope {
  cos: tf.Tensor2D; // [T, n·hs]
  sin: tf.Tensor2D; // [T, n·hs] (−sin on the first of a pair, +sin on the second)
  partner: tf.Tensor1D; // [n·hs] int32: the other dimension of each pair, in the same head
}

/** `x·W + b`: `[N, in]` → `[N, out]` (one fused kernel). */
export function linear(x: tf.Tensor2D, w: Linear, activation?: 'relu'): tf.Tensor2D {
  return tf.fused.matMul({ a: x, b: w.weight, bias: w.bias, activation }) as tf.Tensor2D;
}

/** LayerNorm (mean and variance) or RMSNorm (mean square only) over the last axis: `[..., D]` → `[..., D]`. */
export function norm<T extends tf.Tensor>(x: T, w: Norm, kind: NormKind, epsilon: number): T {
  const centered = kind === 'layerNorm' ? tf.sub(x, tf.mean(x, -1, true)) : x; // [..., D]
  const meanSquare = tf.mean(tf.square(centered), -1, true); // [..., 1]
  const normed = tf.mul(centered, tf.rsqrt(tf.add(meanSquare, epsilon))); // [..., D]
  const scaled = tf.mul(normed, w.weight); // [..., D]
  return (w.bias ? tf.add(scaled, w.bias) : scaled) as T;
}

/** Rotary position embedding of `x` `[B·T, n·hs]` (rows batch-major; see {@link Rope}). */
export function rotary(x: tf.Tensor2D, rope: Rope, B: number): tf.Tensor2D {
  const rows = B === 1 ? x : tf.reshape(x, [B, -1, x.shape[1]]); // [B, T, n·hs]: the tables broadcast over B
  const partner = tf.gather(rows, rope.partner, rows.rank - 1); // [.., T, n·hs]
  const y = tf.add(tf.mul(rows, rope.cos), tf.mul(partner, rope.sin));
  return (B === 1 ? y : tf.reshape(y, x.shape)) as tf.Tensor2D;
}

/** `[B·T, n·hs]` → `[B, n, T, hs]` (a reshape when T = 1: the same memory order). */
function splitHeads(x: tf.Tensor2D, B: number, T: number, n: number, hs: number): tf.Tensor4D {
  return T === 1 ? tf.reshape(x, [B, n, 1, hs]) : tf.transpose(tf.reshape(x, [B, T, n, hs]), [0, 2, 1, 3]);
}

/**
 * Causal self-attention over the T new positions of `x` `[B·T, D]` (B sequences, batch-major),
 * after the cached `past` (if any). Query heads are grouped g = H / Hkv per key/value head, as
 * rows of one matmul (no copies of keys or values). Returns the output `[B·T, D]` and past + new
 * keys/values.
 */
export function attention(x: tf.Tensor2D, B: number, w: BlockWeights, spec: BlockSpec, past: KeyValue | null, ctx: AttentionContext): { y: tf.Tensor2D; kv: KeyValue } {
  const T = x.shape[0] / B;
  const H = spec.numHeads;
  const Hkv = spec.numKeyValueHeads;
  const g = H / Hkv;
  const hs = w.wq.weight.shape[1] / H;
  let q = linear(x, w.wq); // [B·T, H·hs]
  let k = linear(x, w.wk); // [B·T, Hkv·hs]
  if (ctx.rope) {
    q = rotary(q, ctx.rope.q, B);
    k = rotary(k, ctx.rope.k, B);
  }
  const kNew = splitHeads(k, B, T, Hkv, hs); // [B, Hkv, T, hs]
  const vNew = splitHeads(linear(x, w.wv), B, T, Hkv, hs); // [B, Hkv, T, hs]
  const keys = past ? tf.concat([past.keys, kNew], 2) : kNew; // [B, Hkv, L+T, hs]
  const values = past ? tf.concat([past.values, vNew], 2) : vNew; // [B, Hkv, L+T, hs]
  const grouped = T === 1 ? tf.reshape(q, [B, Hkv, g, hs]) : tf.reshape(splitHeads(q, B, T, H, hs), [B, Hkv, g * T, hs]); // [B, Hkv, g·T, hs]
  let att = tf.matMul(tf.mul(grouped, 1 / Math.sqrt(hs)), keys, false, true); // [B, Hkv, g·T, L+T]
  if (ctx.mask) att = tf.add(att, ctx.mask);
  const out = tf.matMul(tf.softmax(att), values); // [B, Hkv, g·T, hs]
  const merged = (T === 1 ? tf.reshape(out, [B, H * hs]) : tf.reshape(tf.transpose(tf.reshape(out, [B, H, T, hs]), [0, 2, 1, 3]), [B * T, H * hs])) as tf.Tensor2D; // [B·T, H·hs]
  return { y: linear(merged, w.wo), kv: { keys, values } };
}

/** Position-wise MLP: `w2(act(w1 x))`, or `w2(silu(w1 x) ⊙ w3 x)` for swiglu. `[N, D]` → `[N, D]`. */
export function mlp(x: tf.Tensor2D, w: BlockWeights, kind: MlpKind): tf.Tensor2D {
  let h: tf.Tensor2D; // [N, F]
  if (kind === 'relu') {
    h = linear(x, w.w1, 'relu');
  } else if (kind === 'gelu') {
    const a = linear(x, w.w1);
    h = tf.mul(tf.mul(a, 0.5), tf.add(1, tf.erf(tf.mul(a, Math.SQRT1_2)))) as tf.Tensor2D; // exact GELU, x·Φ(x)
  } else {
    const a = linear(x, w.w1);
    h = tf.mul(tf.mul(a, tf.sigmoid(a)), linear(x, w.w3!)) as tf.Tensor2D; // silu(w1 x) ⊙ w3 x
  }
  return linear(h, w.w2);
}

/** One pre-norm block over `x` `[B·T, D]`: `x + attn(norm(x))`, then `+ mlp(norm(·))`. */
export function block(x: tf.Tensor2D, B: number, w: BlockWeights, spec: BlockSpec, past: KeyValue | null, ctx: AttentionContext): { y: tf.Tensor2D; kv: KeyValue } {
  const attn = attention(norm(x, w.attentionNorm, spec.norm, spec.normEpsilon), B, w, spec, past, ctx);
  const h = tf.add(x, attn.y) as tf.Tensor2D; // [B·T, D]
  const y = tf.add(h, mlp(norm(h, w.ffnNorm, spec.norm, spec.normEpsilon), w, spec.mlp)) as tf.Tensor2D; // [B·T, D]
  return { y, kv: attn.kv };
}
