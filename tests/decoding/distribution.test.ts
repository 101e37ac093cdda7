/**
 * Speculative sampling is lossless: the first two tokens sampled by `speculativeDecode`
 * (acceptance 'sampling') follow the exact joint distribution of ordinary sampling from
 * offset 0, computed in closed form on a Markov table model. Token 2 is where the rule acts:
 * it is offset 1's draft, verified against offset 0 after token 1.
 *
 * Test: Pearson chi-square over the V² cells, rejected above the 0.999 quantile of χ²(V² − 1)
 * (so a correct implementation fails one run in a thousand). Power: the test also computes the
 * chi-square that a classic bug — resampling from p instead of norm(max(0, p − q)) after a
 * rejection — would produce in expectation with the same N, and requires it to be ≥ 4× the
 * threshold, so that bug could not pass.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { TableModel } from '../helpers/toy_models.js';
import { useCpu } from '../helpers/backend.js';

beforeAll(useCpu);

const V = 4;
const N = 6000;
/** 0.999 quantiles of χ² by degrees of freedom (cells with nonzero probability − 1). */
const CHI2_999: Record<number, number> = { 8: 26.12, 15: 37.7 };

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

/** softmax(logits / T) restricted to the top-k, as the decoder's sampler does. */
function dist(logits: number[], temperature: number, topK: number): number[] {
  const kth = [...logits].sort((a, b) => b - a)[topK - 1];
  const e = logits.map((l) => (l >= kth ? Math.exp(l / temperature) : 0));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/** Pearson's statistic over the cells of nonzero probability; a count in a zero cell is an outright failure. */
function chiSquare(counts: number[], expected: number[]): number {
  counts.forEach((c, i) => {
    if (expected[i] === 0) expect(c, `cell ${i} has probability 0`).toBe(0);
  });
  return counts.reduce((s, c, i) => (expected[i] > 0 ? s + (c - N * expected[i]) ** 2 / (N * expected[i]) : s), 0);
}

describe.each([
  { temperature: 1, topK: V },
  { temperature: 0.7, topK: 3 },
])('first two tokens, temperature $temperature, topK $topK', ({ temperature, topK }) => {
  const prompt = [2];
  const p1 = dist(T0[prompt[0]], temperature, topK);
  const exact = p1.flatMap((a, t1) => dist(T0[t1], temperature, topK).map((b) => a * b)); // P(t1, t2)
  const threshold = CHI2_999[exact.filter((x) => x > 0).length - 1];

  it('speculative sampling matches the exact distribution (chi-square) and the test has power', async () => {
    const model = new TableModel([T0, T1]);
    const counts = new Array<number>(V * V).fill(0);
    for (let seed = 0; seed < N; seed++) {
      const r = await speculativeDecode(model, prompt, { acceptance: 'sampling', maxNewTokens: 2, temperature, topK, seed });
      counts[r.tokens[0] * V + r.tokens[1]]++;
    }
    model.dispose();
    expect(chiSquare(counts, exact)).toBeLessThan(threshold);

    // The expected statistic of the "resample from p" bug at this N.
    const q = dist(T1[prompt[0]], temperature, topK);
    const wrong = p1.flatMap((a, t1) => {
      const p = dist(T0[t1], temperature, topK);
      const reject = 1 - p.reduce((s, pi, i) => s + Math.min(pi, q[i]), 0);
      return p.map((pi, i) => a * (Math.min(pi, q[i]) + reject * pi));
    });
    const power = N * wrong.reduce((s, w, i) => (exact[i] > 0 ? s + (w - exact[i]) ** 2 / exact[i] : s), 0);
    expect(power).toBeGreaterThan(4 * threshold);
  });

  it('ordinary sampling (greedyDecode with temperature) matches the same distribution', async () => {
    const model = new TableModel([T0, T1]);
    const counts = new Array<number>(V * V).fill(0);
    for (let seed = 0; seed < N; seed++) {
      const r = await greedyDecode(model, prompt, { maxNewTokens: 2, temperature, topK, seed });
      counts[r.tokens[0] * V + r.tokens[1]]++;
    }
    model.dispose();
    expect(chiSquare(counts, exact)).toBeLessThan(threshold);
  });
});

it('a seed reproduces a sampled run; another seed changes it', async () => {
  const model = new TableModel([T0, T1]);
  const run = (seed: number) => speculativeDecode(model, [0], { acceptance: 'sampling', maxNewTokens: 30, seed });
  const a = await run(7);
  const b = await run(7);
  const c = await run(8);
  expect(b.tokens).toEqual(a.tokens);
  expect(c.tokens).not.toEqual(a.tokens);
  model.dispose();
});
