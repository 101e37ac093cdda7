/**
 * Sampling stays exact when the tree is grown the EAGLE-2 way: on a Markov table model whose
 * draft children are read at their own parent's token (GrowingTableModel, a 2-level tree of
 * top-2 children), the first three tokens of `speculativeDecode` (acceptance 'sampling') follow
 * the exact joint distribution of ordinary sampling from offset 0 (Pearson chi-square over the V³
 * cells, and over the V² cells of the first two tokens, against the 0.999 quantile, seeds
 * 0 … N − 1). The fed trees are checked to be grown from each node's own token: every node is one
 * of the top-2 draft tokens after its parent's token, and some depth-2 nodes hang under a node
 * that is not the root's first child.
 *
 * Power: N is computed, the fewest draws at which a bug of the rule at the root reaches in
 * expectation 4× the threshold of the test over the first two tokens: the all-rejected token
 * drawn from p (the children not removed). The rule itself is tested exactly, uniform by uniform,
 * in acceptance.test.ts; its other bug here, the second child accepted with p(c₂) (no
 * renormalisation), is seen by the chi-square of tree_distribution.test.ts with its own power (on
 * these grown trees, where the children are often unlikely, it would take ~8× the draws).
 */
import { beforeAll, expect, it } from 'vitest';
import { speculativeDecode } from '../../src/decoding/index.js';
import { useCpu } from '../helpers/backend.js';
import { GrowingTableModel, softmaxAt, top2, TREE_TABLE_DRAFT, TREE_TABLE_P } from '../helpers/tree_models.js';

beforeAll(useCpu);

const V = 4;
/** 0.999 quantiles of χ²(15) and χ²(63), scipy.stats.chi2.ppf(0.999, df). */
const CHI2_999_15 = 37.7;
const CHI2_999_63 = 103.44;
/** A bug must reach this many thresholds in expectation (noncentral χ² mean − df ≥ 4× the threshold). */
const POWER = 4;

const T0 = TREE_TABLE_P; // offset 0 (p) per previous token
const T1 = TREE_TABLE_DRAFT; // the draft table: a child's logits at its parent's token
const softmax = (l: number[]) => softmaxAt(l);
const prompt = [2];
const p = (t: number) => softmax(T0[t]!);

/** P(t1, t2) over the V² cells when token 2 is verified against the root's children top2(T1[t1]) by `second`. */
const firstTwo = (second: (q: number[], x: number, children: number[]) => number) =>
  Array.from({ length: V * V }, (_, i) => p(prompt[0]!)[Math.floor(i / V)]! * second(p(Math.floor(i / V)), i % V, top2(T1[Math.floor(i / V)]!)));
const exact2 = firstTwo((q, x) => q[x]!);
// The bug: when both children are rejected, token 2 drawn from p instead of p without them.
const residualBug = firstTwo((q, x, [c1, c2]) => (x === c1 || x === c2 ? q[x]! : 0) + (1 - q[c1!]! - q[c2!]!) * q[x]!);
const divergence = (wrong: number[]) => wrong.reduce((s, w, i) => s + (w - exact2[i]!) ** 2 / exact2[i]!, 0);
const N = Math.ceil((POWER * CHI2_999_15) / divergence(residualBug));

it(`a grown 2-level tree samples the exact joint distribution (chi-square over ${N} seeds, its power computed), each node drafted from its own token`, async () => {
  expect(residualBug.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
  const model = new GrowingTableModel([T0, T1, T1]);
  const counts = new Array<number>(V ** 3).fill(0);
  let underSecond = 0;
  for (let seed = 0; seed < N; seed++) {
    model.trees.length = 0;
    const r = await speculativeDecode(model, prompt, { acceptance: 'sampling', temperature: 1, tree: { topK: 2, maxNodes: 4 }, maxNewTokens: 3, seed });
    counts[(r.tokens[0]! * V + r.tokens[1]!) * V + r.tokens[2]!]!++;
    for (const [tokens, parents] of model.trees) {
      const depth = (i: number): number => (parents[i]! < 0 ? 0 : 1 + depth(parents[i]!));
      const rootChildren = tokens.map((_, i) => i).filter((i) => depth(i) === 1);
      tokens.forEach((t, i) => {
        if (depth(i) === 0) return;
        expect(top2(T1[tokens[parents[i]!]!]!)).toContain(t);
        if (depth(i) === 2 && parents[i] !== rootChildren[0]) underSecond++;
      });
    }
  }
  expect(model.grown).toBeGreaterThan(N);
  expect(underSecond).toBeGreaterThan(0);
  model.dispose();
  const exact = Array.from({ length: V ** 3 }, (_, i) => p(prompt[0]!)[Math.floor(i / V ** 2)]! * p(Math.floor(i / V ** 2))[Math.floor(i / V) % V]! * p(Math.floor(i / V) % V)[i % V]!);
  const chi = (counts: number[], law: number[]) => counts.reduce((s, c, i) => s + (c - N * law[i]!) ** 2 / (N * law[i]!), 0);
  expect(chi(counts, exact), 'three tokens').toBeLessThan(CHI2_999_63);
  const counts2 = Array.from({ length: V * V }, (_, i) => counts.slice(i * V, i * V + V).reduce((a, b) => a + b, 0));
  expect(chi(counts2, exact2), 'the first two tokens').toBeLessThan(CHI2_999_15);
}, 120_000);
