/**
 * Speculative sampling is lossless: the first three tokens sampled by `speculativeDecode`
 * (acceptance 'sampling') follow the exact joint distribution of ordinary sampling from
 * offset 0, computed in closed form on a Markov table model. Token 2 is where the rule acts (it
 * is offset 1's draft, verified against offset 0 after token 1); token 3 is the bonus token when
 * that draft was kept (the last row of the verifier's block), else the next step's verified draft.
 *
 * The rule itself is tested exactly, uniform by uniform, in acceptance.test.ts; these are the
 * end-to-end checks of each decoder that samples: one setting where temperature, top-k and
 * top-p all change some row of p (the transform itself is checked exactly below).
 *
 * Test: Pearson chi-square over the V³ cells, rejected above the 0.999 quantile of χ²(cells − 1).
 * The seeds are fixed (0 … N − 1), so each run is deterministic: a correct implementation passes
 * every time, and the margin to the threshold is what a change of sampler would have to keep.
 * Power: N is computed, the fewest draws at which each modelled bug reaches in expectation a
 * chi-square of 4× the threshold — for speculative sampling, resampling from p instead of
 * norm(max(0, p − q)) after a rejection and drawing the bonus token from the wrong row.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { MASKED_LOGIT } from '../../src/internal/draft_vocab.js';
import { toProbabilities } from '../../src/decoding/distributions.js';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { useCpu } from '../helpers/backend.js';
import { TableModel } from '../helpers/toy_models.js';

beforeAll(useCpu);

const V = 4;
/** 0.999 quantiles of χ² by degrees of freedom (cells with nonzero probability − 1), from scipy.stats.chi2.ppf. */
const CHI2_999: Record<number, number> = { 24: 51.18, 63: 103.44 };
/** A bug must reach this many thresholds in expectation (noncentral χ² mean − df ≥ 4× the threshold). */
const POWER = 4;

// Offset 0 (p) and offset 1 (q) logits per previous token; q deliberately unlike p.
const T0 = [
  [1.0, 0.2, -0.5, 0.1],
  [-0.3, 1.2, 0.4, -1.0],
  [0.5, -0.2, 0.9, 0.0],
  [0.0, 0.3, -0.4, 1.1],
];
const T1 = [
  [-1.0, 1.5, 0.3, -0.2],
  [1.3, -0.8, 0.0, 0.6],
  [-0.4, 0.2, -1.1, 1.4],
  [0.9, 0.9, -0.9, -0.9],
];

interface Setting {
  temperature: number;
  topK: number;
  topP: number;
}

/** Temperature, top-k and top-p each change a row of p: top-k alone cuts row 2, top-p alone row 1. */
const SETTING: Setting = { temperature: 0.7, topK: 3, topP: 0.9 };

/** softmax(logits / T) restricted to the top-k, then to the nucleus: the most likely tokens while the mass before them is < topP. */
function dist(logits: number[], { temperature, topK, topP }: Setting): number[] {
  const kth = [...logits].sort((a, b) => b - a)[topK - 1];
  const e = logits.map((l) => (l >= kth ? Math.exp(l / temperature) : 0));
  const z = e.reduce((a, b) => a + b, 0);
  const p = e.map((x) => x / z);
  const sorted = [...p].sort((a, b) => b - a);
  let before = 0;
  let floor = 1;
  for (const x of sorted) {
    if (before >= topP) break;
    floor = x;
    before += x;
  }
  const kept = p.map((x) => (x >= floor ? x : 0));
  const mass = kept.reduce((a, b) => a + b, 0);
  return kept.map((x) => x / mass);
}

/** Pearson's statistic over the cells of nonzero probability; a count in a zero cell is an outright failure. */
function chiSquare(counts: number[], expected: number[]): number {
  const N = counts.reduce((a, b) => a + b, 0);
  counts.forEach((c, i) => {
    if (expected[i] === 0) expect(c, `cell ${i} has probability 0`).toBe(0);
  });
  return counts.reduce((s, c, i) => (expected[i] > 0 ? s + (c - N * expected[i]) ** 2 / (N * expected[i]) : s), 0);
}

/** Pearson's divergence of `wrong` from `exact`: a sampler of law `wrong` reaches N times this in expectation (above df). */
const divergence = (wrong: number[], exact: number[]): number => wrong.reduce((s, w, i) => (exact[i] > 0 ? s + (w - exact[i]) ** 2 / exact[i] : s), 0);

/** The fewest draws at which every bug reaches POWER × threshold in expectation. */
const drawsFor = (threshold: number, exact: number[], bugs: number[][]): number => Math.ceil((POWER * threshold) / Math.min(...bugs.map((b) => divergence(b, exact))));

