/**
 * verify, for a draft tree: one forward over the committed token(s) not yet in the cache followed
 * by the tree's nodes (tree attention: each node sees the prefix and its own ancestors, at
 * position prefix length + depth), one head pass over the root's and every node's row, one
 * readback, then the acceptance walk in JS (tree_acceptance.ts). The same pass ranks the next
 * step's candidates at every row; the row the walk ends on supplies them (Medusa §2.1.2, SpecInfer
 * §4, EAGLE-2 §4).
 *
 * What comes back, as one float32 vector (ids are exact in float32 below 2²⁴):
 *   greedy      — the verifier's argmax at each of the R = nodes + 1 rows (with the model's
 *                 `headArgmax` and `headTopK`: also the accepted tip, found on the device, and
 *                 the next candidates ranked at that row alone);
 *   sampling    — per node its target probability at its parent, per row a residual sample;
 *   typical     — per node whether it passes at its parent and its p there, per row a sample from p;
 * then the top-k candidate ids of offsets 1…depth at every row (and their log-probabilities for a
 * dynamic tree), and, off the fast path, whether every logit was finite. With a dynamic tree and a
 * model that has `headTree` (sequential modules), the candidates are instead the grown forest
 * (ids, parents, path scores) under the token each row commits — the verifier's argmax, or the
 * row's sample — at the tip only on the fast path, at every row otherwise (EAGLE-2 §4).
 */
import * as tf from '@tensorflow/tfjs-core';
import { topk2d } from '../internal/topk.js';
import { allFinite, allTokens, argmaxRows, sampleRows, toProbabilities } from './distributions.js';
import type { MultiTokenModel } from './model.js';
import type { ResolvedSpeculativeOptions } from './options.js';
import { uniforms } from './random.js';
import { childrenOf, type DraftTree, type TreeDraft, type TreeSpec } from './tree.js';
import { greedyTreeAccept, samplingTreeAccept, type TreeVerdict, typicalTreeAccept } from './tree_acceptance.js';

/** A model that can run tree steps. */
export type TreeModel = MultiTokenModel & Required<Pick<MultiTokenModel, 'forwardTree' | 'keepRows'>>;

/** The block a tree step feeds: committed tokens not yet in the cache, then the tree under the last of them. */
export interface TreeBlock {
  pending: number[];
  tree: DraftTree;
}

/** What a tree step decided and drafted. */
export interface TreeStep {
  verdict: TreeVerdict;
  /** The candidates ranked at the path's end, for the next tree. */
  draft: TreeDraft;
  /** False if any logit used was NaN or ±Infinity. */
  finite: boolean;
}

/** The fed tokens and their parents: the pending chain, then the nodes under its last token. */
function feed(b: TreeBlock): { tokens: number[]; parents: number[] } {
  const P = b.pending.length;
  const parents = b.pending.map((_, i) => i - 1);
  for (const n of b.tree.nodes) parents.push(n.parent < 0 ? P - 1 : P + n.parent);
  return { tokens: [...b.pending, ...b.tree.tokens], parents };
}

/** The `k` most likely ids of each row of `logits` `[n, V]` and their log-probabilities, `[n, k]` each. */
function topKRows(logits: tf.Tensor2D, k: number): { ids: tf.Tensor2D; logProbs: tf.Tensor2D } {
  const { values, indices } = topk2d(logits, k);
  return { ids: indices as tf.Tensor2D, logProbs: tf.sub(values, tf.logSumExp(logits, 1, true)) as tf.Tensor2D };
}

/** Row r's children's tokens, `[R, C]` int32 padded with −1 (a one-hot of −1 is all zeros). */
function childTokens(children: number[][], tokens: number[]): tf.Tensor2D {
  const C = Math.max(1, ...children.map((c) => c.length));
  const table = children.flatMap((c) => Array.from({ length: C }, (_, i) => (i < c.length ? tokens[c[i]!]! : -1)));
  return tf.tensor2d(table, [children.length, C], 'int32');
}

