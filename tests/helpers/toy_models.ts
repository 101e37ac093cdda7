/**
 * Small MultiTokenModels for the decoder tests, independent of the package's layers and
 * reference transformer so that the decoders are tested against something they do not share.
 *
 * - ToyAttentionModel: one causal self-attention layer with a real, growing KV cache and
 *   k offset transforms + a shared unembedding — rollback (`truncate`) is exercised for real.
 * - TableModel: a Markov model (logits depend on the last token only) with one table per
 *   offset, so exact next-token distributions are known in closed form.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MultiTokenModel } from '../../src/decoding/model.js';
import { uniformStream } from '../../src/decoding/random.js';

/** Deterministic pseudo-random normal-ish values (sum of uniforms) for reproducible weights. */
export function seededValues(n: number, seed: number, scale = 1): Float32Array {
  const next = uniformStream(Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1)); // the library's stream
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() + next() + next() - 1.5) * scale;
  return out;
}

export interface ToyAttentionConfig {
  vocabSize: number;
  hidden: number;
  numHeads: number;
  maxLength?: number;
  seed?: number;
  /** Multiplies the offset transforms' deviation from identity (0 = every offset copies offset 0's state). */
  headNoise?: number;
}

/** One-layer causal attention LM with a KV cache. */
export class ToyAttentionModel implements MultiTokenModel {
  readonly numHeads: number;
  readonly vocabSize: number;
  readonly maxLength: number;
  forwards = 0;
  private readonly weights: tf.Tensor[];
  private readonly emb: tf.Tensor2D; // [V, D]
  private readonly pos: tf.Tensor2D; // [T, D]
  private readonly wq: tf.Tensor2D; // [D, D]
  private readonly wk: tf.Tensor2D;
  private readonly wv: tf.Tensor2D;
  private readonly wo: tf.Tensor2D; // [D, D]
  private readonly unembed: tf.Tensor2D; // [V, D]
  private readonly heads: tf.Tensor3D; // [k, D, D]
  private keys: tf.Tensor2D; // [L, D]
  private values: tf.Tensor2D; // [L, D]

  constructor(c: ToyAttentionConfig) {
    const { vocabSize: V, hidden: D, numHeads: k, maxLength = 512, seed = 1, headNoise = 1 } = c;
    this.numHeads = k;
    this.vocabSize = V;
    this.maxLength = maxLength;
    this.emb = tf.tensor2d(seededValues(V * D, seed), [V, D]);
    this.pos = tf.tensor2d(seededValues(maxLength * D, seed + 1, 0.3), [maxLength, D]);
    this.wq = tf.tensor2d(seededValues(D * D, seed + 2, 1 / Math.sqrt(D)), [D, D]);
    this.wk = tf.tensor2d(seededValues(D * D, seed + 3, 1 / Math.sqrt(D)), [D, D]);
    this.wv = tf.tensor2d(seededValues(D * D, seed + 4, 1 / Math.sqrt(D)), [D, D]);
    this.wo = tf.tensor2d(seededValues(D * D, seed + 6, 2 / Math.sqrt(D)), [D, D]);
    this.unembed = tf.tensor2d(seededValues(V * D, seed + 7, 2), [V, D]);
    this.heads = tf.tidy(() => {
      const noise = tf.tensor3d(seededValues(k * D * D, seed + 5, headNoise / Math.sqrt(D)), [k, D, D]);
      const eye = tf.tile(tf.expandDims(tf.eye(D), 0), [k, 1, 1]);
      const offset0 = tf.concat([tf.ones([1, 1, 1]), tf.zeros([k - 1, 1, 1])]); // offset 0 = identity
      return tf.add(eye, tf.mul(tf.sub(1, offset0), noise)) as tf.Tensor3D;
    });
    this.keys = tf.zeros([0, D]);
    this.values = tf.zeros([0, D]);
    this.weights = [this.emb, this.pos, this.wq, this.wk, this.wv, this.wo, this.unembed, this.heads];
  }

  get length(): number {
    return this.keys.shape[0];
  }

