/**
 * Tree sampling is lossless: with a 2-candidate tree (`[[0], [1]]`: offset 1's two most likely
 * tokens), the first three tokens of `speculativeDecode` (acceptance 'sampling') follow the exact
 * joint distribution of ordinary sampling from offset 0, on a Markov table model where it is known
 * in closed form. Token 2 is where the rule acts: candidate 1 is kept with probability p(c₁),
 * candidate 2 with p(c₂)/(1 − p(c₁)), and otherwise token 2 is drawn from p without both. Token 3
 * is the bonus token after a kept candidate, or the next step's verified candidate.
 *
 * Test: Pearson chi-square over the V³ cells against the 0.999 quantile of χ²(cells − 1), seeds
 * 0 … N − 1 (deterministic). Power: the chi-square three bugs would reach in expectation at the
 * same N — candidate 2 accepted with p(c₂) (no renormalisation), the all-rejected token drawn
 * from p (the candidates not removed), the bonus drawn from the root's row — each must be ≥ 4×
 * the threshold.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { speculativeDecode } from '../../src/decoding/index.js';
import { useCpu } from '../helpers/backend.js';
import { softmaxAt, top2, TREE_TABLE_DRAFT, TREE_TABLE_P, TreeTableModel } from '../helpers/tree_models.js';

beforeAll(useCpu);

const V = 4;
const N = 4000;
/** 0.999 quantiles of χ²(df), scipy.stats.chi2.ppf(0.999, df). */
const CHI2_999: Record<number, number> = { 63: 103.44 };

const T0 = TREE_TABLE_P; // offset 0 (p) per previous token
const T1 = TREE_TABLE_DRAFT; // offset 1 per previous token (ranks the candidates)
const softmax = softmaxAt;
const cells = (f: (t1: number, t2: number, t3: number) => number): number[] =>
  Array.from({ length: V ** 3 }, (_, i) => f(Math.floor(i / V ** 2), Math.floor(i / V) % V, i % V));

describe.each([1, 0.7])('temperature %s', (temperature) => {
  it('a 2-candidate tree samples the exact joint distribution (chi-square), and the test has power', async () => {
    const prompt = [2];
    const p = (t: number) => softmax(T0[t]!, temperature);
    const exact = cells((t1, t2, t3) => p(prompt[0]!)[t1]! * p(t1)[t2]! * p(t2)[t3]!);
    const threshold = CHI2_999[exact.length - 1]!;

    const model = new TreeTableModel([T0, T1]);
    const counts = new Array<number>(V ** 3).fill(0);
    for (let seed = 0; seed < N; seed++) {
      const r = await speculativeDecode(model, prompt, { acceptance: 'sampling', temperature, tree: [[0], [1]], maxNewTokens: 3, seed });
      counts[(r.tokens[0]! * V + r.tokens[1]!) * V + r.tokens[2]!]!++;
    }
    // Step 2 fed the prompt's token-1 row plus two candidates hanging under it.
    expect(model.trees[1]![1]).toEqual([-1, 0, 0]);
    model.dispose();
    const chi = counts.reduce((s, c, i) => s + (c - N * exact[i]!) ** 2 / (N * exact[i]!), 0);
    expect(chi).toBeLessThan(threshold);

    // Token 2's law under each bug (candidates c₁, c₂: offset 1's top 2 after the prompt).
    const [c1, c2] = top2(T1[prompt[0]!]!) as [number, number];
    const second = (q: number[], x: number, bug: 'norm' | 'residual') => {
      const rest = 1 - q[c1]! - q[c2]!;
      const kept2 = bug === 'norm' ? (1 - q[c1]!) * q[c2]! : q[c2]!;
      const other = bug === 'norm' ? ((1 - q[c1]! - kept2) * q[x]!) / rest : rest * q[x]!;
      return x === c1 ? q[c1]! + (bug === 'residual' ? rest * q[c1]! : 0) : x === c2 ? kept2 + (bug === 'residual' ? rest * q[c2]! : 0) : other;
    };
    const power = (wrong: number[]) => N * wrong.reduce((s, w, i) => s + (w - exact[i]!) ** 2 / exact[i]!, 0);
    const p1 = p(prompt[0]!);
    const normBug = cells((t1, t2, t3) => p1[t1]! * second(p(t1), t2, 'norm') * p(t2)[t3]!);
    const residualBug = cells((t1, t2, t3) => p1[t1]! * second(p(t1), t2, 'residual') * p(t2)[t3]!);
    const bonusBug = cells((t1, t2, t3) => p1[t1]! * p(t1)[t2]! * (t2 === c1 || t2 === c2 ? p(t1)[t3]! : p(t2)[t3]!));
    for (const wrong of [normBug, residualBug, bonusBug]) {
      expect(wrong.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
      expect(power(wrong)).toBeGreaterThan(4 * threshold);
    }
  });
});
