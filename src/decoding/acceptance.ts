/**
 * The acceptance rules, written once, on the device, for a draft tree (a chain is a tree with one
 * child per node). A step fed the root — the last committed token — and N draft nodes; offset 0
 * at row r (row 0 the root, row i + 1 node i) predicts the token after that row. Each rule
 * decides, without a readback, the tip: the row where the accepted root-to-node path ends, and
 * the token the verifier commits after it.
 *
 * - greedy: a node is accepted when it and every ancestor equal offset 0's argmax at their parent
 *   (Stern et al. 2018, §3; Medusa's `cumprod(candidates == argmax).sum()`; SpecInfer's greedy
 *   verification). The next token is the argmax at the tip. Output identical to greedy decoding.
 * - sampling: at each row the children are tried in order; child x is accepted with probability
 *   min(1, p′(x)/q(x)), p′ the residual the earlier rejections at that row left, and when all are
 *   rejected the token is drawn from norm(max(0, p′ − q)) (Leviathan et al. 2023, Algorithm 1;
 *   SpecInfer, Miao et al. 2024, Algorithm 2 `VerifyStochastic`). A sampled chain carries each
 *   draft's q; every other proposal is a point mass (q(x) = 1), where child i is accepted with
 *   probability p(xᵢ) / (1 − Σ_{j<i} p(xⱼ)) and the residual is p without the rejected children.
 *   The output is distributed exactly as sampling from p.
 * - typical (lossy, Medusa §2.3.1): a node passes when p(x) > min(ε, δ·exp(−H(p))) at its parent;
 *   the deepest all-passing path wins (among equals the most likely), and the token after it is
 *   sampled from p at its end.
 *
 * Each node's test is independent given its own uniform, so "the first passing child of each
 * row, then the longest run of such children from the root" is one vector of tests, one matMul
 * with the ancestor-or-self matrix (a cumulative sum on a chain) and one argmax — no walk.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DraftTree } from './drafters.js';
import { sampleRows, toProbabilities, type SamplingSettings } from './distributions.js';
import { fusedGreedyVerdict } from '../kernels/ops.js';
import { fusedKernelsAvailable } from '../kernels/registry.js';

/** A rule's decision, on the device (int32, `[1]` each). */
export interface Verdict {
  /** The row the accepted path ends on: 0 (the root: no draft kept) or node index + 1. */
  tip: tf.Tensor1D;
  /** The token after the accepted path: the verifier's correction or bonus token. */
  next: tf.Tensor1D;
  /** Greedy, where one kernel decided: `[tip, best…]`, the step's readback of the rule (int32 `[R + 1]`). */
  packed?: tf.Tensor1D;
}

/** A proposal's shape as the rules need it (plain numbers; uploaded by the rule that uses them). */
export interface TreeShape {
  /** Draft nodes N. */
  N: number;
  /** One chain (node i under node i − 1): cumulative sums replace the ancestry matMul. */
  path: boolean;
  /** Per node, its parent's row (0 = the root, j + 1 = node j). */
  parentRow: number[];
  /** Per node, its depth. */
  depth: number[];
  /** Per row, its child nodes in order (the order acceptance tries them in). */
  children: number[][];
  /** Per node, its draft token. */
  tokens: number[];
  /** Whether some node has an earlier sibling (the sampling rule then conditions on their rejection). */
  siblings: boolean;
}

/** The shape of `tree` for the rules. */
export function treeShape(tree: DraftTree): TreeShape {
  const N = tree.tokens.length;
  const children: number[][] = Array.from({ length: N + 1 }, () => []);
  tree.parents.forEach((p, i) => children[p + 1]!.push(i));
  return {
    N,
    path: tree.path,
    parentRow: tree.parents.map((p) => p + 1),
    depth: tree.depth,
    children,
    tokens: tree.tokens,
    siblings: children.some((c) => c.length > 1),
  };
}

/** `[N, N]` float32 with 1 where column j is an earlier sibling of row i (same parent, earlier index). */
function earlierSiblings(s: TreeShape): tf.Tensor2D {
  const m = new Float32Array(s.N * s.N);
  for (const c of s.children) c.forEach((i, a) => c.slice(0, a).forEach((j) => (m[i * s.N + j] = 1)));
  return tf.tensor2d(m, [s.N, s.N]);
}

/** `[N, N]` float32 with 1 where column a is row n itself or one of its ancestors. */
function ancestry(s: TreeShape): tf.Tensor2D {
  const m = new Float32Array(s.N * s.N);
  for (let n = 0; n < s.N; n++) for (let a = n; a >= 0; a = s.parentRow[a]! - 1) m[n * s.N + a] = 1;
  return tf.tensor2d(m, [s.N, s.N]);
}

