/**
 * What the decoders do with a model that breaks its contract, and with the model's own stop
 * tokens: a custom `MultiTokenModel` whose outputs have the wrong rank, shape or dtype, or whose
 * argmax names no token, is refused naming the decoder and the method (never a silent token 0 or
 * 2.5 in the output, never an error from deep inside tfjs), with no tensor left behind; a model's
 * `stopTokens` end a decode when the caller gives none, and `stopTokens: []` decodes past them;
 * and `measureTreeCosts` sees a signal that a timer aborts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { blockwiseDecode, greedyDecode, speculativeDecode, type MultiTokenModel } from '../../src/index.js';
import { measureTreeCosts } from '../../src/decoding/tree_auto.js';
import { CachedTransformer } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { tinyTransformer } from '../helpers/models.js';
import { TableModel } from '../helpers/toy_models.js';

beforeAll(useCpu);

/** A counting model (after token a, every offset predicts the tokens that follow a), V = 8, k = 3. */
function counting(): TableModel {
  const V = 8;
  return new TableModel(Array.from({ length: 3 }, (_, j) => Array.from({ length: V }, (_, a) => Array.from({ length: V }, (_, b) => (b === (a + 1 + j) % V ? 5 : 0)))));
}

describe('a model that breaks its contract is refused, naming the method', () => {
  const base = counting();
  /** `base` with `member` replaced (everything else passed through, `this` kept). */
  const breaking = (member: Partial<Record<keyof MultiTokenModel, unknown>>): MultiTokenModel => Object.assign(Object.create(base) as MultiTokenModel, member);

  it.each([
    ['logits wider than the vocabulary', { headLogits: (s: tf.Tensor2D, o: readonly number[]) => tf.zeros([s.shape[0], o.length, 9]) }, 'model.headLogits must return a tensor of shape [1, 1, 8], but returned float32 [1, 1, 9].'],
    ['rank-2 logits', { headLogits: (s: tf.Tensor2D) => tf.zeros([s.shape[0], 8]) }, 'model.headLogits must return a tensor of shape [1, 1, 8], but returned float32 [1, 8].'],
    ['a forward of 0 rows', { forward: () => tf.zeros([0, 8]) }, 'model.forward must return a tensor of shape [1, *], but returned float32 [0, 8].'],
    ['a forward that is not a tensor', { forward: () => [[1]] }, 'model.forward must return a tensor of shape [1, *], but returned [[1]].'],
    ['float ids from headArgmax', { headArgmax: (s: tf.Tensor2D, n: number) => tf.fill([s.shape[0], n], 2.5) }, 'model.headArgmax must return an int32 tensor of shape [1, 1], but returned float32 [1, 1].'],
    ['an id outside the vocabulary from headArgmax', { headArgmax: (s: tf.Tensor2D, n: number) => tf.fill([s.shape[0], n], 99, 'int32') }, 'model.headArgmax must return token ids in [0, 8) or −1 (non-finite logits), but returned 99.'],
  ])('%s', async (_, member, message) => {
    for (const decode of [greedyDecode, speculativeDecode, blockwiseDecode] as const) {
      const name = decode === greedyDecode ? 'greedyDecode' : decode === speculativeDecode ? 'speculativeDecode' : 'blockwiseDecode';
      if (name === 'blockwiseDecode' && 'headLogits' in member) continue; // blockwise reads every offset at once: another shape in the message
      await expectThrowNoLeak(() => decode(breaking(member), [1], { maxNewTokens: 4, ...(name === 'blockwiseDecode' ? { blockSize: 1 } : {}) }), `${name}: ${message}`);
    }
  });

  it('a draft pass returning the wrong shape is refused at the tip', async () => {
    const layers = tinyTransformer({ mtpHeads: 3 });
    const inner = new CachedTransformer(layers);
    const bad = Object.assign(Object.create(inner) as MultiTokenModel, { draftArgmax: (s: tf.Tensor2D) => tf.zeros([s.shape[0], 5], 'int32') });
    await expectThrowNoLeak(() => speculativeDecode(bad, [1, 2], { maxNewTokens: 6, draftLength: 2 }), 'speculativeDecode: model.draftArgmax must return an int32 tensor of shape [1, 2], but returned int32 [1, 5].');
    inner.dispose();
    layers.dispose();
  });
});

describe("the model's own stop tokens", () => {
  it('end a decode when the caller gives none; stopTokens: [] decodes past them; the caller\'s replace them', async () => {
    const model = counting(); // greedy text after 0: 1 2 3 4 5 6 7 0 1 …
    const withStops = Object.assign(Object.create(model) as MultiTokenModel, { stopTokens: [5] });
    for (const decode of [greedyDecode, speculativeDecode] as const) {
      const stopped = await expectNoLeak(() => decode(withStops, [0], { maxNewTokens: 20 }));
      expect(stopped.tokens).toEqual([1, 2, 3, 4, 5]);
      expect(stopped.finishReason).toBe('stop');
      expect((await decode(withStops, [0], { maxNewTokens: 9, stopTokens: [] })).tokens).toEqual([1, 2, 3, 4, 5, 6, 7, 0, 1]);
      expect((await decode(withStops, [0], { maxNewTokens: 20, stopTokens: [3] })).tokens).toEqual([1, 2, 3]);
    }
    const broken = Object.assign(Object.create(model) as MultiTokenModel, { stopTokens: [8] });
    await expectThrowNoLeak(() => greedyDecode(broken, [0]), 'greedyDecode: model.stopTokens[0] must be an integer token id in [0, 8), but got 8.');
    model.dispose();
  });
});

describe('measureTreeCosts and a signal a timer aborts', () => {
  it('rejects with the reason soon after the timer fires, the cache as it was, no tensor left behind', async () => {
    const layers = tinyTransformer({ mtpHeads: 4, maxLength: 64 });
    const model = new CachedTransformer(layers);
    const first = model.forward([1, 2, 3]);
    first.dispose();
    const signal = AbortSignal.timeout(30);
    const t0 = performance.now();
    await expectThrowNoLeak(() => measureTreeCosts(model, [2, 4, 8, 16, 32], 3, { repeats: 64, warmup: 16, signal }), /TimeoutError|timed out|aborted/i);
    expect(performance.now() - t0).toBeLessThan(1000); // hundreds of forwards would take seconds; it stopped at the timer
    expect(model.length).toBe(3);
    model.dispose();
    layers.dispose();
  });
});

describe("tree: 'auto' measures nothing up front", () => {
  it('a first decode on a fresh model sees a timer abort within a few steps (costs are measured on the decode\'s own steps)', async () => {
    const layers = tinyTransformer({ mtpHeads: 4, maxLength: 512 });
    const model = new CachedTransformer(layers);
    const signal = AbortSignal.timeout(50);
    const t0 = performance.now();
    await expectThrowNoLeak(() => speculativeDecode(model, [1, 2, 3], { tree: 'auto', maxNewTokens: 500, signal }), /TimeoutError|timed out|aborted/i);
    expect(performance.now() - t0).toBeLessThan(400); // a step and a yield after the timer, not a cost table first
    expect(model.length).toBe(0); // the cache reset, as after any abort
    model.dispose();
    layers.dispose();
  });
});
