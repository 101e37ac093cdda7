/**
 * Sampling stays exact when the tree is grown the EAGLE-2 way: on a Markov table model whose
 * draft children are read at their own parent's token (GrowingTableModel, a 2-level tree of
 * top-2 children), the first three tokens of `speculativeDecode` (acceptance 'sampling') follow
 * the exact joint distribution of ordinary sampling from offset 0 (Pearson chi-square over the V³
 * cells against the 0.999 quantile, seeds 0 … N − 1). The fed trees are checked to be grown from
 * each node's own token: every depth-2 node is one of the top-2 draft tokens after its parent's
 * token, and some depth-2 nodes hang under a node that is not the root's first child.
 */
import { beforeAll, expect, it } from 'vitest';
import { speculativeDecode } from '../../src/decoding/index.js';
import { useCpu } from '../helpers/backend.js';
import { GrowingTableModel, softmaxAt, top2, TREE_TABLE_DRAFT, TREE_TABLE_P } from '../helpers/tree_models.js';

beforeAll(useCpu);

const V = 4;
const N = 3000;
/** 0.999 quantile of χ²(63), scipy.stats.chi2.ppf(0.999, 63). */
const CHI2_999_63 = 103.44;

const T0 = TREE_TABLE_P; // offset 0 (p) per previous token
const T1 = TREE_TABLE_DRAFT; // the draft table: a child's logits at its parent's token
const softmax = (l: number[]) => softmaxAt(l);

it('a grown 2-level tree samples the exact joint distribution (chi-square), each node drafted from its own token', async () => {
  const prompt = [2];
  const p = (t: number) => softmax(T0[t]!);
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
        if (depth(i) !== 2) return;
        expect(top2(T1[tokens[parents[i]!]!]!)).toContain(t);
        if (parents[i] !== rootChildren[0]) underSecond++;
      });
    }
  }
  expect(model.grown).toBeGreaterThan(N);
  expect(underSecond).toBeGreaterThan(0);
  model.dispose();
  const exact = Array.from({ length: V ** 3 }, (_, i) => p(prompt[0]!)[Math.floor(i / V ** 2)]! * p(Math.floor(i / V ** 2))[Math.floor(i / V) % V]! * p(Math.floor(i / V) % V)[i % V]!);
  const chi = counts.reduce((s, c, i) => s + (c - N * exact[i]!) ** 2 / (N * exact[i]!), 0);
  expect(chi).toBeLessThan(CHI2_999_63);
}, 120_000);