/** Per node, the sum of `x` `[N]` over the node and its ancestors → `[N]`. */
function alongPath(s: TreeShape, x: tf.Tensor1D): tf.Tensor1D {
  if (s.path) return tf.cumsum(x); // a chain's ancestors are the nodes before it
  return tf.reshape(tf.matMul(ancestry(s), tf.reshape(x, [s.N, 1])), [s.N]) as tf.Tensor1D;
}

/** Per node, the sum of `x` `[N]` over its earlier siblings → `[N]` (only when `s.siblings`). */
function overEarlierSiblings(s: TreeShape, x: tf.Tensor1D): tf.Tensor1D {
  return tf.reshape(tf.matMul(earlierSiblings(s), tf.reshape(x, [s.N, 1])), [s.N]) as tf.Tensor1D;
}

/**
 * The tip of the accepted path, int32 `[1]`, when node i is accepted at its parent exactly where
 * `ok[i]` holds (at most one child per row: greedy and sampling): the deepest node whose whole
 * path is ok, or the root. On a chain, the number of leading ok nodes.
 */
export function tipOf(s: TreeShape, ok: tf.Tensor1D): tf.Tensor1D {
  if (s.path) return tf.reshape(tf.sum(tf.cumprod(tf.cast(ok, 'int32'))), [1]) as tf.Tensor1D; // a chain: the run of accepted nodes from the root (Medusa's cumprod)
  const misses = alongPath(s, tf.cast(tf.logicalNot(ok), 'float32') as tf.Tensor1D); // [N] rejections on the path to each node
  const clear = tf.cast(tf.equal(misses, 0), 'int32') as tf.Tensor1D; // [N] 1 where the whole path is accepted
  const rank = tf.tensor1d(s.depth.map((d, i) => d * (s.N + 1) - i), 'int32'); // [N] deeper first, then earlier (all > 0)
  return tf.reshape(tf.cast(tf.argMax(tf.concat([tf.zeros([1], 'int32'), tf.mul(clear, rank)]), 0), 'int32'), [1]) as tf.Tensor1D;
}

/** `x[parentRow[i]]` for every node: a slice on a chain, a gather otherwise → `[N]`. */
function atParents<T extends tf.Tensor>(s: TreeShape, x: T): T {
  if (s.path) return tf.slice(x, 0, s.N) as T;
  return tf.gather(x, tf.tensor1d(s.parentRow, 'int32')) as T;
}

/** p(node's token) at its parent's row, for every node: one gather on the flattened `[R, V]` table → `[N]`. */
function probAtParents(s: TreeShape, p: tf.Tensor2D): tf.Tensor1D {
  const V = p.shape[1];
  const flat = s.tokens.map((t, i) => s.parentRow[i]! * V + t);
  return tf.gather(tf.reshape(p, [-1]), tf.tensor1d(flat, 'int32')) as tf.Tensor1D;
}

/**
 * Greedy acceptance from the verifier's argmax `best` int32 `[R]` at every row (row 0 the root).
 */
export function greedyVerdict(s: TreeShape, best: tf.Tensor1D): Verdict {
  if (s.N === 0) return { tip: tf.zeros([1], 'int32'), next: best }; // no node: the root, and its argmax ([1] already)
  if (fusedKernelsAvailable()) {
    const [packed, tip, next] = fusedGreedyVerdict(best, s); // cpu, wasm: one kernel for what follows
    return { tip, next, packed };
  }
  const ok = tf.equal(atParents(s, best), tf.tensor1d(s.tokens, 'int32')) as tf.Tensor1D; // [N] each node is its parent's argmax
  const tip = tipOf(s, ok);
  return { tip, next: tf.gather(best, tip) as tf.Tensor1D };
}

/**
 * Speculative sampling on a tree. `logits` `[R, V]` are offset 0's at every row, `u` `[N + 1]`
 * (one uniform per node, then one for the token after the path), `q` `[N, V]` the distributions
 * a sampled chain drew its drafts from (null: every node is a point mass).
 */
