/** The acceptance rules on hand-made logits, and the commit logic on a hand-made model. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyAccept, leadingTrue, samplingAccept, typicalAccept } from '../../src/decoding/acceptance.js';
import { toProbabilities } from '../../src/decoding/distributions.js';
import { blockwiseDecode, greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { TableModel } from '../helpers/toy_models.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);


/** Rows of logits whose argmax is the given token (V = 6). */
const peaked = (tokens: number[], V = 6): tf.Tensor2D =>
  tf.tensor2d(tokens.map((t) => Array.from({ length: V }, (_, i) => (i === t ? 5 : i * 0.1))));

/** Runs a rule inside `tidy` and reads back `[accepted, next]`, asserting that nothing leaked. */
function verdict(f: () => { accepted: tf.Scalar; next: tf.Scalar }): Promise<[number, number]> {
  return expectNoLeak(async () => {
    const packed = tf.tidy(() => {
      const v = f();
      return tf.stack([v.accepted, v.next]);
    });
    const out = Array.from(await packed.data());
    packed.dispose();
    return [out[0], out[1]] as [number, number];
  });
}

describe('greedyAccept', () => {
  it.each([
    ['all accepted', [1, 2, 3], [1, 2, 3, 4], [3, 4]],
    ['none accepted', [0, 2, 3], [1, 2, 3, 4], [0, 1]],
    ['mismatch in the middle', [1, 5, 3], [1, 2, 3, 4], [1, 2]],
    ['no drafts', [], [4], [0, 4]],
  ])('%s: drafts %j against argmax %j → [accepted, next] %j', async (_, drafts, best, expected) => {
    const got = await verdict(() => greedyAccept(peaked(best), tf.tensor1d(drafts, 'int32')));
    expect(got).toEqual(expected);
  });

  it('leadingTrue counts only the leading run', async () => {
    const n = await expectNoLeak(async () => {
      const t = tf.tidy(() => leadingTrue(tf.tensor1d([1, 1, 0, 1], 'bool')));
      const out = await t.data();
      t.dispose();
      return out;
    });
    expect(n).toEqual(new Int32Array([2]));
  });
});

describe('samplingAccept', () => {
  const probs = (rows: number[][]) => tf.tensor2d(rows);
  it('keeps every draft when p == q (ratio 1), then samples the bonus from the last row', async () => {
    const p = [[0.5, 0.5, 0], [0.2, 0.8, 0], [0, 0, 1]];
    const got = await verdict(() => samplingAccept(probs(p), tf.tensor1d([0, 1], 'int32'), probs(p.slice(0, 2)), tf.tensor1d([0.99, 0.99, 0.3])));
    expect(got).toEqual([2, 2]);
  });

  it('rejects a draft p gives zero probability and resamples from norm(max(0, p − q))', async () => {
    // draft 2 has q = 0.9, p = 0: always rejected; residual = max(0, [0.5,0.5,0] − [0.05,0.05,0.9]) ∝ [1, 1, 0]
    const got = await verdict(() =>
      samplingAccept(probs([[0.5, 0.5, 0], [1, 0, 0]]), tf.tensor1d([2], 'int32'), probs([[0.05, 0.05, 0.9]]), tf.tensor1d([0, 0.75])),
    );
    expect(got).toEqual([0, 1]);
  });

  it('accepts with probability p/q: u below the ratio keeps, u above rejects', async () => {
    const p = probs([[0.3, 0.7], [0.5, 0.5]]);
    const q = probs([[0.6, 0.4]]); // draft 0: ratio 0.5
    const keep = await verdict(() => samplingAccept(p, tf.tensor1d([0], 'int32'), q, tf.tensor1d([0.49, 0.1])));
    const reject = await verdict(() => samplingAccept(p, tf.tensor1d([0], 'int32'), q, tf.tensor1d([0.51, 0.1])));
    expect(keep).toEqual([1, 0]);
    expect(reject).toEqual([0, 1]); // residual ∝ [0, 0.3]: only token 1 possible
    tf.dispose([p, q]);
  });
});