/** The joint P(t1, t2, t3) over the V³ cells, from P(t3 | t1, t2) given per path. */
const cells = (f: (t1: number, t2: number, t3: number) => number): number[] =>
  Array.from({ length: V ** 3 }, (_, i) => f(Math.floor(i / V ** 2), Math.floor(i / V) % V, i % V));

const overlap = (p: number[], q: number[]) => p.map((pi, i) => Math.min(pi, q[i]));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Counts the first three tokens of `run(seed)` over seeds 0 … N − 1. */
async function countFirstThree(N: number, run: (seed: number) => Promise<{ tokens: number[] }>): Promise<number[]> {
  const counts = new Array<number>(V ** 3).fill(0);
  for (let seed = 0; seed < N; seed++) {
    const r = await run(seed);
    counts[(r.tokens[0] * V + r.tokens[1]) * V + r.tokens[2]]++;
  }
  return counts;
}

it.each([
  { temperature: 1, topK: V, topP: 1 },
  SETTING,
  { temperature: 1, topK: V, topP: 0.8 },
  { temperature: 1, topK: V, topP: 0.5 },
])('the probabilities the decoders sample from are the closed form the tests use: %j', (setting) => {
  const got = tf.tidy(() => toProbabilities(tf.tensor2d([...T0, ...T1]), setting).arraySync());
  [...T0, ...T1].forEach((row, r) => dist(row, setting).forEach((x, t) => expect(got[r]![t], `row ${r}, token ${t}`).toBeCloseTo(x, 6)));
});

describe(`first three tokens, temperature ${SETTING.temperature}, topK ${SETTING.topK}, topP ${SETTING.topP}`, () => {
  const prompt = [2];
  const p = (token: number) => dist(T0[token], SETTING); // offset 0 after `token`
  const q = (token: number) => dist(T1[token], SETTING); // offset 1 after `token` (drafts the token after next)
  const p1 = p(prompt[0]);
  const exact = cells((t1, t2, t3) => p1[t1] * p(t1)[t2] * p(t2)[t3]);
  const threshold = CHI2_999[exact.filter((x) => x > 0).length - 1];

  // Token 2 is offset 1's draft from the prompt (q after the prompt): kept with mass min(p, q).
  const draft = q(prompt[0]);
  // Bug 1: after a rejection, resample from p (token 2), and likewise for token 3's own draft (q after t1).
  const resampleBug = cells((t1, t2, t3) => {
    const kept = overlap(p(t1), draft);
    const third = overlap(p(t2), q(t1));
    const thirdAfterReject = third[t3] + (1 - sum(third)) * p(t2)[t3];
    return p1[t1] * (kept[t2] * p(t2)[t3] + (1 - sum(kept)) * p(t1)[t2] * thirdAfterReject);
  });
  // Bug 2: the bonus token (token 3 after a kept draft) drawn from the row before the last (p after t1).
  const bonusRowBug = cells((t1, t2, t3) => {
    const kept = overlap(p(t1), draft);
    return p1[t1] * (kept[t2] * p(t1)[t3] + (p(t1)[t2] - kept[t2]) * p(t2)[t3]);
  });
  const N = drawsFor(threshold, exact, [resampleBug, bonusRowBug]);

  it(`speculative sampling matches the exact distribution (chi-square over ${N} seeds, its power computed)`, async () => {
    expect(threshold).toBeDefined();
    for (const bug of [resampleBug, bonusRowBug]) expect(sum(bug)).toBeCloseTo(1, 9);
    const model = new TableModel([T0, T1]);
    const counts = await countFirstThree(N, (seed) => speculativeDecode(model, prompt, { acceptance: 'sampling', maxNewTokens: 3, ...SETTING, seed, draftLength: 1 }));
    model.dispose();
    expect(chiSquare(counts, exact)).toBeLessThan(threshold);
  });

  // Ordinary sampling's bugs: the setting not applied (plain softmax), and each token drawn from the row before its own.
  const plain = (token: number) => dist(T0[token], { temperature: 1, topK: V, topP: 1 });
  const unsetBug = cells((t1, t2, t3) => plain(prompt[0])[t1] * plain(t1)[t2] * plain(t2)[t3]);
  const staleRowBug = cells((t1, t2, t3) => p1[t1] * p1[t2] * p(t1)[t3]);
  const ordinaryN = drawsFor(threshold, exact, [unsetBug, staleRowBug]);

  it(`ordinary sampling (greedyDecode with temperature) matches the same distribution (chi-square over ${ordinaryN} seeds)`, async () => {
    const model = new TableModel([T0, T1]);
    const counts = await countFirstThree(ordinaryN, (seed) => greedyDecode(model, prompt, { maxNewTokens: 3, ...SETTING, seed }));
    model.dispose();
    expect(chiSquare(counts, exact)).toBeLessThan(threshold);
  });
});

