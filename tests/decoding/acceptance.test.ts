/** The acceptance rules on hand-made logits, and the commit logic on a hand-made model. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyVerdict, samplingVerdict, treeShape, typicalVerdict, type Verdict } from '../../src/decoding/acceptance.js';
import { draftTree } from '../../src/decoding/drafters.js';
import { uniformStream } from '../../src/decoding/random.js';
import { greedyWalk, samplingWalk, typicalWalk } from '../helpers/acceptance_reference.js';
import { nucleusFloor, toProbabilities } from '../../src/decoding/distributions.js';
import { blockwiseDecode, greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { TableModel } from '../helpers/toy_models.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);


/** Runs a rule inside `tidy` and reads back `[tip, next]`, asserting that nothing leaked. */
function verdict(f: () => Verdict): Promise<[number, number]> {
  return expectNoLeak(async () => {
    const packed = tf.tidy(() => {
      const v = f();
      return tf.concat([v.tip, v.next]);
    });
    const out = Array.from(await packed.data());
    packed.dispose();
    return [out[0], out[1]] as [number, number];
  });
}

/** A chain's shape. */
const chain = (tokens: number[]) => treeShape(draftTree(tokens, tokens.map((_, i) => i - 1)));
/** The accepted path ending on row `tip` of a tree with `parents`. */
const pathTo = (tip: number, parents: readonly number[]) => {
  const path: number[] = [];
  for (let i = tip - 1; i >= 0; i = parents[i]!) path.unshift(i);
  return path;
};
const all = { temperature: 1, topK: 1 << 20, topP: 1 };
/** Logits whose softmax is `p` (0 → a logit far below). */
const logitsOf = (p: number[][]) => tf.tensor2d(p.map((row) => row.map((x) => (x > 0 ? Math.log(x) : -1e4))));

describe('greedyVerdict (a chain)', () => {
  it.each([
    ['all accepted', [1, 2, 3], [1, 2, 3, 4], [3, 4]],
    ['none accepted', [0, 2, 3], [1, 2, 3, 4], [0, 1]],
    ['mismatch in the middle', [1, 5, 3], [1, 2, 3, 4], [1, 2]],
    ['no drafts', [], [4], [0, 4]],
  ])('%s: drafts %j against argmax %j → [tip, next] %j', async (_, drafts, best, expected) => {
    const got = await verdict(() => greedyVerdict(chain(drafts), tf.tensor1d(best, 'int32')));
    expect(got).toEqual(expected);
  });
});

describe('samplingVerdict (a chain with its q)', () => {
  it('keeps every draft when p == q (ratio 1), then samples the bonus from the last row', async () => {
    const p = [[0.5, 0.5, 0], [0.25, 0.75, 0], [0, 0, 1]];
    const got = await verdict(() => samplingVerdict(chain([0, 1]), logitsOf(p), tf.tensor1d([0.99, 0.99, 0.3]), tf.tensor2d(p.slice(0, 2)), all));
    expect(got).toEqual([2, 2]);
  });

  it('rejects a draft p gives zero probability and resamples from norm(max(0, p − q))', async () => {
    // draft 2 has q = 0.9, p = 0: always rejected; residual = max(0, [0.5,0.5,0] − [0.05,0.05,0.9]) ∝ [1, 1, 0]
    const got = await verdict(() => samplingVerdict(chain([2]), logitsOf([[0.5, 0.5, 0], [1, 0, 0]]), tf.tensor1d([0, 0.75]), tf.tensor2d([[0.05, 0.05, 0.9]]), all));
    expect(got).toEqual([0, 1]);
  });

  it('accepts with probability p/q: u below the ratio keeps, u above rejects', async () => {
    const p = [[0.25, 0.75], [0.5, 0.5]];
    const q = [[0.5, 0.5]]; // draft 0: ratio 0.5
    expect(await verdict(() => samplingVerdict(chain([0]), logitsOf(p), tf.tensor1d([0.49, 0.1]), tf.tensor2d(q), all))).toEqual([1, 0]);
    expect(await verdict(() => samplingVerdict(chain([0]), logitsOf(p), tf.tensor1d([0.51, 0.1]), tf.tensor2d(q), all))).toEqual([0, 1]); // residual ∝ [0, 0.25]
  });
});

