/**
 * A new head is exactly the identity: every offset-head kind, alone and inside a MultiTokenHead,
 * returns its input bit for bit until trained (the fixtures elsewhere randomise every weight, so
 * only this file would catch a kind initialised randomly). The first factor of `lowRank` and
 * `mlp` is random (so both factors get gradients); the test checks that too.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { lightweightOffsetHead, multiTokenHead } from '../../src/index.js';
import { type OffsetHeadKind } from '../../src/layers/args.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);

const D = 6;
const KINDS: OffsetHeadKind[] = ['identity', 'linear', 'residual', 'lowRank', 'mlp'];

describe.each(KINDS)('a new %s head', (kind) => {
  it('returns its input exactly', async () => {
    const head = lightweightOffsetHead({ kind, rank: 2, headHiddenSize: 5 });
    const x = tf.randomNormal([2, 3, D], 0, 2, 'float32', 4); // [2, 3, D]
    head.build(x.shape); // creates the weights, so that the leak check below sees only apply
    const y = await expectNoLeak(() => {
      const out = head.apply(x) as tf.Tensor; // [2, 3, D]
      return { out, data: out.dataSync() };
    });
    expect(Array.from(y.data)).toEqual(Array.from(x.dataSync()));
    // Random first factors: a zero W1 / A would give no gradient to either factor.
    const random = head.weights.filter((w) => /\/(down|w1)$/.test(w.originalName) || /^(down|w1)$/.test(w.originalName));
    expect(random.length).toBe(kind === 'lowRank' || kind === 'mlp' ? 1 : 0);
    for (const w of random) expect(Array.from(w.read().dataSync()).some((v) => v !== 0)).toBe(true);
    x.dispose();
  });
});

it('every offset of a new MultiTokenHead gives offset 0’s logits', () => {
  const head = multiTokenHead({ numHeads: 5, vocabSize: 9, headKind: ['linear', 'residual', 'lowRank', 'mlp'], rank: 2, headHiddenSize: 4 });
  const x = tf.randomNormal([1, 4, D], 0, 1, 'float32', 8); // [1, 4, D]
  const logits = head.apply(x) as tf.Tensor; // [1, 4, 5, 9]
  const rows = tf.unstack(logits, 2).map((t) => Array.from(t.dataSync())); // 5 × [1, 4, 9]
  for (let j = 1; j < 5; j++) expect(rows[j], `offset ${j} (${head.headKinds[j]})`).toEqual(rows[0]);
  tf.dispose([x, logits]);
});