describe('typicalAccept', () => {
  const s = { temperature: 1, topK: 20, topP: 1 };
  it('keeps a plausible draft and stops at an implausible one (ε = 0.09, δ = 0.3)', async () => {
    const logits = tf.tensor2d([[2, 2, -9], [2, 2, -9], [0, 0, 0]]); // p ≈ [0.5, 0.5, 0]: H = ln 2, bar = min(0.09, 0.15)
    const got = await verdict(() => typicalAccept(logits, tf.tensor1d([1, 2], 'int32'), { temperature: 1, topK: 3, topP: 1 }, 0.09, 0.3, tf.tensor1d([0.7])));
    expect(got).toEqual([1, 1]); // p(1) = 0.5 > 0.09 kept; p(2) ≈ 0 < 0.09 rejected; next sampled from row 1 (u = 0.7 → token 1)
    logits.dispose();
  });

  it('a high-entropy row lowers the bar: 20 equal logits (p = 0.05 < ε) keep any draft, as δ·exp(−H) = 0.015', async () => {
    const flat = new Array<number>(20).fill(0);
    const got = await verdict(() => typicalAccept(tf.tensor2d([flat, flat]), tf.tensor1d([13], 'int32'), s, 0.09, 0.3, tf.tensor1d([0.5])));
    expect(got).toEqual([1, 10]); // kept; the bonus row is uniform, u = 0.5 → token 10
    // With ε alone (no entropy term, or its sign flipped: δ·exp(+H) = 6), p = 0.05 < 0.09 would reject it.
    const strict = await verdict(() => typicalAccept(tf.tensor2d([flat, flat]), tf.tensor1d([13], 'int32'), s, 0.04, 1, tf.tensor1d([0.5])));
    expect(strict).toEqual([1, 10]); // bar = min(0.04, 0.05): 0.05 > 0.04 kept
  });

  it('a low-entropy row: ε decides, the first implausible draft ends the block, next comes from its row', async () => {
    const peakedRow = (t: number) => Array.from({ length: 20 }, (_, i) => (i === t ? 8 : 0)); // p(t) ≈ 0.99, H small
    const rows = [peakedRow(3), peakedRow(5), peakedRow(7), peakedRow(9)];
    const all = await verdict(() => typicalAccept(tf.tensor2d(rows), tf.tensor1d([3, 5, 7], 'int32'), s, 0.09, 0.3, tf.tensor1d([0.5])));
    expect(all).toEqual([3, 9]); // every draft kept; next from the bonus row
    const first = await verdict(() => typicalAccept(tf.tensor2d(rows), tf.tensor1d([4, 5, 7], 'int32'), s, 0.09, 0.3, tf.tensor1d([0.5])));
    expect(first).toEqual([0, 3]); // draft 4 has p ≈ 3e-4: rejected at once, even though 5 and 7 would pass
  });
});

describe('toProbabilities with top-p (hand-made logits)', () => {
  // softmax([ln 2, 0, 0]) = [0.5, 0.25, 0.25] exactly in float32, so the mass before each token is exact too.
  const logits = [Math.log(2), 0, 0];
  const probs = (topP: number, temperature = 1) =>
    expectNoLeak(async () => {
      const t = tf.tidy(() => toProbabilities(tf.tensor2d([logits]), { temperature, topK: 3, topP }));
      const out = Array.from(await t.data());
      t.dispose();
      return out;
    });

  it('the logits give exact probabilities (the cases below rely on it)', async () => {
    expect(await probs(1)).toEqual([0.5, 0.25, 0.25]);
  });

  it.each([
    [0.5, [1, 0, 0]], // the mass before token 1 is 0.5, not < 0.5: token 0 alone (≤ would keep all three)
    [0.49, [1, 0, 0]],
    [0.51, [0.5, 0.25, 0.25]], // 0.5 < 0.51: token 1 kept, and token 2 ties with it (kept by value)
    [Number.MIN_VALUE, [1, 0, 0]], // rounds to 0 in float32, yet the top token is always kept
  ])('topP %d → %j', async (topP, expected) => {
    expect(await probs(topP)).toEqual(expected);
  });

  it('a nucleus over a skewed row keeps the most likely tokens until the mass before them reaches p', async () => {
    const out = await expectNoLeak(async () => {
      const t = tf.tidy(() => toProbabilities(tf.tensor2d([[3, 2, 1, 0]]), { temperature: 1, topK: 4, topP: 0.7 })); // p ≈ [.64, .24, .09, .03]
      const values = Array.from(await t.data());
      t.dispose();
      return values;
    });
    const e = [Math.exp(3), Math.exp(2)];
    expect(out[0]).toBeCloseTo(e[0] / (e[0] + e[1]), 6);
    expect(out[1]).toBeCloseTo(e[1] / (e[0] + e[1]), 6);
    expect(out.slice(2)).toEqual([0, 0]);
  });
});

/**
 * A counting model: after token a, offset j predicts a + 1 + j (mod V), with every offset right,
 * so every draft is accepted — unless `wrongOffset` makes that offset predict a wrong token.
 */
