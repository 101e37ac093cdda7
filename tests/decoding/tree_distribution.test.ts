/**
 * Tree sampling is lossless: with a 2-candidate tree (`[[0], [1]]`: offset 1's two most likely
 * tokens), the first three tokens of `speculativeDecode` (acceptance 'sampling') follow the exact
 * joint distribution of ordinary sampling from offset 0, on a Markov table model where it is known
 * in closed form. Token 2 is where the rule acts: candidate 1 is kept with probability p(c₁),
 * candidate 2 with p(c₂)/(1 − p(c₁)), and otherwise token 2 is drawn from p without both. Token 3
 * is the bonus token after a kept candidate, or the next step's verified candidate.
 *
 * The rule itself is tested exactly, uniform by uniform, in acceptance.test.ts; this is the
 * end-to-end check of the tree decoder, at a temperature other than 1.
 *
 * Test: Pearson chi-square over the V³ cells, and over the V² cells of the first two tokens,
 * each against the 0.999 quantile of χ²(cells − 1), seeds 0 … N − 1 (deterministic). Power: N is
 * computed, the fewest draws at which each of three bugs reaches in expectation 4× the threshold
 * of a test that sees it — candidate 2 accepted with p(c₂) (no renormalisation) and the
 * all-rejected token drawn from p (the candidates not removed) change token 2 only, so the test
 * of the first two tokens, with fewer cells, sees them; the bonus drawn from the root's row
 * changes token 3, seen by the test over all three.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { speculativeDecode } from '../../src/decoding/index.js';
import { useCpu } from '../helpers/backend.js';
import { softmaxAt, top2, TREE_TABLE_DRAFT, TREE_TABLE_P, TreeTableModel } from '../helpers/tree_models.js';

beforeAll(useCpu);

const V = 4;
/** 0.999 quantiles of χ²(df), scipy.stats.chi2.ppf(0.999, df). */
const CHI2_999: Record<number, number> = { 15: 37.7, 63: 103.44 };
/** A bug must reach this many thresholds in expectation (noncentral χ² mean − df ≥ 4× the threshold). */
const POWER = 4;

const T0 = TREE_TABLE_P; // offset 0 (p) per previous token
const T1 = TREE_TABLE_DRAFT; // offset 1 per previous token (ranks the candidates)
const softmax = softmaxAt;
const cells = (f: (t1: number, t2: number, t3: number) => number): number[] =>
  Array.from({ length: V ** 3 }, (_, i) => f(Math.floor(i / V ** 2), Math.floor(i / V) % V, i % V));

describe('temperature 0.7', () => {
  const temperature = 0.7;
  const prompt = [2];
  const p = (t: number) => softmax(T0[t]!, temperature);
  const exact = cells((t1, t2, t3) => p(prompt[0]!)[t1]! * p(t1)[t2]! * p(t2)[t3]!);
  const threshold = CHI2_999[exact.length - 1]!;
  /** The first two tokens' law from a law over the V³ cells. */
  const firstTwo = (joint: number[]) => Array.from({ length: V * V }, (_, i) => joint.slice(i * V, i * V + V).reduce((a, b) => a + b, 0));
  const exact2 = firstTwo(exact);
  const threshold2 = CHI2_999[exact2.length - 1]!;

  // Token 2's law under each bug (candidates c₁, c₂: offset 1's top 2 after the prompt).
  const [c1, c2] = top2(T1[prompt[0]!]!) as [number, number];
  const second = (q: number[], x: number, bug: 'norm' | 'residual') => {
    const rest = 1 - q[c1]! - q[c2]!;
    const kept2 = bug === 'norm' ? (1 - q[c1]!) * q[c2]! : q[c2]!;
    const other = bug === 'norm' ? ((1 - q[c1]! - kept2) * q[x]!) / rest : rest * q[x]!;
    return x === c1 ? q[c1]! + (bug === 'residual' ? rest * q[c1]! : 0) : x === c2 ? kept2 + (bug === 'residual' ? rest * q[c2]! : 0) : other;
  };
  const divergence = (wrong: number[], law: number[]) => wrong.reduce((s, w, i) => s + (w - law[i]!) ** 2 / law[i]!, 0);
  /** The fewest draws at which `bug` reaches POWER × `threshold` of the test over `law`'s cells. */
  const drawsFor = (bug: number[], law: number[], threshold: number) => Math.ceil((POWER * threshold) / divergence(bug, law));
  const p1 = p(prompt[0]!);
  const normBug = cells((t1, t2, t3) => p1[t1]! * second(p(t1), t2, 'norm') * p(t2)[t3]!);
  const residualBug = cells((t1, t2, t3) => p1[t1]! * second(p(t1), t2, 'residual') * p(t2)[t3]!);
  const bonusBug = cells((t1, t2, t3) => p1[t1]! * p(t1)[t2]! * (t2 === c1 || t2 === c2 ? p(t1)[t3]! : p(t2)[t3]!));
  const bugs = [normBug, residualBug, bonusBug];
  const N = Math.max(drawsFor(firstTwo(normBug), exact2, threshold2), drawsFor(firstTwo(residualBug), exact2, threshold2), drawsFor(bonusBug, exact, threshold));

  it(`a 2-candidate tree samples the exact joint distribution (chi-square over ${N} seeds, its power computed)`, async () => {
    for (const wrong of bugs) expect(wrong.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    const model = new TreeTableModel([T0, T1]);
    const counts = new Array<number>(V ** 3).fill(0);
    for (let seed = 0; seed < N; seed++) {
      const r = await speculativeDecode(model, prompt, { acceptance: 'sampling', temperature, tree: [[0], [1]], maxNewTokens: 3, seed });
      counts[(r.tokens[0]! * V + r.tokens[1]!) * V + r.tokens[2]!]!++;
    }
    // Step 2 fed the prompt's token-1 row plus two candidates hanging under it.
    expect(model.trees[1]![1]).toEqual([-1, 0, 0]);
    model.dispose();
    const chi = (counts: number[], law: number[]) => counts.reduce((s, c, i) => s + (c - N * law[i]!) ** 2 / (N * law[i]!), 0);
    expect(chi(counts, exact), 'three tokens').toBeLessThan(threshold);
    expect(chi(firstTwo(counts), exact2), 'the first two tokens').toBeLessThan(threshold2);
  });
});