describe('typicalVerdict (a chain)', () => {
  const s = { temperature: 1, topK: 20, topP: 1 };
  it('keeps a plausible draft and stops at an implausible one (ε = 0.09, δ = 0.3)', async () => {
    const logits = () => tf.tensor2d([[2, 2, -9], [2, 2, -9], [0, 0, 0]]); // p ≈ [0.5, 0.5, 0]: H = ln 2, bar = min(0.09, 0.15)
    const got = await verdict(() => typicalVerdict(chain([1, 2]), logits(), tf.tensor1d([0.7]), { temperature: 1, topK: 3, topP: 1 }, 0.09, 0.3));
    expect(got).toEqual([1, 1]); // p(1) = 0.5 > 0.09 kept; p(2) ≈ 0 rejected; next sampled from row 1 (u = 0.7 → token 1)
  });

  it('a high-entropy row lowers the bar: 20 equal logits (p = 0.05 < ε) keep any draft, as δ·exp(−H) = 0.015', async () => {
    const flat = new Array<number>(20).fill(0);
    expect(await verdict(() => typicalVerdict(chain([13]), tf.tensor2d([flat, flat]), tf.tensor1d([0.5]), s, 0.09, 0.3))).toEqual([1, 10]);
    // With ε alone (no entropy term, or its sign flipped: δ·exp(+H) = 6), p = 0.05 < 0.09 would reject it.
    expect(await verdict(() => typicalVerdict(chain([13]), tf.tensor2d([flat, flat]), tf.tensor1d([0.5]), s, 0.04, 1))).toEqual([1, 10]);
  });

  it('a low-entropy row: ε decides, the first implausible draft ends the block, next comes from its row', async () => {
    const peakedRow = (t: number) => Array.from({ length: 20 }, (_, i) => (i === t ? 8 : 0)); // p(t) ≈ 0.99, H small
    const rows = () => tf.tensor2d([peakedRow(3), peakedRow(5), peakedRow(7), peakedRow(9)]);
    expect(await verdict(() => typicalVerdict(chain([3, 5, 7]), rows(), tf.tensor1d([0.5]), s, 0.09, 0.3))).toEqual([3, 9]);
    expect(await verdict(() => typicalVerdict(chain([4, 5, 7]), rows(), tf.tensor1d([0.5]), s, 0.09, 0.3))).toEqual([0, 3]); // 4 has p ≈ 3e-4
  });
});

/**
 * Random trees (chains among them) over V = 6 with dyadic probabilities (exact in float32), and
 * a grid of uniforms that never ties with a probability: each device rule must agree exactly with
 * its sequential reference walk — the rules are pure functions of the uniforms.
 */