/** Entropy in nats of each row of `probs` `[n, V]` → `[n]`. */
function entropy(probs: tf.Tensor2D): tf.Tensor1D {
  return tf.neg(tf.sum(tf.mul(probs, tf.log(tf.maximum(probs, tf.scalar(1e-30)))), 1)) as tf.Tensor1D;
}

/**
 * The rule's per-node and per-row numbers on the device (sampling and typical): `[N]` then `[R]`.
 * `target` `[R, V]` are offset 0's logits at the root and node rows.
 */
function judgeOnDevice(o: ResolvedSpeculativeOptions, b: TreeBlock, children: number[][], target: tf.Tensor2D, u: tf.Tensor1D): tf.Tensor1D {
  const { nodes, tokens } = b.tree;
  const N = nodes.length;
  const R = N + 1;
  const p = toProbabilities(target, o.sampling); // [R, V]
  const uRows = tf.slice(u, N, R); // [R]
  const parts: tf.Tensor1D[] = [];
  let parentRows: tf.Tensor1D | null = null;
  if (N > 0) {
    parentRows = tf.tensor1d(nodes.map((n) => n.parent + 1), 'int32'); // [N]
    const atParent = tf.gather(p, parentRows); // [N, V]
    parts.push(tf.sum(tf.mul(atParent, tf.oneHot(tf.tensor1d(tokens, 'int32'), p.shape[1])), 1) as tf.Tensor1D); // [N] p(x) at the parent
  }
  if (o.acceptance === 'sampling') {
    const taken = tf.sum(tf.oneHot(childTokens(children, tokens), p.shape[1]), 1); // [R, V] 1 at a child's token
    const rest = tf.mul(p, tf.sub(1, tf.cast(taken, 'float32'))) as tf.Tensor2D; // p without the children
    const safe = tf.where(tf.greater(tf.sum(rest, 1, true), 0), rest, p) as tf.Tensor2D; // all mass in the children: rejecting them all had probability 0
    parts.push(tf.cast(sampleRows(safe, uRows), 'float32') as tf.Tensor1D); // [R]
  } else {
    if (N > 0) {
      const bar = tf.minimum(tf.scalar(o.posteriorThreshold), tf.mul(tf.scalar(o.posteriorAlpha), tf.exp(tf.neg(entropy(p))))) as tf.Tensor1D; // [R]
      parts.unshift(tf.cast(tf.greater(parts[0]!, tf.gather(bar, parentRows!)), 'float32') as tf.Tensor1D); // [N] passes, then [N] p(x)
    }
    parts.push(tf.cast(sampleRows(p, uRows), 'float32') as tf.Tensor1D); // [R]
  }
  return tf.concat(parts) as tf.Tensor1D;
}

/**
 * Greedy acceptance on the device (the fast path): the row the accepted path ends on, int32 `[1]`.
 * A node is accepted when it and each of its ancestors equal offset 0's argmax at their parent
 * (misses counted by one matMul with the ancestor-or-self matrix); the tip is the deepest accepted
 * node (among equals the first — only repeated candidates can tie), or the root (row 0).
 */
function greedyTip(b: TreeBlock, best: tf.Tensor1D): tf.Tensor1D {
  const { nodes, tokens } = b.tree;
  const N = nodes.length;
  const ancestry = new Float32Array(N * N); // [N, N]: 1 where column a is row n or one of its ancestors
  nodes.forEach((_, n) => {
    for (let a = n; a >= 0; a = nodes[a]!.parent) ancestry[n * N + a] = 1;
  });
  const parentBest = tf.gather(best, tf.tensor1d(nodes.map((n) => n.parent + 1), 'int32')); // [N] the verifier's token at each parent
  const miss = tf.cast(tf.notEqual(parentBest, tf.tensor1d(tokens, 'int32')), 'float32'); // [N]
  const misses = tf.matMul(tf.tensor2d(ancestry, [N, N]), tf.reshape(miss, [N, 1])); // [N, 1] misses on the path to each node
  const rank = tf.tensor1d(nodes.map((n, i) => n.depth * (N + 1) - i)); // [N] deeper first, then earlier
  const score = tf.where(tf.equal(tf.reshape(misses, [N]), 0), rank, tf.zerosLike(rank)); // [N]
  return tf.reshape(tf.cast(tf.argMax(tf.concat([tf.zeros([1]), score]), 0), 'int32'), [1]) as tf.Tensor1D; // [1] row index
}

