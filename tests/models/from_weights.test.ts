/** transformerFromWeights: checkpoints by canonical name, checked before anything is allocated. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachedTransformer, type TransformerConfig } from '../../src/models/index.js';
import { type CheckpointWeights, transformerFromWeights } from '../../src/models/from_weights.js';
import { resolveTransformerConfig } from '../../src/models/config.js';
import { trunkWeightSpecs } from '../../src/models/weights.js';
import { expectThrowNoLeak } from '../helpers/leak.js';
import { expectClose, uncachedLogits, useCpu } from '../helpers/models.js';

beforeAll(useCpu);

const LLAMA: TransformerConfig = {
  vocabSize: 20, maxLength: 32, hiddenSize: 16, numLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 24,
  norm: 'rmsNorm', positions: 'rotary', ropeLayout: 'interleaved', mlp: 'swiglu', useBias: false, tiedEmbeddings: false, mtpHeads: 3,
};
const GPT: TransformerConfig = { vocabSize: 20, maxLength: 16, hiddenSize: 16, numLayers: 2, numAttentionHeads: 2, mlpRatio: 2, mlp: 'gelu', mtpHeads: 2 };

/** Random named weights for `config` (a small LCG: deterministic, independent of tfjs). */
export function randomWeights(config: TransformerConfig, seed = 1): CheckpointWeights {
  const c = resolveTransformerConfig(config);
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.6;
  const weights: CheckpointWeights = new Map();
  const shapes = trunkWeightSpecs(c).map((w) => [w.name, w.shape] as const);
  if (!c.tiedEmbeddings) shapes.push(['output.weight', [c.hiddenSize, c.vocabSize]]);
  for (const [name, shape] of shapes) {
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, next);
    weights.set(name, { shape: [...shape], data });
  }
  return weights;
}

describe('transformerFromWeights', () => {
  for (const [family, config] of [['llama-style (untied, GQA, rotary)', LLAMA], ['gpt-style (tied, learned, gelu)', GPT]] as const) {
    it(`builds a ${family} model holding exactly the given weights`, () => {
      const weights = randomWeights(config);
      const before = tf.memory().numTensors;
      const model = transformerFromWeights(config, weights, 'test');
      const trunk = model.getLayer('transformer');
      for (const w of trunk.weights) {
        const name = w.originalName.replace(/^transformer\//, '');
        expect(Array.from(w.read().dataSync())).toEqual(Array.from(weights.get(name)!.data));
      }
      const ids = [3, 1, 4, 1, 5, 9, 2, 6];
      const logits = uncachedLogits(model, ids); // [n, k, V]
      // offset 0 is the checkpoint's classifier: final hidden · output.weight (or the embedding, tied)
      const want = tf.tidy(() => {
        const hidden = tf.squeeze(trunk.apply(tf.tensor2d([ids], [1, ids.length], 'int32')) as tf.Tensor, [0]) as tf.Tensor2D;
        const out = config.tiedEmbeddings === false ? weights.get('output.weight')! : null;
        const w = out ? tf.tensor2d(out.data, out.shape as [number, number]) : tf.transpose(tf.tensor2d(weights.get('tok_embeddings.weight')!.data, [20, 16]));
        return tf.matMul(hidden, w); // [n, V]
      });
      const got = tf.tidy(() => tf.squeeze(tf.slice(logits, [0, 0, 0], [-1, 1, -1]), [1]));
      expectClose(got, want, 1e-5);
      const cached = new CachedTransformer(model);
      const states = cached.forward(ids);
      const fromCache = cached.headLogits(states, [0, 1]);
      const firstTwo = tf.slice(logits, [0, 0, 0], [-1, 2, -1]);
      expectClose(fromCache, firstTwo, 1e-4);
      tf.dispose([logits, want, got, states, fromCache, firstTwo]);
      cached.dispose();
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  const bad: [string, (w: CheckpointWeights) => unknown, string][] = [
    ['a missing weight', (w) => w.delete('layers.1.feed_forward.w3.weight'), "where: the checkpoint must have weight 'layers.1.feed_forward.w3.weight' of shape [16, 24], but it is missing."],
    ['a wrong shape', (w) => w.set('layers.0.attention.wk.weight', { shape: [16, 16], data: new Float32Array(256) }), "where: weight 'layers.0.attention.wk.weight' must have shape [16, 8], but got [16, 16]."],
    ['a short data array', (w) => w.set('norm.weight', { shape: [16], data: new Float32Array(15) }), "where: weight 'norm.weight' of shape [16] must hold 16 values, but got 15."],
    ['a NaN', (w) => (w.get('layers.0.ffn_norm.weight')!.data[3] = NaN), "where: weight 'layers.0.ffn_norm.weight' must be finite, but element 3 is NaN."],
    ['an unused weight', (w) => w.set('layers.0.attention.wq.bias', { shape: [16], data: new Float32Array(16) }), `where: the checkpoint has weights this config does not use: "layers.0.attention.wq.bias".`],
    ['a missing output', (w) => w.delete('output.weight'), "where: the checkpoint must have weight 'output.weight' of shape [16, 20], but it is missing."],
    ['data of the wrong type', (w) => w.set('norm.weight', { shape: [16], data: new Array(16).fill(0) as unknown as Float32Array }), "where: weight 'norm.weight' must be { shape: number[], data: Float32Array }"],
  ];
  for (const [what, corrupt, message] of bad) {
    it(`rejects ${what} before allocating anything`, async () => {
      const weights = randomWeights(LLAMA);
      corrupt(weights);
      const started = performance.now();
      await expectThrowNoLeak(() => transformerFromWeights(LLAMA, weights, 'where'), message);
      expect(performance.now() - started).toBeLessThan(1000);
    });
  }

  it('rejects a bad config or a non-Map with the caller name first', async () => {
    await expectThrowNoLeak(() => transformerFromWeights({ ...LLAMA, numKeyValueHeads: 3 }, randomWeights(LLAMA), 'loadX'), 'loadX: config.numKeyValueHeads must divide config.numAttentionHeads = 4, but got 3.');
    await expectThrowNoLeak(() => transformerFromWeights(LLAMA, {} as CheckpointWeights, 'loadX'), 'loadX: weights must be a Map');
  });
});