export function samplingVerdict(s: TreeShape, logits: tf.Tensor2D, u: tf.Tensor1D, q: tf.Tensor2D | null, settings: SamplingSettings): Verdict {
  const p = toProbabilities(logits, settings); // [R, V]
  const uLast = tf.slice(u, s.N, 1); // [1]
  if (s.N === 0) return { tip: tf.zeros([1], 'int32'), next: sampleRows(p, uLast) };
  if (q !== null && !s.path) throw new Error('samplingVerdict: draft distributions q come with a chain only.');
  const V = p.shape[1];
  const pAt = probAtParents(s, p); // [N] p(x) at the parent
  let test = tf.slice(u, 0, s.N); // [N] u, scaled below so that "test < p(x)" is the rule
  if (q !== null) test = tf.mul(test, tf.gather(tf.reshape(q, [-1]), tf.tensor1d(s.tokens.map((t, i) => i * V + t), 'int32'))); // u·q(x)
  let ok: tf.Tensor1D;
  if (s.siblings) {
    test = tf.mul(test, tf.sub(1, overEarlierSiblings(s, pAt))); // u·(1 − mass of the earlier, rejected siblings)
    const passes = tf.less(test, pAt) as tf.Tensor1D;
    const earlierPass = overEarlierSiblings(s, tf.cast(passes, 'float32') as tf.Tensor1D); // [N] the walk stops at the first passing child
    ok = tf.logicalAnd(passes, tf.equal(earlierPass, 0)) as tf.Tensor1D;
  } else {
    ok = tf.less(test, pAt) as tf.Tensor1D; // [N] u·q(x) < p(x): accepted with probability min(1, p(x)/q(x))
  }
  const tip = tipOf(s, ok);
  const pTip = tf.gather(p, tip) as tf.Tensor2D; // [1, V]
  let residual: tf.Tensor2D;
  if (q !== null) {
    const qTip = tf.gather(tf.concat([q, tf.zeros([1, V])]), tip); // [1, V] the rejected draft's q (zeros after the last row: the bonus token)
    residual = tf.relu(tf.sub(pTip, qTip)) as tf.Tensor2D; // norm(max(0, p − q)), normalised by sampleRows
  } else {
    const width = Math.max(1, ...s.children.map((c) => c.length));
    const table = s.children.flatMap((c) => Array.from({ length: width }, (_, i) => (i < c.length ? s.tokens[c[i]!]! : -1))); // [R, C] −1 padded
    const rejected = tf.gather(tf.tensor2d(table, [s.N + 1, width], 'int32'), tip); // [1, C] the tip's children: all rejected
    const mask = tf.sum(tf.oneHot(tf.reshape(rejected, [width]), V), 0); // [V] 1 at each (a one-hot of −1 is all zeros)
    residual = tf.mul(pTip, tf.sub(1, tf.cast(mask, 'float32'))) as tf.Tensor2D; // p without the rejected children
  }
  const safe = tf.where(tf.greater(tf.sum(residual), 0), residual, pTip) as tf.Tensor2D; // no residual mass: rejection had probability 0
  return { tip, next: sampleRows(safe, uLast) };
}

/** Entropy in nats of each row of `probs` `[n, V]` → `[n]`. */
function entropy(probs: tf.Tensor2D): tf.Tensor1D {
  return tf.neg(tf.sum(tf.mul(probs, tf.log(tf.maximum(probs, tf.scalar(1e-30)))), 1)) as tf.Tensor1D;
}

/**
 * Typical acceptance (lossy): `logits` `[R, V]` offset 0's at every row, `u` `[1]` the uniform of
 * the token after the path, ε = `threshold`, δ = `alpha`.
 */
export function typicalVerdict(s: TreeShape, logits: tf.Tensor2D, u: tf.Tensor1D, settings: SamplingSettings, threshold: number, alpha: number): Verdict {
  const p = toProbabilities(logits, settings); // [R, V]
  let tip: tf.Tensor1D = tf.zeros([1], 'int32');
  if (s.N > 0) {
    const bar = tf.minimum(tf.scalar(threshold), tf.mul(tf.scalar(alpha), tf.exp(tf.neg(entropy(p))))) as tf.Tensor1D; // [R]
    const pAt = probAtParents(s, p); // [N]
    const ok = tf.greater(pAt, atParents(s, bar)) as tf.Tensor1D; // [N] plausible at its parent
    if (s.path) {
      tip = tipOf(s, ok);
    } else {
      const clear = tf.equal(alongPath(s, tf.cast(tf.logicalNot(ok), 'float32') as tf.Tensor1D), 0); // [N] the whole path passes
      const depth = tf.mul(tf.cast(clear, 'int32'), tf.tensor1d(s.depth, 'int32')); // [N] depth of a passing path, else 0
      const deepest = tf.max(depth); // [] 0: none passes
      const likelihood = alongPath(s, tf.log(tf.maximum(pAt, tf.scalar(1e-30))) as tf.Tensor1D); // [N] Σ log p along the path (Medusa's evaluate_posterior); clamped: 0·(−∞) in the matMul would be NaN
      const candidate = tf.logicalAnd(tf.equal(depth, deepest), tf.greater(depth, 0)); // [N]
      const best = tf.argMax(tf.where(candidate, likelihood, tf.fill([s.N], -Infinity)), 0); // [] first among equals
      tip = tf.reshape(tf.where(tf.greater(deepest, 0), tf.add(tf.cast(best, 'int32'), tf.scalar(1, 'int32')), tf.scalar(0, 'int32')), [1]) as tf.Tensor1D;
    }
  }
  return { tip, next: sampleRows(tf.gather(p, tip) as tf.Tensor2D, u) };
}