/** The draft at row `row` from the read-back candidate table (offsets 1…D, k each, after `at`). */
function draftAt(data: Float32Array, at: number, row: number, D: number, K: number, logAt: number | null): TreeDraft {
  const pick = (base: number) => Array.from({ length: D }, (_, d) => Array.from(data.subarray(base + (row * D + d) * K, base + (row * D + d + 1) * K)));
  return { ids: pick(at), logProbs: logAt === null ? null : pick(logAt) };
}

/** Candidates per row of a grown forest: depth 1's k, then k² per deeper depth. */
const forestSize = (D: number, K: number) => K + (D - 1) * K * K;

/** The forest at row `row` of a read-back `[rows, G]` table of ids, then parents, then scores, starting at `at`. */
function forestAt(data: Float32Array, at: number, rows: number, row: number, D: number, K: number): TreeDraft {
  const G = forestSize(D, K);
  const pick = (table: number) => Array.from(data.subarray(at + (table * rows + row) * G, at + (table * rows + row + 1) * G));
  const ranks = Array.from({ length: G }, (_, g) => (g < K ? g : (g - K) % K));
  return { forest: { tokens: pick(0), parents: pick(1), ranks, scores: pick(2) } };
}

/** Whether every candidate of a draft is a token id (a −1 marks logits that held NaN or ±Infinity). */
function draftFinite(draft: TreeDraft, vocabSize: number): boolean {
  return 'forest' in draft ? allTokens(draft.forest.tokens, vocabSize) : draft.ids.every((row) => allTokens(row, vocabSize));
}