it('a seed reproduces a sampled run; another seed changes it', async () => {
  const model = new TableModel([T0, T1]);
  const run = (seed: number) => speculativeDecode(model, [0], { acceptance: 'sampling', maxNewTokens: 30, seed, draftLength: 1 }); // 'auto' sizes steps by timing: a fixed length reproduces
  const a = await run(7);
  const b = await run(7);
  const c = await run(8);
  expect(b.tokens).toEqual(a.tokens);
  expect(c.tokens).not.toEqual(a.tokens);
  model.dispose();
});

/**
 * A table model whose draft offset proposes from a subset of the vocabulary (`draftVocab`): its
 * offset-1 logits are `MASKED_LOGIT` outside the subset, as a head with a draft vocabulary gives.
 */
class SubsetTable extends TableModel {
  constructor(tables: number[][][], readonly draftVocab: readonly number[]) {
    super(tables);
  }
  override headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    const keep = tf.tensor1d(Array.from({ length: this.vocabSize }, (_, t) => (this.draftVocab.includes(t) ? 1 : 0)), 'bool');
    return tf.tidy(() => {
      const all = super.headLogits(states, offsets); // [m, o, V]
      const drafting = tf.reshape(tf.tensor1d(offsets.map((j) => (j > 0 ? 1 : 0)), 'bool'), [1, offsets.length, 1]); // [1, o, 1]
      const masked = tf.logicalAnd(drafting, tf.logicalNot(tf.reshape(keep, [1, 1, -1]))); // [1, o, V]
      return tf.where(masked, tf.fill(all.shape, MASKED_LOGIT), all) as tf.Tensor3D;
    });
  }
}

describe('a draft vocabulary that leaves out likely tokens', () => {
  // After the prompt (token 2), q favours tokens 3 and 1 and p token 2: the subset {0, 2} leaves out q's likely tokens, and token 3 (likely under p after 3) is reached through the residual only.
  const setting = { temperature: 1, topK: V, topP: 1 };
  const subset = [0, 2];
  const prompt = [2];
  const p = (token: number) => dist(T0[token], setting);
  const qSub = (token: number) => {
    const q = dist(T1[token], setting).map((x, t) => (subset.includes(t) ? x : 0));
    const z = sum(q);
    return q.map((x) => x / z); // q renormalised over the subset: what the drafts are drawn from
  };
  const p1 = p(prompt[0]);
  const exact = cells((t1, t2, t3) => p1[t1] * p(t1)[t2] * p(t2)[t3]);
  const threshold = CHI2_999[exact.filter((x) => x > 0).length - 1];

  // The bug the subset invites: accepting with the unrenormalised q(x) (as if the masked tokens still held their mass).
  // Its (t1, t2) marginal alone is far from exact — and a chi-square over the V³ cells is at least as large in
  // expectation (Pearson's divergence never grows when cells are merged), so N is computed from the marginal.
  const marginal = (joint: (t1: number, t2: number) => number) => Array.from({ length: V * V }, (_, i) => joint(Math.floor(i / V), i % V));
  const draft = qSub(prompt[0]);
  const full = dist(T1[prompt[0]], setting);
  const buggy = marginal((t1, t2) => {
    const row = p(t1);
    const accept = draft.map((d, x) => d * Math.min(1, row[x] / full[x])); // accepted with min(1, p/q_full)
    const residual = row.map((x, t) => Math.max(0, x - full[t]));
    const z = sum(residual);
    return p1[t1] * (accept[t2] + (1 - sum(accept)) * (z > 0 ? residual[t2] / z : row[t2]));
  });
  const N = drawsFor(threshold, marginal((t1, t2) => p1[t1] * p(t1)[t2]), [buggy]);

  it(`speculative sampling stays exact (chi-square over ${N} seeds, its power computed), drafts only ever from the subset`, async () => {
    expect(threshold).toBeDefined();
    const model = new SubsetTable([T0, T1], subset);
    let keptOutside = 0;
    const counts = await countFirstThree(N, async (seed) => {
      const r = await speculativeDecode(model, prompt, { acceptance: 'sampling', maxNewTokens: 3, ...setting, seed, draftLength: 1 });
      r.tokens.forEach((t, i) => (keptOutside += r.sources[i]! > 0 && !subset.includes(t) ? 1 : 0));
      return r;
    });
    model.dispose();
    expect(keptOutside).toBe(0); // no kept draft outside the draft vocabulary
    expect(chiSquare(counts, exact)).toBeLessThan(threshold);
  });
});
