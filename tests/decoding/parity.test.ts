/**
 * The central guarantee: speculative decoding with greedy acceptance returns exactly what
 * greedy decoding returns, whatever the drafts were — on a KV-cached model (rollback exercised)
 * and through the uncached LayersModel adapter, including past a fixed input window.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { blockwiseDecode, fromLayersModel, greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { ToyAttentionModel, seededValues } from '../helpers/toy_models.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);

const prompts = (V: number, count: number): number[][] =>
  Array.from({ length: count }, (_, i) => Array.from(seededValues(1 + (i % 7), 100 + i), (x) => Math.abs(Math.floor(x * 997)) % V));

describe.each([2, 3, 4])('KV-cached toy model, k = %i', (k) => {
  it.each([
    ['random offset heads', 1],
    ['offset heads close to offset 0', 0.05],
  ])('speculative (greedy) equals greedy on 12 prompts — %s', async (_, headNoise) => {
    const model = new ToyAttentionModel({ vocabSize: 23, hidden: 16, numHeads: k, seed: k, headNoise });
    let partial = 0;
    let rejected = 0;
    await expectNoLeak(async () => {
      for (const prompt of prompts(23, 12)) {
        const greedy = await greedyDecode(model, prompt, { maxNewTokens: 24 });
        const spec = await speculativeDecode(model, prompt, { maxNewTokens: 24, draftLength: k - 1 });
        expect(spec.tokens).toEqual(greedy.tokens);
        expect(spec.stats.forwards).toBeLessThanOrEqual(greedy.stats.forwards);
        const { accepted, drafted } = spec.stats;
        if (accepted > 0 && accepted < drafted) partial++;
        rejected += drafted - accepted;
      }
    });
    // Rollback must actually have happened: rejected drafts rolled out of the cache, and with heads
    // close to offset 0 also steps that kept some drafts and rolled back the rest.
    expect(rejected).toBeGreaterThan(0);
    if (headNoise < 1) expect(partial).toBeGreaterThan(0);
    model.dispose();
  });
});

it('greedy decoding over the KV cache equals an uncached recomputation at every step', async () => {
  const model = new ToyAttentionModel({ vocabSize: 19, hidden: 12, numHeads: 3, seed: 9, headNoise: 0.1 });
  const prompt = [3, 1, 4, 1, 5];
  const { tokens } = await speculativeDecode(model, prompt, { maxNewTokens: 20 });
  const all = [...prompt, ...tokens];
  const logits = await model.referenceLogits(all.slice(0, -1));
  const argmax = logits.map((row) => row.indexOf(Math.max(...row)));
  expect(argmax.slice(prompt.length - 1)).toEqual(tokens);
  model.dispose();
});

/** A causal LayersModel: tokens → embedding → GRU (causal by construction) → dense(k·V) → [b, s, k, V]. */
function causalLayersModel(V: number, k: number, inputLength: number | null): tfl.LayersModel {
  const input = tfl.input({ shape: [inputLength], dtype: 'int32' });
  let x = tfl.layers.embedding({ inputDim: V, outputDim: 16, embeddingsInitializer: tfl.initializers.randomNormal({ seed: 1 }) }).apply(input) as tfl.SymbolicTensor;
  x = tfl.layers.gru({ units: 16, returnSequences: true, kernelInitializer: tfl.initializers.glorotNormal({ seed: 2 }), recurrentInitializer: tfl.initializers.glorotNormal({ seed: 4 }) }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.dense({ units: k * V, kernelInitializer: tfl.initializers.randomNormal({ seed: 3, stddev: 1 }) }).apply(x) as tfl.SymbolicTensor;
  const out = tfl.layers.reshape({ targetShape: [inputLength ?? -1, k, V] }).apply(x) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

describe('LayersModel adapter', () => {
  it.each([2, 4])('speculative (greedy) equals greedy, dynamic input length, k = %i', async (k) => {
    const layers = causalLayersModel(17, k, null);
    const model = fromLayersModel(layers);
    await expectNoLeak(async () => {
      for (const prompt of prompts(17, 6)) {
        const greedy = await greedyDecode(model, prompt, { maxNewTokens: 16 });
        const spec = await speculativeDecode(model, prompt, { maxNewTokens: 16 });
        expect(spec.tokens).toEqual(greedy.tokens);
      }
    });
    layers.dispose();
  });

  it('slides a fixed 8-token window and still equals greedy past it', async () => {
    const layers = causalLayersModel(17, 3, 8);
    const model = fromLayersModel(layers);
    const prompt = [1, 2, 3, 4, 5, 6];
    const greedy = await greedyDecode(model, prompt, { maxNewTokens: 20 });
    const spec = await speculativeDecode(model, prompt, { maxNewTokens: 20 });
    expect(greedy.tokens).toHaveLength(20);
    expect(spec.tokens).toEqual(greedy.tokens);
    expect(model.maxLength).toBe(Infinity);
    layers.dispose();
  });

  it('passes offsets through in order: headLogits(states, [2, 0]) are the model output at those offsets', async () => {
    const layers = causalLayersModel(11, 3, null);
    const model = fromLayersModel(layers);
    const ids = [1, 5, 7];
    const full = layers.predict(tf.tensor2d([ids], [1, 3], 'int32')) as tf.Tensor; // [1, 3, 3, 11]
    const states = model.forward(ids);
    const picked = model.headLogits(states, [2, 0]);
    const expected = tf.gather(tf.squeeze(full, [0]), [2, 0], 1);
    expect(await picked.array()).toEqual(await expected.array());
    tf.dispose([full, states, picked, expected]);
    layers.dispose();
  });
});

it('blockwise decoding is not verified: it can differ from greedy, with k tokens per forward', async () => {
  const model = new ToyAttentionModel({ vocabSize: 23, hidden: 16, numHeads: 4, seed: 4 });
  const prompt = [5, 9, 2];
  const greedy = await greedyDecode(model, prompt, { maxNewTokens: 24 });
  const block = await blockwiseDecode(model, prompt, { maxNewTokens: 24 });
  expect(block.stats.forwards).toBe(6);
  expect(block.stats.meanAcceptedLength).toBe(4);
  expect(block.sources.slice(0, 4)).toEqual([0, 1, 2, 3]);
  expect(block.tokens).not.toEqual(greedy.tokens); // random offset heads draft badly
  expect(block.tokens[0]).toBe(greedy.tokens[0]); // offset 0 is the same model
  model.dispose();
});

it('blockwise decoding feeds every token of the previous block: each block starts with greedy\'s next token after its whole prefix', async () => {
  // An attention model looks at every earlier token, so feeding only a block's last token would change offset 0's pick.
  const model = new ToyAttentionModel({ vocabSize: 23, hidden: 16, numHeads: 3, seed: 12 });
  const prompt = [5, 9, 2];
  const block = await blockwiseDecode(model, prompt, { maxNewTokens: 18 });
  const starts = block.sources.flatMap((s, i) => (s === 0 ? [i] : []));
  expect(starts).toEqual([0, 3, 6, 9, 12, 15]);
  for (const i of starts) {
    const next = await greedyDecode(model, [...prompt, ...block.tokens.slice(0, i)], { maxNewTokens: 1 });
    expect(next.tokens[0], `block starting at token ${i}`).toBe(block.tokens[i]);
  }
  model.dispose();
});
