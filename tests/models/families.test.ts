/**
 * Both families through one implementation: the KV-cached decoder computes what the layers graph
 * computes for GPT-style and Llama-style configs (GQA/MQA, rotary in both layouts, untied
 * output), rotary positions match run.c's loop, and the two rotary layouts are the same model
 * up to the q/k column permutation a checkpoint conversion applies.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachedTransformer, type TransformerConfig } from '../../src/models/index.js';
import { rotary } from '../../src/models/ops.js';
import { rotaryTables } from '../../src/models/positions.js';
import { expectNoLeak } from '../helpers/leak.js';
import { cachedLogits, expectClose, tinyTransformer, uncachedLogits, useCpu } from '../helpers/models.js';

/** The cpu backend, or wasm (the browser's and Node's fast path: different kernels, same results). */
async function use(backend: 'cpu' | 'wasm'): Promise<void> {
  if (backend === 'cpu') return useCpu();
  await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  await tf.ready();
  expect(tf.getBackend()).toBe('wasm');
}

const IDS = [3, 17, 4, 4, 29, 0, 12, 8, 31, 5, 5, 9, 22, 1];
const LLAMA: TransformerConfig = { norm: 'rmsNorm', positions: 'rotary', mlp: 'swiglu', useBias: false, numAttentionHeads: 4, intermediateSize: 24 };

const VARIANTS: [string, TransformerConfig][] = [
  ['GPT, gelu, mlp offset heads', { mlp: 'gelu', headKind: 'mlp', headHiddenSize: 8 }],
  ['Llama, interleaved rotary, GQA (4 query heads on 2), untied', { ...LLAMA, numKeyValueHeads: 2, tiedEmbeddings: false }],
  ['Llama, halfSplit rotary, MQA (1 key/value head), tied', { ...LLAMA, ropeLayout: 'halfSplit', numKeyValueHeads: 1 }],
  ['mixed: layerNorm + rotary + biases + relu, untied', { positions: 'rotary', tiedEmbeddings: false, numAttentionHeads: 4, numKeyValueHeads: 2 }],
  [
    'Qwen2-like: q/k/v biases, head_dim 6 ≠ 16/4, llama3 RoPE scaling',
    { ...LLAMA, ropeLayout: 'halfSplit', numKeyValueHeads: 2, headDim: 6, attentionBias: 'qkv', ropeScaling: { type: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxLength: 16 } },
  ],
  ['Llama-like: q/k/v/o and MLP biases, head_dim 10, linear RoPE scaling, untied', { ...LLAMA, headDim: 10, attentionBias: 'qkvo', mlpBias: true, ropeScaling: { type: 'linear', factor: 2 }, tiedEmbeddings: false }],
];

describe.each(['cpu', 'wasm'] as const)('both families, cached == uncached (%s)', (backend) => {
  beforeAll(() => use(backend));
  for (const [title, config] of VARIANTS) {
    it(`${title}: every position, fed 1, 3 and all tokens at a time`, async () => {
      const model = tinyTransformer(config);
      const want = uncachedLogits(model, IDS);
      for (const chunk of [1, 3, IDS.length]) {
        const cached = new CachedTransformer(model);
        await expectNoLeak(() => {
          const got = cachedLogits(cached, IDS, chunk);
          expectClose(got, want);
          got.dispose();
          cached.truncate(0);
        });
        cached.dispose();
      }
      want.dispose();
      model.dispose();
    });
  }
});

/** run.c's RoPE loop, transcribed plainly (float64): pairs (2i, 2i+1) of one head at position `pos`. */
function runCRope(v: number[], pos: number, theta: number): number[] {
  const hs = v.length;
  const out = [...v];
  for (let i = 0; i < hs; i += 2) {
    const val = pos * (1 / Math.pow(theta, i / hs));
    const [c, s] = [Math.cos(val), Math.sin(val)];
    out[i] = v[i]! * c - v[i + 1]! * s;
    out[i + 1] = v[i]! * s + v[i + 1]! * c;
  }
  return out;
}