  forward(tokenIds: readonly number[]): tf.Tensor2D {
    const L = this.length;
    const n = tokenIds.length;
    if (L + n > this.maxLength) throw new RangeError(`ToyAttentionModel: ${L + n} positions exceed maxLength ${this.maxLength}.`);
    this.forwards++;
    const [h, keys, values] = tf.tidy(() => {
      const ids = tf.tensor1d(tokenIds as number[], 'int32');
      const x = tf.add(tf.gather(this.emb, ids), tf.slice(this.pos, [L, 0], [n, -1])); // [n, D]
      const keys = tf.concat([this.keys, tf.matMul(x, this.wk)]); // [L + n, D]
      const values = tf.concat([this.values, tf.matMul(x, this.wv)]); // [L + n, D]
      const scores = tf.div(tf.matMul(tf.matMul(x, this.wq), keys, false, true), Math.sqrt(this.wq.shape[0])); // [n, L + n]
      const row = tf.reshape(tf.range(L, L + n, 1, 'int32'), [n, 1]);
      const col = tf.reshape(tf.range(0, L + n, 1, 'int32'), [1, L + n]);
      const masked = tf.where(tf.lessEqual(col, row), scores, tf.fill(scores.shape, -1e9)); // causal
      const h = tf.tanh(tf.matMul(tf.add(x, tf.matMul(tf.softmax(masked), values)), this.wo)); // [n, D]
      return [h, keys, values] as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    });
    this.keys.dispose();
    this.values.dispose();
    this.keys = keys;
    this.values = values;
    return h;
  }

  headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    return tf.tidy(() => {
      const w = tf.gather(this.heads, tf.tensor1d(offsets as number[], 'int32')); // [o, D, D]
      const h = tf.einsum('md,ode->moe', states, w); // [m, o, D]
      const [m, o, D] = h.shape;
      return tf.reshape(tf.matMul(tf.reshape(h, [m * o, D]), this.unembed, false, true), [m, o, this.vocabSize]) as tf.Tensor3D;
    });
  }

  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.length) throw new RangeError(`ToyAttentionModel: bad truncate ${length}.`);
    const keys = tf.slice(this.keys, [0, 0], [length, -1]);
    const values = tf.slice(this.values, [0, 0], [length, -1]);
    this.keys.dispose();
    this.values.dispose();
    this.keys = keys;
    this.values = values;
  }

  /** Uncached full-sequence offset-0 logits for `ids` (reference for tests) → [n, V] as arrays. */
  async referenceLogits(ids: number[]): Promise<number[][]> {
    this.truncate(0);
    const h = this.forward(ids);
    const logits = this.headLogits(h, [0]);
    const out = (await logits.array()) as number[][][];
    tf.dispose([h, logits]);
    this.truncate(0);
    return out.map((r) => r[0]);
  }

  dispose(): void {
    tf.dispose([...this.weights, this.keys, this.values]);
  }
}

/** Markov model: offset j's logits at a position are `tables[j][token at that position]`. */
export class TableModel implements MultiTokenModel {
  readonly numHeads: number;
  readonly vocabSize: number;
  readonly maxLength = Infinity;
  length = 0;
  forwards = 0;
  private readonly tables: tf.Tensor3D; // [k, V, V]

  /** `tables[j][a][b]`: logit of token b at offset j after token a. */
  constructor(readonly tablesData: number[][][]) {
    this.numHeads = tablesData.length;
    this.vocabSize = tablesData[0].length;
    this.tables = tf.tensor3d(tablesData);
  }

  forward(tokenIds: readonly number[]): tf.Tensor2D {
    this.length += tokenIds.length;
    this.forwards++;
    return tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(tokenIds as number[], 'int32'), this.vocabSize), 'float32')) as tf.Tensor2D; // [n, V]
  }

  headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    return tf.tidy(() => {
      const t = tf.gather(this.tables, tf.tensor1d(offsets as number[], 'int32')); // [o, V, V]
      return tf.einsum('ma,oab->mob', states, t) as tf.Tensor3D; // [m, o, V]
    });
  }

  truncate(length: number): void {
    this.length = length;
  }

  dispose(): void {
    this.tables.dispose();
  }
}