describe('the device rules equal their sequential reference walks, over grids of uniforms', () => {
  const V = 6;
  const DYADIC = [0, 0.03125, 0.0625, 0.125, 0.25, 0.5];
  /** A distribution over V tokens from dyadic masses (renormalised by a power of 2 keeps it dyadic enough; exactness is not needed, ties are avoided). */
  const dist = (rand: () => number) => {
    const w: number[] = Array.from({ length: V }, () => DYADIC[Math.floor(rand() * DYADIC.length)]!);
    if (!w.some((x) => x > 0)) w[Math.floor(rand() * V)] = 1;
    const t = w.reduce((a, b) => a + b, 0);
    return w.map((x) => x / t);
  };
  /** A random tree of up to 7 nodes, siblings distinct (as the loop feeds them), or a chain. */
  const randomTree = (rand: () => number, asChain: boolean) => {
    const N = 1 + Math.floor(rand() * 7);
    const tokens: number[] = [];
    const parents: number[] = [];
    for (let i = 0; i < N; i++) {
      const p = asChain ? i - 1 : Math.floor(rand() * (i + 1)) - 1;
      const taken = new Set(tokens.filter((_, j) => parents[j] === p));
      const free = Array.from({ length: V }, (_, t) => t).filter((t) => !taken.has(t));
      if (free.length === 0) break;
      parents.push(p);
      tokens.push(free[Math.floor(rand() * free.length)]!);
    }
    return { tokens, parents };
  };
  const UGRID = [0.0137, 0.1337, 0.2937, 0.4137, 0.5537, 0.6937, 0.8337, 0.9737];

  it.each([['trees', false], ['chains', true]] as const)('greedy, sampling and typical on 40 random %s × 8 uniforms each', async (_, asChain) => {
    const rand = uniformStream(asChain ? 11 : 7);
    let checked = 0;
    for (let c = 0; c < 40; c++) {
      const { tokens, parents } = randomTree(rand, asChain);
      const N = tokens.length;
      const shape = treeShape(draftTree(tokens, parents));
      const p = Array.from({ length: N + 1 }, () => dist(rand));
      const q = asChain ? tokens.map(() => dist(rand)) : tokens.map(() => null);
      // greedy: the argmax (first among equal masses, as tf.argMax)
      const best = p.map((row) => row.indexOf(Math.max(...row)));
      const g = await verdict(() => greedyVerdict(shape, tf.tensor1d(best, 'int32')));
      expect({ path: pathTo(g[0], parents), next: g[1] }).toEqual(greedyWalk(tokens, parents, best));
      for (const a of UGRID) {
        const u = tokens.map((_, i) => UGRID[(UGRID.indexOf(a) + 3 * i) % UGRID.length]!).concat([a]);
        const qt = asChain ? tf.tensor2d(q as number[][]) : null;
        const sampled = await verdict(() => samplingVerdict(shape, logitsOf(p), tf.tensor1d(u), qt, all));
        qt?.dispose();
        expect({ path: pathTo(sampled[0], parents), next: sampled[1] }).toEqual(samplingWalk(tokens, parents, p, u, q));
        const typical = await verdict(() => typicalVerdict(shape, logitsOf(p), tf.tensor1d([a]), all, 0.09, 0.3));
        expect({ path: pathTo(typical[0], parents), next: typical[1] }).toEqual(typicalWalk(tokens, parents, p, 0.09, 0.3, a));
        checked++;
      }
    }
    expect(checked).toBe(320);
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

describe('the nucleus floor by bisection (the WebGL path, no TopK) equals the sorted one', () => {
  it('on 300 random rows with ties and a spread of topP', async () => {
    const rand = uniformStream(99);
    for (let c = 0; c < 300; c++) {
      const V = 2 + Math.floor(rand() * 30);
      const levels = [0.1, 0.5, 1, 2, 3].slice(0, 1 + Math.floor(rand() * 5)); // few distinct logits: many ties
      const logits = Array.from({ length: V }, () => levels[Math.floor(rand() * levels.length)]! + (rand() < 0.5 ? 0 : rand()));
      const topP = [0.05, 0.3, 0.5, 0.8, 0.95, 0.999][c % 6]!;
      const [sorted, bisected] = await expectNoLeak(async () => {
        const t = tf.tidy(() => {
          const probs = tf.softmax(tf.tensor2d([logits])) as tf.Tensor2D;
          const viaSort = toProbabilities(tf.tensor2d([logits]), { temperature: 1, topK: V, topP }); // cpu: the sorted path
          const floor = nucleusFloor(probs, topP);
          const kept = tf.where(tf.greaterEqual(probs, floor), probs, tf.zerosLike(probs));
          return tf.stack([viaSort, tf.div(kept, tf.sum(kept, 1, true))]);
        });
        const out = (await t.array()) as number[][][];
        t.dispose();
        return [out[0]![0]!, out[1]![0]!];
      });
      expect(bisected).toEqual(sorted);
    }
  });
});
