/**
 * A dynamic tree keeps the `maxNodes` paths of the highest cumulative draft log-probability
 * (EAGLE-2 §4.2): checked against brute force over every path (fast-check), on a hand case where
 * the last node kept is a lower-ranked candidate of the first level (a growth rule that scored a
 * sibling from its elder sibling's path instead of its parent's would keep a deeper node there),
 * and for a grown forest (sequential modules) likewise.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { growTree, resolveTree } from '../../src/decoding/tree.js';

/** Every path of ranks (r₁ … r_d), d = 1 … depth, each rank < topK, with its summed log-probability, best first. */
function allPaths(logProbs: number[][], topK: number): { ranks: number[]; score: number }[] {
  const out: { ranks: number[]; score: number }[] = [];
  const walk = (ranks: number[], score: number) => {
    if (ranks.length > 0) out.push({ ranks, score });
    if (ranks.length === logProbs.length) return;
    for (let r = 0; r < topK; r++) walk([...ranks, r], score + logProbs[ranks.length]![r]!);
  };
  walk([], 0);
  return out.sort((a, b) => b.score - a.score);
}

/** The rank path of node i of a grown tree. */
function ranksOf(nodes: { parent: number; rank: number }[], i: number): number[] {
  const ranks: number[] = [];
  for (let n = i; n >= 0; n = nodes[n]!.parent) ranks.unshift(nodes[n]!.rank);
  return ranks;
}

describe('dynamic trees keep the best paths', () => {
  it('the kept scores are the maxNodes best of every path, each node scored from its own parent (property)', () => {
    const logRow = (k: number) => fc.array(fc.double({ min: -8, max: -1e-3, noNaN: true }), { minLength: k, maxLength: k }).map((r) => r.sort((a, b) => b - a));
    const arb = fc.integer({ min: 1, max: 4 }).chain((topK) =>
      fc.record({ topK: fc.constant(topK), rows: fc.array(logRow(topK), { minLength: 1, maxLength: 3 }), maxNodes: fc.integer({ min: 1, max: 30 }) }),
    );
    fc.assert(
      fc.property(arb, ({ topK, rows, maxNodes }) => {
        const spec = resolveTree('t', { topK, maxNodes }, rows.length, 100);
        const ids = rows.map((row, d) => row.map((_, r) => 10 * d + r));
        const grown = growTree(spec, { ids, logProbs: rows }, 10);
        const brute = allPaths(rows, topK);
        const n = Math.min(maxNodes, brute.length);
        expect(grown.nodes.length).toBe(n);
        // the same scores as the n best paths (ties may pick either path)
        grown.scores.forEach((s, i) => expect(s).toBeCloseTo(brute[i]!.score, 9));
        grown.nodes.forEach((node, i) => {
          const ranks = ranksOf(grown.nodes, i);
          const exact = ranks.reduce((a, r, d) => a + rows[d]![r]!, 0);
          expect(grown.scores[i]).toBeCloseTo(exact, 9); // scored along its own path
          expect(node.parent).toBeLessThan(i); // parents first
          expect(grown.tokens[i]).toBe(ids[ranks.length - 1]![ranks.at(-1)!]);
        });
      }),
      { numRuns: 300, seed: 17 },
    );
  });

  it('the last node kept can be a lower-ranked first-level candidate', () => {
    // paths: [0] −0.1, [1] −0.5, [2] −0.6, [0,0] −0.8, [1,0] −1.2 … : the 3 best are the whole first level.
    // Scoring [2] from its elder sibling's path (−0.5 − 0.6 = −1.1) would keep [0,0] (−0.8) instead.
    const rows = [[-0.1, -0.5, -0.6], [-0.7, -3, -3]];
    const spec = resolveTree('t', { topK: 3, maxNodes: 3 }, 2, 100);
    const grown = growTree(spec, { ids: [[1, 2, 3], [4, 5, 6]], logProbs: rows }, 10);
    expect(grown.nodes).toEqual([
      { parent: -1, depth: 1, rank: 0 },
      { parent: -1, depth: 1, rank: 1 },
      { parent: -1, depth: 1, rank: 2 },
    ]);
    expect(grown.tokens).toEqual([1, 2, 3]);
    expect(grown.scores[2]).toBeCloseTo(-0.6, 12);
  });

  it('a grown forest (sequential modules): the maxNodes best candidates by path score, parents first (property)', () => {
    // a forest as headTree returns it: level 1's k candidates, then per level k groups of k children of the expanded nodes
    const arb = fc.record({
      k: fc.integer({ min: 1, max: 3 }),
      depth: fc.integer({ min: 1, max: 3 }),
      maxNodes: fc.integer({ min: 1, max: 12 }),
      seed: fc.integer({ min: 0, max: 1e6 }),
    });
    fc.assert(
      fc.property(arb, ({ k, depth, maxNodes, seed }) => {
        let x = seed + 1;
        const rnd = () => ((x = (x * 16807) % 2147483647) / 2147483647);
        const tokens: number[] = [];
        const parents: number[] = [];
        const scores: number[] = [];
        const ranks: number[] = [];
        for (let r = 0; r < k; r++) (tokens.push(r), parents.push(-1), ranks.push(r), scores.push(-r - rnd()));
        let level = Array.from({ length: k }, (_, i) => i);
        for (let d = 2; d <= depth; d++) {
          const expanded = level.slice().sort((a, b) => scores[b]! - scores[a]!).slice(0, k);
          const next: number[] = [];
          for (const p of expanded) {
            for (let r = 0; r < k; r++) {
              next.push(tokens.length);
              tokens.push(100 * d + tokens.length);
              parents.push(p);
              ranks.push(r);
              scores.push(scores[p]! - r - rnd());
            }
          }
          level = next;
        }
        const spec = resolveTree('t', { topK: k, maxNodes }, depth, 1000);
        const grown = growTree(spec, { forest: { tokens, parents, ranks, scores } }, 10);
        const best = scores.slice().sort((a, b) => b - a).slice(0, Math.min(maxNodes, scores.length));
        expect(grown.scores).toEqual(best);
        grown.nodes.forEach((n, i) => expect(n.parent).toBeLessThan(i));
      }),
      { numRuns: 200, seed: 5 },
    );
  });
});
