/**
 * The one draft-head contract (src/layers/draft_head.ts), on both head classes (cpu): every kind
 * is found by `findDraftHead` and describes itself; `trainingLogits` is teacher forced (sequential
 * module j fed the true token at t + j, not its own chain) and differentiable in the draft
 * weights only; `fit` on a model with sequential modules trains them teacher forced (the model
 * feeds its input ids to the head); every head initializer follows the configured seed; bad
 * arguments are named; nothing leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DraftHeadLayer, findDraftHead, isDraftHeadLayer } from '../../src/layers/draft_head.js';
import type { MultiTokenHead } from '../../src/layers/multi_token_head.js';
import type { SequentialMtpHead } from '../../src/layers/sequential_mtp.js';
import { withSequentialHeads } from '../../src/models/draft_heads.js';
import { createTransformer } from '../../src/models/index.js';
import { multiTokenLossFunction, multiTokenTargets, oneHotMultiTokenTargets } from '../../src/training/index.js';
import { freezeAllButDraftHeads } from '../../src/training/freeze.js';
import { useCpu } from '../helpers/backend.js';
import { randomizeWeights } from '../helpers/layers.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';

const V = 40;
const D = 16;
const K = 4;
const IDS = [3, 7, 1, 9, 12, 5, 30, 2];

function base(seed = 3): LayersModel {
  return createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 32, mtpHeads: 1, seed });
}

function sequential(seed = 0): { model: LayersModel; head: SequentialMtpHead } {
  const model = withSequentialHeads(base(), K, 8, null, seed);
  const head = findDraftHead('test', model) as unknown as SequentialMtpHead;
  return { model, head };
}

/** Final hidden states `[n, D]` of `ids`. */
function states(model: LayersModel, ids: number[]): tf.Tensor2D {
  return tf.tidy(() => tf.squeeze(model.getLayer('transformer').apply(tf.tensor2d(ids, [1, ids.length], 'int32')) as tf.Tensor, [0]) as tf.Tensor2D);
}

/** The tokens at t+1…t+k−1 of each position t with all of them inside `ids`, `[m, k−1]`. */
function nextTokens(ids: number[]): number[][] {
  return ids.slice(0, ids.length - (K - 1)).map((_, t) => ids.slice(t + 1, t + K));
}

/** Both head classes satisfy the contract (checked by the compiler: `npm run typecheck` covers the tests). */
export const satisfiesContract: (head: MultiTokenHead | SequentialMtpHead) => DraftHeadLayer = (head) => head;

const values = (model: LayersModel) => model.getLayer('mtp_head').weights.map((w) => Array.from(w.read().dataSync()));