/** One tree step: forward, heads, one readback, the acceptance walk. */
export async function verifyTree(model: TreeModel, b: TreeBlock, spec: TreeSpec, o: ResolvedSpeculativeOptions, random: () => number): Promise<TreeStep> {
  const { nodes, tokens } = b.tree;
  const N = nodes.length;
  const R = N + 1;
  const D = spec.depth;
  const K = spec.topK;
  const dynamic = spec.nodes === null;
  const greedy = o.sampling.temperature === 0 || o.acceptance === 'greedy';
  const grow = dynamic && model.headTree !== undefined; // EAGLE-2 growth: each node's children conditioned on its own token
  const fast = greedy && model.headArgmax !== undefined && (grow || model.headTopK !== undefined);
  const children = childrenOf(nodes);
  const u = greedy ? null : uniforms(random, N + R);
  const fed = feed(b);
  const states = model.forwardTree(fed.tokens, fed.parents); // [P + N, S]
  let packed: tf.Tensor1D | undefined;
  try {
    packed = tf.tidy(() => {
      const rows = tf.slice(states, [b.pending.length - 1, 0], [R, -1]); // [R, S] the root, then each node
      const flat = (t: tf.Tensor) => tf.reshape(tf.cast(t, 'float32'), [-1]) as tf.Tensor1D;
      if (fast) {
        const best = tf.reshape(model.headArgmax!(rows, 1), [R]) as tf.Tensor1D; // [R] offset 0's argmax at every row
        const tip = N === 0 ? tf.zeros([1], 'int32') : greedyTip(b, best); // [1] the row the accepted path ends on
        if (grow) {
          const forest = model.headTree!(tf.gather(rows, tip), tf.gather(best, tip), D, K); // [1, G] each: the next tree, under the token committed at the tip
          return tf.concat([flat(best), flat(tip), flat(forest.ids), flat(forest.parents), flat(forest.scores)]) as tf.Tensor1D; // [R + 1 + 3G]
        }
        const top = model.headTopK!(tf.gather(rows, tip), D + 1, K); // [1, D + 1, K] the next tree's candidates, at the tip only
        const parts = [flat(best), flat(tip), flat(tf.slice(top.ids, [0, 1, 0], [1, D, K]))];
        if (dynamic) parts.push(flat(tf.slice(top.logProbs, [0, 1, 0], [1, D, K])));
        return tf.concat(parts) as tf.Tensor1D; // [R + 1 + D·K (+ D·K)]
      }
      const offsets = Array.from({ length: grow ? 1 : D + 1 }, (_, j) => j);
      const all = model.headLogits(rows, offsets); // [R, D + 1, V] offset 0 verifies, 1…D draft (growing: [R, 1, V])
      const V = all.shape[2];
      const target = tf.reshape(tf.slice(all, [0, 0, 0], [R, 1, V]), [R, V]) as tf.Tensor2D; // [R, V]
      const judged = greedy ? flat(argmaxRows(target)) : judgeOnDevice(o, b, children, target, tf.tensor1d(u!));
      const parts = [flat(allFinite([all])), judged];
      if (grow) {
        // The token each row would commit if the walk ended there: the argmax, or the row's sample (judged's last R entries).
        const roots = tf.cast(tf.slice(judged, judged.shape[0] - R, R), 'int32') as tf.Tensor1D; // [R]
        const forest = model.headTree!(rows, roots, D, K); // [R, G] each
        parts.push(flat(forest.ids), flat(forest.parents), flat(forest.scores));
      } else {
        const drafting = tf.reshape(tf.slice(all, [0, 1, 0], [R, D, V]), [R * D, V]) as tf.Tensor2D; // [R·D, V]
        const top = topKRows(drafting, K); // [R·D, K] each
        parts.push(flat(top.ids));
        if (dynamic) parts.push(flat(top.logProbs));
      }
      return tf.concat(parts) as tf.Tensor1D;
    });
    const data = (await packed.data()) as Float32Array;
    if (fast) {
      const best = data.subarray(0, R);
      const path: number[] = [];
      for (let i = data[R]! - 1; i >= 0; i = nodes[i]!.parent) path.unshift(i);
      const verdict = { path, next: best[data[R]!]! };
      let draft: TreeDraft;
      if (grow) {
        draft = forestAt(data, R + 1, 1, 0, D, K);
      } else {
        const ids = Array.from({ length: D }, (_, d) => Array.from(data.subarray(R + 1 + d * K, R + 1 + (d + 1) * K)));
        const logAt = R + 1 + D * K;
        const logProbs = dynamic ? Array.from({ length: D }, (_, d) => Array.from(data.subarray(logAt + d * K, logAt + (d + 1) * K))) : null;
        draft = { ids, logProbs };
      }
      return { verdict, draft, finite: allTokens(best, model.vocabSize) && draftFinite(draft, model.vocabSize) };
    }
    const finite = data[0] === 1;
    let verdict: TreeVerdict;
    let at = 1;
    if (greedy) {
      verdict = greedyTreeAccept(tokens, children, data.subarray(1, 1 + R));
      at += R;
    } else if (o.acceptance === 'sampling') {
      verdict = samplingTreeAccept(tokens, children, data.subarray(1, 1 + N), u!, data.subarray(1 + N, 1 + N + R));
      at += N + R;
    } else {
      verdict = typicalTreeAccept(nodes, data.subarray(1, 1 + N), data.subarray(1 + N, 1 + 2 * N), data.subarray(1 + 2 * N, 1 + 2 * N + R));
      at += 2 * N + R;
    }
    const tip = verdict.path.length === 0 ? 0 : verdict.path[verdict.path.length - 1]! + 1;
    const draft = grow ? forestAt(data, at, R, tip, D, K) : draftAt(data, at, tip, D, K, dynamic ? at + R * D * K : null);
    return { verdict, draft, finite: finite && (!grow || draftFinite(draft, model.vocabSize)) };
  } finally {
    states.dispose();
    packed?.dispose();
  }
}
