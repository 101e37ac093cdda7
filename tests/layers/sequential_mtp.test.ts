/**
 * `SequentialMtpHead` on a tiny transformer (cpu): offset 0 is the base model's head exactly;
 * `headArgmax` chains (column j = argmax of module j fed column j−1's token, equal to the
 * teacher-forced path fed those tokens); `logits` follows the same chain; the non-finite rule;
 * bounded arguments checked before any weight; a save/load round trip; no leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { SequentialMtpHead, sequentialMtpHead } from '../../src/layers/sequential_mtp.js';
import { withSequentialHeads } from '../../src/models/draft_heads.js';
import { CachedTransformer, createTransformer } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { loadFromMemory, randomizeWeights, saveToMemory } from '../helpers/layers.js';

const V = 40;
const D = 16;
const K = 4;
const IDS = [3, 7, 1, 9, 12, 5];

function build(): { base: LayersModel; model: LayersModel; head: SequentialMtpHead } {
  const base = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 32, mtpHeads: 1, seed: 3 });
  const model = withSequentialHeads(base, K, 8);
  const head = model.getLayer('mtp_head') as unknown as SequentialMtpHead;
  randomizeWeights({ weights: head.weights }, 5, 0.4); // trained-looking modules (the fresh ones pass the state through)
  return { base, model, head };
}

/** Final hidden states `[n, D]` of `IDS`. */
function states(model: LayersModel): tf.Tensor2D {
  return tf.tidy(() => tf.squeeze(model.getLayer('transformer').apply(tf.tensor2d(IDS, [1, IDS.length], 'int32')) as tf.Tensor, [0]) as tf.Tensor2D);
}

describe('SequentialMtpHead', () => {
  beforeAll(useCpu);

  it('offset 0 is the base model head; headArgmax chains each module on the previous column’s token', async () => {
    const { base, model, head } = build();
    await expectNoLeak(() => {
      const h = states(model);
      const chained = head.headArgmax(h, K); // [n, K]
      const table = chained.arraySync() as number[][];
      const base0 = tf.tidy(() => tf.argMax(tf.squeeze(base.predict(tf.tensor2d(IDS, [1, IDS.length], 'int32')) as tf.Tensor, [0, 2]), -1).arraySync() as number[]);
      expect(table.map((r) => r[0])).toEqual(base0);
      // the same tokens fed teacher-forced give the same argmax in every column
      const tokens = tf.tensor2d(table.map((r) => r.slice(0, K - 1)), [IDS.length, K - 1], 'int32');
      const forced = tf.tidy(() => tf.argMax(head.trainingLogits(h, tokens), -1).arraySync() as number[][]); // offsets 1…k−1
      expect(forced).toEqual(table.map((r) => r.slice(1)));
      // logits of chosen offsets follow the chain too
      const picked = tf.tidy(() => tf.argMax(head.logits(h, [2, 0]), -1).arraySync() as number[][]);
      expect(picked).toEqual(table.map((r) => [r[2], r[0]]));
      // with a prepared (pre-transposed) unembedding the tokens are the same
      head.prepare();
      head.prepare();
      const preparedTable = tf.tidy(() => head.headArgmax(h, 3).arraySync() as number[][]);
      head.release();
      head.release();
      expect(preparedTable).toEqual(table.map((r) => r.slice(0, 3)));
      tf.dispose([h, chained, tokens]);
    });
    model.dispose();
  });

  it('a row with a non-finite state is -1 in every column; bad arguments name the field, with no leak', async () => {
    const { model, head } = build();
    await expectNoLeak(() => {
      const h = tf.tidy(() => tf.concat([tf.slice(states(model), [0, 0], [2, D]), tf.fill([1, D], Number.NaN)]) as tf.Tensor2D);
      const table = tf.tidy(() => head.headArgmax(h, K).arraySync() as number[][]);
      expect(table[2]).toEqual([-1, -1, -1, -1]);
      expect(table[0]!.every((t) => t >= 0)).toBe(true);
      h.dispose();
    });
    const h = states(model);
    await expectThrowNoLeak(() => head.headArgmax(h, K + 1), `SequentialMtpHead.headArgmax: n must be a positive integer at most ${K}, but got ${K + 1}.`);
    await expectThrowNoLeak(() => head.logits(h, [0, K]), `SequentialMtpHead.logits: offsets[1] must be an integer in [0, ${K - 1}], but got ${K}.`);
    h.dispose();
    expect(() => sequentialMtpHead({ numHeads: 1, vocabSize: V, mlpHiddenSize: 8, tiedTo: 'x' })).toThrow('SequentialMtpHead: numHeads must be an integer in [2, 64], but got 1.');
    expect(() => sequentialMtpHead({ numHeads: 2, vocabSize: V, mlpHiddenSize: 1e9, tiedTo: 'x' })).toThrow('SequentialMtpHead: mlpHiddenSize must be a positive integer at most 65536, but got 1000000000.');
    const untied = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 32, mtpHeads: 1, tiedEmbeddings: false });
    await expectThrowNoLeak(
      async () => withSequentialHeads(untied, K, 8),
      `withSequentialHeads: base must tie its unembedding to the token embedding (sequential modules read that embedding), but got "mtp_transformer".`,
    );
    untied.dispose();
    model.dispose();
  });

  it('decodes through CachedTransformer (its chain is the draft), and round-trips through save/load with the same outputs', async () => {
    const { model, head } = build();
    const cached = new CachedTransformer(model);
    expect(cached.numHeads).toBe(K);
    const h = cached.forward(IDS); // the KV cache it fills lives until dispose
    await expectNoLeak(() => {
      const fromCached = tf.tidy(() => cached.headLogits(h, [0, 1, 2, 3]).arraySync());
      const direct = tf.tidy(() => head.logits(h, [0, 1, 2, 3]).arraySync());
      expect(fromCached).toEqual(direct);
    });
    h.dispose();
    cached.dispose();
    const artifacts = await saveToMemory(model);
    const loaded = await loadFromMemory(artifacts);
    const input = tf.tensor2d(IDS, [1, IDS.length], 'int32');
    const [a, b] = [model.predict(input) as tf.Tensor, loaded.predict(input) as tf.Tensor];
    expect(b.shape).toEqual([1, IDS.length, K, V]);
    expect(await b.data()).toEqual(await a.data());
    tf.dispose([input, a, b]);
    loaded.dispose();
    model.dispose();
  });
});
