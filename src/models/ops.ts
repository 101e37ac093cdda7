/**
 * The transformer's math as plain functions of tensors — the one implementation that both the
 * tfjs-layers graph (full sequence, training, save/load, the uncached adapter) and the KV-cached
 * decoder run, so the two agree by construction rather than by test alone.
 *
 * Reference: Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2, 2019),
 * §2.3 (pre-norm blocks); Vaswani et al., "Attention Is All You Need" (2017), §3.2.
 * Layout follows nanoGPT's model.py: LayerNorm → CausalSelfAttention → MLP → Block.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Weights of one layer norm. */
export interface LayerNormWeights {
  gamma: tf.Tensor1D; // [D]
  beta: tf.Tensor1D; // [D]
}

/** Weights of one pre-norm transformer block. */
export interface BlockWeights {
  ln1: LayerNormWeights;
  qkvKernel: tf.Tensor2D; // [D, 3D]
  qkvBias: tf.Tensor1D; // [3D]
  projKernel: tf.Tensor2D; // [D, D]
  projBias: tf.Tensor1D; // [D]
  ln2: LayerNormWeights;
  fcKernel: tf.Tensor2D; // [D, rD]
  fcBias: tf.Tensor1D; // [rD]
  fc2Kernel: tf.Tensor2D; // [rD, D]
  fc2Bias: tf.Tensor1D; // [D]
}

/** Keys and values of the positions already seen, per block: `[B, H, P, hs]` each. */
export interface KeyValue {
  keys: tf.Tensor4D;
  values: tf.Tensor4D;
}

/** Epsilon of every layer norm (GPT-2's value). */
export const LAYER_NORM_EPSILON = 1e-5;

/** Layer norm over the last axis: `[..., D]` → `[..., D]`. */
export function layerNorm<T extends tf.Tensor>(x: T, w: LayerNormWeights): T {
  const centered = tf.sub(x, tf.mean(x, -1, true)); // [..., D]
  const variance = tf.mean(tf.square(centered), -1, true); // [..., 1] (what tf.moments computes, in fewer ops)
  const normed = tf.mul(centered, tf.rsqrt(tf.add(variance, LAYER_NORM_EPSILON))); // [..., D]
  return tf.add(tf.mul(normed, w.gamma), w.beta) as T;
}

/**
 * Additive causal mask for `t` new positions after `past` cached ones: `[t, past + t]`, 0 where
 * query i may see key j (j ≤ past + i), a large negative number elsewhere. `null` when t = 1
 * (one new position sees everything).
 */
export function causalMask(t: number, past: number): tf.Tensor2D | null {
  if (t === 1) return null;
  const width = past + t;
  const mask = new Float32Array(t * width);
  for (let i = 0; i < t; i++) mask.fill(-1e9, i * width + past + i + 1, (i + 1) * width);
  return tf.tensor2d(mask, [t, width]);
}

/**
 * Causal multi-head self-attention over `T` new positions of `x` `[B, T, D]`, attending to the
 * cached `past` (if any) and to themselves. Returns the output `[B, T, D]` and the keys/values of
 * past + new positions (for the cache to keep).
 */
export function causalSelfAttention(
  x: tf.Tensor3D,
  w: BlockWeights,
  numHeads: number,
  past: KeyValue | null,
): { y: tf.Tensor3D; kv: KeyValue } {
  const [B, T, D] = x.shape;
  const hs = D / numHeads;
  const qkv = tf.fused.matMul({ a: tf.reshape(x, [B * T, D]), b: w.qkvKernel, bias: w.qkvBias }); // [B·T, 3D]
  const heads = tf.transpose(tf.reshape(qkv, [B, T, 3 * numHeads, hs]), [0, 2, 1, 3]); // [B, 3H, T, hs]
  const [q, k, v] = tf.split(heads, 3, 1) as tf.Tensor4D[]; // [B, H, T, hs] each
  const keys = past ? tf.concat([past.keys, k], 2) : k; // [B, H, P+T, hs]
  const values = past ? tf.concat([past.values, v], 2) : v; // [B, H, P+T, hs]
  const mask = causalMask(T, keys.shape[2] - T); // [T, P+T] or null
  let att = tf.matMul(tf.mul(q, 1 / Math.sqrt(hs)), keys, false, true); // [B, H, T, P+T]
  if (mask) att = tf.add(att, mask);
  const out = tf.matMul(tf.softmax(att), values); // [B, H, T, hs]
  const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B * T, D]); // [B·T, D]
  const y = tf.fused.matMul({ a: merged, b: w.projKernel, bias: w.projBias }); // [B·T, D]
  return { y: tf.reshape(y, [B, T, D]), kv: { keys, values } };
}

/** Position-wise MLP, relu(x·W1 + b1)·W2 + b2: `[B, T, D]` → `[B, T, D]`. */
export function mlp(x: tf.Tensor3D, w: BlockWeights): tf.Tensor3D {
  const [B, T, D] = x.shape;
  const h = tf.fused.matMul({ a: tf.reshape(x, [B * T, D]), b: w.fcKernel, bias: w.fcBias, activation: 'relu' }); // [B·T, rD]
  const y = tf.fused.matMul({ a: h, b: w.fc2Kernel, bias: w.fc2Bias }); // [B·T, D]
  return tf.reshape(y, [B, T, D]);
}

/** One pre-norm block: x + attn(ln1(x)), then + mlp(ln2(·)). `[B, T, D]` → `[B, T, D]`. */
export function transformerBlock(
  x: tf.Tensor3D,
  w: BlockWeights,
  numHeads: number,
  past: KeyValue | null,
): { y: tf.Tensor3D; kv: KeyValue } {
  const attn = causalSelfAttention(layerNorm(x, w.ln1), w, numHeads, past);
  const h = tf.add(x, attn.y) as tf.Tensor3D; // [B, T, D]
  const y = tf.add(h, mlp(layerNorm(h, w.ln2), w)) as tf.Tensor3D; // [B, T, D]
  return { y, kv: attn.kv };
}