describe('the draft-head contract', () => {
  beforeAll(useCpu);

  it('both head classes implement it and describe their draft offsets; the heads of a config are its seed’s', async () => {
    const mlp = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 32, mtpHeads: K, headKind: 'mlp', headHiddenSize: 8, seed: 1 });
    const again = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 32, mtpHeads: K, headKind: 'mlp', headHiddenSize: 8, seed: 1 });
    const other = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 32, mtpHeads: K, headKind: 'mlp', headHiddenSize: 8, seed: 2 });
    const head = findDraftHead('test', mlp);
    expect(isDraftHeadLayer(head)).toBe(true);
    expect(head.draftSpec()).toEqual({ kind: 'mlp', headHiddenSize: 8, activation: 'swish' });
    expect(head.draftWeights().map((w) => w.name)).toEqual([1, 2, 3].flatMap((j) => ['w1', 'b1', 'w2', 'b2'].map((n) => `offset${j}/${n}`)));
    expect(values(again)).toEqual(values(mlp));
    expect(values(other)).not.toEqual(values(mlp));
    const w1 = head.draftWeights().filter((w) => w.name.endsWith('/w1')).map((w) => Array.from(w.variable.read().dataSync()));
    expect(w1[0]).not.toEqual(w1[1]); // each offset its own stream
    [mlp, again, other].forEach((m) => m.dispose());

    const a = sequential(7);
    const b = sequential(7);
    const c = sequential(8);
    expect(a.head.draftSpec()).toEqual({ kind: 'sequential', headHiddenSize: 8, activation: 'swish' });
    expect(a.head.draftWeights().map((w) => w.name).slice(0, 7)).toEqual(['norm_state', 'norm_token', 'proj', 'w1', 'b1', 'w2', 'b2'].map((n) => `module1/${n}`));
    expect(values(b.model)).toEqual(values(a.model));
    expect(values(c.model)).not.toEqual(values(a.model));
    [a, b, c].forEach((x) => x.model.dispose());
  });

  it('sequential trainingLogits is teacher forced: module j sees the true token at t + j, not its own draft', async () => {
    const { model, head } = sequential();
    randomizeWeights({ weights: head.weights }, 5, 0.4);
    await expectNoLeak(() => {
      const h = states(model, IDS);
      const m = IDS.length - (K - 1);
      const rows = tf.slice(h, [0, 0], [m, D]) as tf.Tensor2D;
      const truth = tf.tensor2d(nextTokens(IDS), [m, K - 1], 'int32');
      const forced = tf.tidy(() => head.trainingLogits(rows, truth).arraySync() as number[][][]); // [m, k−1, V]
      // the reference: each module by hand, fed the true tokens
      const reference = tf.tidy(() => {
        const e = head.unembedding.matrix();
        let s = rows;
        const columns: tf.Tensor2D[] = [];
        for (let j = 1; j < K; j++) {
          s = head.moduleState(j, s, tf.gather(e, tf.squeeze(tf.slice(truth, [0, j - 1], [-1, 1]), [1])) as tf.Tensor2D);
          columns.push(tf.matMul(s, e, false, true));
        }
        return tf.stack(columns, 1).arraySync() as number[][][];
      });
      forced.flat(2).forEach((x, i) => expect(x).toBeCloseTo(reference.flat(2)[i]!, 4));
      // and it is not the argmax chain: fed its own drafts, module 2 would see other tokens
      const chain = tf.tidy(() => head.headArgmax(rows, K).arraySync() as number[][]);
      expect(chain.some((r, i) => r[1] !== nextTokens(IDS)[i]![0])).toBe(true);
      tf.dispose([h, rows, truth]);
    });
    model.dispose();
  });

  it('decodeFeed is what a decode feeds: sequential modules their own chain from the true first token, parallel heads the true tokens', async () => {
    const { model, head } = sequential();
    randomizeWeights({ weights: head.weights }, 5, 0.4);
    const mlp = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 32, mtpHeads: K, headKind: 'mlp', headHiddenSize: 8, seed: 1 });
    await expectNoLeak(() => {
      const h = states(model, IDS);
      const m = IDS.length - (K - 1);
      const rows = tf.slice(h, [0, 0], [m, D]) as tf.Tensor2D;
      const chain = tf.tidy(() => head.headArgmax(rows, K).arraySync() as number[][]); // [m, K]: offset 0's token, then the decode's drafts
      // the true tokens, but at t+1 offset 0's own choice (a decode's verified token)
      const truth = tf.tensor2d(chain.map((r, i) => [r[0]!, ...nextTokens(IDS)[i]!.slice(1)]), [m, K - 1], 'int32');
      const fed = tf.tidy(() => head.decodeFeed(rows, truth).arraySync() as number[][]);
      expect(fed).toEqual(chain.map((r) => r.slice(0, K - 1))); // module j + 1 is fed module j's draft, as decoding feeds it
      expect(fed.some((r, i) => r.slice(1).join() !== nextTokens(IDS)[i]!.slice(1).join())).toBe(true); // not the text
      const parallel = tf.tidy(() => findDraftHead('test', mlp).decodeFeed(rows, truth).arraySync());
      expect(parallel).toEqual(truth.arraySync()); // parallel heads read no tokens
      tf.dispose([h, rows, truth]);
    });
    model.dispose();
    mlp.dispose();
  });

  it('the model feeds its ids to sequential modules: predict is teacher forced inside the window, fit trains the modules on true tokens', async () => {
    const { model, head } = sequential();
    randomizeWeights({ weights: head.weights }, 5, 0.4);
    const x = tf.tensor2d(IDS, [1, IDS.length], 'int32');
    const h = states(model, IDS);
    const m = IDS.length - (K - 1);
    const predicted = tf.tidy(() => tf.slice(model.predict(x) as tf.Tensor, [0, 0, 1, 0], [1, m, K - 1, V]).arraySync() as number[][][][]); // [1, m, k−1, V]
    const forced = tf.tidy(() => head.trainingLogits(tf.slice(h, [0, 0], [m, D]) as tf.Tensor2D, tf.tensor2d(nextTokens(IDS), [m, K - 1], 'int32')).arraySync() as number[][][]);
    predicted[0]!.flat(2).forEach((v, i) => expect(v).toBeCloseTo(forced.flat(2)[i]!, 4));

    const before = tf.memory().numTensors;
    const freeze = freezeAllButDraftHeads(model);
    model.compile({ optimizer: tf.train.adam(0.05), loss: multiTokenLossFunction() });
    const batch = tf.tensor2d([IDS, [...IDS].reverse()], [2, IDS.length], 'int32');
    const y = tf.tidy(() => oneHotMultiTokenTargets(multiTokenTargets(batch, K), V)); // [2, 8, k, V]
    const offset0 = tf.tidy(() => tf.slice(model.predict(batch) as tf.Tensor, [0, 0, 0, 0], [-1, -1, 1, -1]).arraySync());
    const lossBefore = (model.evaluate(batch, y) as tf.Scalar).dataSync()[0]!;
    await model.fit(batch, y, { epochs: 30, verbose: 0 });
    const lossAfter = (model.evaluate(batch, y) as tf.Scalar).dataSync()[0]!;
    expect(lossAfter).toBeLessThan(lossBefore);
    expect(tf.tidy(() => tf.slice(model.predict(batch) as tf.Tensor, [0, 0, 0, 0], [-1, -1, 1, -1]).arraySync())).toEqual(offset0);
    freeze.restore();
    tf.dispose([x, h, batch, y]);
    (model.optimizer as tf.Optimizer).dispose();
    expect(tf.memory().numTensors).toBeGreaterThanOrEqual(before - 1);
    model.dispose();
  });

  it('bad arguments name the function, the argument and the value, leaving nothing behind', async () => {
    const { model, head } = sequential();
    const mlp = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 32, mtpHeads: K, headKind: 'mlp', headHiddenSize: 8 });
    const h = tf.zeros([2, D]) as tf.Tensor2D;
    const wrong = tf.zeros([2, K - 1], 'float32') as tf.Tensor2D;
    const rank3 = tf.zeros([2, 1, D]) as unknown as tf.Tensor2D;
    const next = tf.tensor2d([[1, 2, 3], [4, 5, 6]], [2, K - 1], 'int32');
    for (const [name, layer] of [['SequentialMtpHead', head], ['MultiTokenHead', findDraftHead('test', mlp)]] as const) {
      await expectNoLeak(() => {
        const out = layer.trainingLogits(h, next); // success: only the result is left, the caller's (disposed by the helper)
        expect(out.shape).toEqual([2, K - 1, V]);
        return out;
      });
      await expectThrowNoLeak(() => layer.trainingLogits(h, wrong), `${name}.trainingLogits: nextTokens must be an int32 tensor [2, 3] (the tokens at t+1…t+k−1 of each row), but got "float32 [2, 3]".`);
      await expectThrowNoLeak(() => layer.trainingLogits(rank3, wrong), `${name}.trainingLogits: states must be a 2-D tensor [m, D], but got [2, 1, 16].`);
      await expectNoLeak(() => {
        const out = layer.decodeFeed(h, next);
        expect(out.shape).toEqual([2, K - 1]);
        return out;
      });
      await expectThrowNoLeak(() => layer.decodeFeed(h, wrong), `${name}.decodeFeed: nextTokens must be an int32 tensor [2, 3] (the tokens at t+1…t+k−1 of each row), but got "float32 [2, 3]".`);
    }
    expect(() => findDraftHead('myTrainer', { name: 'plain', layers: [] })).toThrow("myTrainer: model must have a MultiTokenHead or a SequentialMtpHead layer, but model 'plain' has layers [].");
    expect(() => findDraftHead('myTrainer', 'model.json')).toThrow('myTrainer: model must be a tf.LayersModel with a MultiTokenHead or a SequentialMtpHead, but got "model.json".');
    expect(() => withSequentialHeads(base(), K, 8, null, 1.5)).toThrow('withSequentialHeads: seed must be an integer in [-2147483648, 2147483647], but got 1.5.');
    tf.dispose([h, wrong, rank3, next]);
    model.dispose();
    mlp.dispose();
  });
});
