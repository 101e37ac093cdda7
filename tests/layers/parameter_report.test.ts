/**
 * parameterReport: the closed form (k·V·D vs V·D + Σ lightweight) agrees with a built layer's
 * countParams and with MultiTokenHead.prototype.parameterReport.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatParameterReport, multiTokenHead, parameterReport } from '../../src/index.js';
import { type OffsetHeadKind } from '../../src/layers/args.js';
import { useCpu } from '../helpers/backend.js';

beforeAll(useCpu);

describe('parameterReport', () => {
  it.each([
    { k: 4, headKind: 'residual' as OffsetHeadKind, useBias: false },
    { k: 3, headKind: 'lowRank' as OffsetHeadKind, useBias: true },
    { k: 2, headKind: 'linear' as OffsetHeadKind, useBias: false },
    { k: 3, headKind: 'mlp' as OffsetHeadKind, useBias: false },
  ])('k=$k headKind=$headKind useBias=$useBias agrees with the built layer', ({ k, headKind, useBias }) => {
    const [V, D, r, H] = [50, 12, 3, 7];
    const report = parameterReport({ vocabSize: V, hiddenSize: D, numHeads: k, headKind, rank: r, headHiddenSize: H, useBias });
    const light = { identity: 0, linear: D * D + D, residual: D * D + D, lowRank: 2 * D * r, mlp: 2 * D * H + H + D }[headKind];
    expect(report.offsetHeads).toEqual([0, ...Array.from({ length: k - 1 }, () => light)]);
    expect(report.shared).toBe(V * D + (useBias ? V : 0) + (k - 1) * light);
    expect(report.separate).toBe(k * V * D + (useBias ? k * V : 0));
    expect(report.saved).toBe(report.separate - report.shared);
    expect(report.ratio).toBeCloseTo(report.separate / report.shared, 12);
    const head = multiTokenHead({ numHeads: k, vocabSize: V, headKind, rank: r, headHiddenSize: H, useBias });
    tf.dispose(head.apply(tf.zeros([1, 1, D])) as tf.Tensor);
    expect(head.countParams()).toBe(report.shared);
    expect(head.parameterReport()).toEqual(report);
    expect(formatParameterReport(report)).toContain(`| ${k} separate unembeddings | ${k}·${V}·${D}`);
  });

  it('a head larger than k separate projections is reported as more, not fewer', () => {
    const r = parameterReport({ vocabSize: 8, hiddenSize: 16, numHeads: 2, headKind: 'mlp', headHiddenSize: 64 });
    expect(r.saved).toBeLessThan(0);
    expect(formatParameterReport(r)).toContain(`${r.saved.toLocaleString('en-US')} (${(r.shared / r.separate).toFixed(2)}× more)`);
  });

  it('a tied head owns no V×D matrix but its report counts it once', async () => {
    const tfl = await import('@tensorflow/tfjs-layers');
    const emb = tfl.layers.embedding({ inputDim: 30, outputDim: 8 });
    tf.dispose(emb.apply(tf.zeros([1, 1], 'int32')) as tf.Tensor);
    const head = multiTokenHead({ numHeads: 3, vocabSize: 30, tiedTo: emb });
    tf.dispose(head.apply(tf.zeros([1, 1, 8])) as tf.Tensor);
    const report = parameterReport({ vocabSize: 30, hiddenSize: 8, numHeads: 3 });
    expect(head.countParams()).toBe(report.shared - 30 * 8);
    expect(head.parameterReport()).toEqual(report);
  });
});