function countingModel(k: number, V: number, wrongOffset = -1): TableModel {
  const tables = Array.from({ length: k }, (_, j) =>
    Array.from({ length: V }, (_, a) => Array.from({ length: V }, (_, b) => (b === (a + 1 + j + (j === wrongOffset ? 1 : 0)) % V ? 10 : 0))),
  );
  return new TableModel(tables);
}

describe('commit logic on a counting model (k = 4)', () => {
  it('all drafts accepted: 4 tokens per verify step, sources 1,2,3 then the bonus 0', async () => {
    const model = countingModel(4, 50);
    const r = await expectNoLeak(() => speculativeDecode(model, [0], { maxNewTokens: 9 }));
    expect(r.tokens).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(r.sources).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0]);
    expect(r.stats.forwards).toBe(3); // prompt forward (1 token) + 2 verify steps (4 each)
    expect(r.stats.meanAcceptedLength).toBe(3);
    expect(r.stats.acceptanceRates).toEqual([1, 1, 1]);
    expect(r.finishReason).toBe('length');
    model.dispose();
  });

  it('a wrong offset 2: offset 1 kept, offset 2 rejected every step, the verifier corrects', async () => {
    const model = countingModel(4, 50, 2);
    const r = await expectNoLeak(() => speculativeDecode(model, [0], { maxNewTokens: 7 }));
    expect(r.tokens).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(r.sources).toEqual([0, 1, 0, 1, 0, 1, 0]);
    expect(r.stats.acceptanceRates).toEqual([1, 0, 0]);
    model.dispose();
  });

  it('a stop token inside an accepted block ends decoding there, stop token included', async () => {
    const model = countingModel(4, 50);
    const r = await expectNoLeak(() => speculativeDecode(model, [0], { maxNewTokens: 40, stopTokens: [6] }));
    expect(r.tokens).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.finishReason).toBe('stop');
    model.dispose();
  });

  it('maxNewTokens reached inside a block commits exactly maxNewTokens', async () => {
    const model = countingModel(4, 50);
    const r = await expectNoLeak(() => speculativeDecode(model, [0], { maxNewTokens: 6 }));
    expect(r.tokens).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.finishReason).toBe('length');
    // step 1 kept its 3 drafts and the bonus; step 2's drafts 6, 7, 8 were cut after 6: only 6 counts
    expect(r.stats.draftedPerOffset).toEqual([2, 1, 1]);
    expect(r.stats.acceptedPerOffset).toEqual([2, 1, 1]);
    expect([r.stats.drafted, r.stats.accepted]).toEqual([4, 4]);
    model.dispose();
  });

  it('statistics count only committed drafts: a stop token cuts a fully accepted block', async () => {
    const model = countingModel(4, 50);
    const r = await expectNoLeak(() => speculativeDecode(model, [0], { maxNewTokens: 40, stopTokens: [2] }));
    expect(r.tokens).toEqual([1, 2]);
    expect(r.stats.accepted).toBe(1); // drafts 2, 3, 4 were all right, but only 2 was committed
    expect(r.stats.drafted).toBe(1);
    expect(r.stats.acceptanceRates.slice(0, 1)).toEqual([1]);
    expect(r.stats.acceptanceRates.slice(1).every(Number.isNaN)).toBe(true);
    model.dispose();
  });

  it('blockwise statistics count only committed drafts: blockSize 3, 10 tokens → 6 drafts', async () => {
    const model = countingModel(4, 50);
    const r = await expectNoLeak(() => blockwiseDecode(model, [0], { maxNewTokens: 10, blockSize: 3 }));
    expect(r.tokens).toHaveLength(10);
    expect(r.sources).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
    expect([r.stats.drafted, r.stats.accepted]).toEqual([6, 6]);
    expect(r.stats.draftedPerOffset).toEqual([3, 3, 0]);
    model.dispose();
  });

  it('draftLength 1 drafts only offset 1', async () => {
    const model = countingModel(4, 50);
    const r = await expectNoLeak(() => speculativeDecode(model, [0], { maxNewTokens: 7, draftLength: 1 }));
    expect(r.tokens).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(r.stats.forwards).toBe(4);
    expect(r.stats.acceptanceRates[0]).toBe(1);
    expect(r.stats.acceptanceRates.slice(1).every(Number.isNaN)).toBe(true);
    model.dispose();
  });

  it('greedy decoding commits one token per forward', async () => {
    const model = countingModel(4, 50);
    const r = await expectNoLeak(() => greedyDecode(model, [0], { maxNewTokens: 5 }));
    expect(r.tokens).toEqual([1, 2, 3, 4, 5]);
    expect(r.stats.forwards).toBe(5);
    expect(r.stats.meanAcceptedLength).toBe(1);
    model.dispose();
  });
});