describe('grouped-query attention', () => {
  beforeAll(() => use('cpu'));
  it('equals multi-head attention whose key/value heads repeat each group head for its g query heads (llama2.c: h / kv_mul)', () => {
    const gqa = tinyTransformer({ ...LLAMA, numKeyValueHeads: 2 });
    const mha = tinyTransformer({ ...LLAMA, numKeyValueHeads: 4 });
    const hs = 16 / 4;
    const repeat = Array.from({ length: 4 * hs }, (_, j) => Math.floor(Math.floor(j / hs) / 2) * hs + (j % hs)); // query head h reads kv head floor(h / 2)
    mha.setWeights(gqa.getWeights().map((w, i) => {
      const name = gqa.weights[i]!.originalName;
      return /attention\.w[kv]\.weight$/.test(name) ? tf.tidy(() => tf.gather(w, tf.tensor1d(repeat, 'int32'), 1)) : w;
    }));
    const [a, b] = [uncachedLogits(gqa, IDS), uncachedLogits(mha, IDS)];
    expectClose(a, b, 1e-4);
    tf.dispose([a, b]);
    gqa.dispose();
    mha.dispose();
  });
});

describe('rotary positions', () => {
  beforeAll(() => use('cpu'));
  it("interleaved rotation equals run.c's loop; halfSplit equals it on the permuted dimensions", () => {
    const hs = 8;
    const T = 5;
    const start = 300; // far from 0: the angles are large
    const x = Array.from({ length: T * hs }, (_, i) => Math.sin(i * 1.7) + 0.1 * i);
    const half = (d: number) => (d < hs / 2 ? 2 * d : 2 * (d - hs / 2) + 1); // halfSplit dim → interleaved dim
    for (const layout of ['interleaved', 'halfSplit'] as const) {
      const got = tf.tidy(() => {
        const rope = rotaryTables(start, T, 1, hs, 10000, layout);
        const input = layout === 'interleaved' ? x : x.map((_, i) => x[Math.floor(i / hs) * hs + half(i % hs)]!);
        return Array.from(rotary(tf.tensor2d(input, [T, hs]), rope, 1).dataSync());
      });
      for (let t = 0; t < T; t++) {
        const want = runCRope(x.slice(t * hs, (t + 1) * hs), start + t, 10000);
        for (let d = 0; d < hs; d++) {
          const at = layout === 'interleaved' ? d : half(d);
          expect(Math.abs(got[t * hs + d]! - want[at]!)).toBeLessThan(1e-4);
        }
      }
    }
  });

  it('a halfSplit model with permuted q/k columns is the interleaved model (the Hugging Face conversion)', () => {
    const config: TransformerConfig = { ...LLAMA, numKeyValueHeads: 2 };
    const interleaved = tinyTransformer(config);
    const halfSplit = tinyTransformer({ ...config, ropeLayout: 'halfSplit' });
    const hs = 16 / 4;
    const perm = (n: number) => Array.from({ length: n * hs }, (_, j) => {
      const [h, d] = [Math.floor(j / hs), j % hs];
      return h * hs + (d < hs / 2 ? 2 * d : 2 * (d - hs / 2) + 1);
    });
    halfSplit.setWeights(interleaved.getWeights().map((w, i) => {
      const name = interleaved.weights[i]!.originalName;
      const permute = /attention\.w[qk]\.weight$/.test(name);
      return permute ? tf.tidy(() => tf.gather(w, tf.tensor1d(perm(w.shape[1]! / hs), 'int32'), 1)) : w;
    }));
    const [a, b] = [uncachedLogits(interleaved, IDS), uncachedLogits(halfSplit, IDS)];
    expectClose(a, b, 1e-4);
    tf.dispose([a, b]);
    interleaved.dispose();
    halfSplit.dispose();
  });

  it('rotary positions have no table: a context longer than any learned table decodes, cached == uncached', () => {
    const model = tinyTransformer({ ...LLAMA, maxLength: 300, numLayers: 1 });
    const ids = Array.from({ length: 260 }, (_, i) => (i * 7) % 32);
    const want = uncachedLogits(model, ids);
    const cached = new CachedTransformer(model);
    const got = cachedLogits(cached, ids, 64);
    expectClose(got, want);
    expect(model.weights.some((w) => w.originalName.includes('pos_embeddings'))).toBe(false);
    tf.dispose([got, want]);
    cached.dispose();
    model.dispose();
  });
});
