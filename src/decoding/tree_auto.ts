/**
 * Choosing a draft tree's size: a measured default per backend (`TREE_BACKEND_DEFAULTS`,
 * {@link defaultTree}) and the two building blocks of `tree: 'auto'` —
 *
 * - {@link measureTreeCosts}: what one tree forward costs on this model and backend, per node
 *   budget, measured once (cached per model, backend, depth and budgets);
 * - {@link chooseBudget}: the node count that maximises expected tokens per millisecond, given the
 *   best-first nodes' cumulative draft log-probabilities and that cost table.
 *
 * The expected-acceptance argument is EAGLE-2's (Li et al. 2024, "EAGLE-2: Faster Inference of
 * Language Models with Dynamic Draft Trees", §4.1): a node's path probability — the product of
 * the draft confidences along its path — estimates the probability that the verifier accepts it,
 * so a tree of nodes 0…n−1 commits 1 + Σ exp(score_i) tokens per step in expectation (the bonus
 * token plus each node reached). Dividing by the measured step cost gives tokens per millisecond.
 * The numbers behind the per-backend defaults are in docs/performance.md ("Tree drafting").
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkInteger, fail, show } from '../internal/errors.js';
import { checkKeys } from '../internal/keys.js';
import { macrotask } from './event_loop.js';
import type { MultiTokenModel } from './model.js';
import { type DynamicTree, TREE_LIMITS } from './tree.js';
import { checkModel } from './validate.js';

/** The backends `TREE_BACKEND_DEFAULTS` has a measured entry for, and `fallback` for any other. @internal */
export type TreeBackend = 'cpu' | 'wasm' | 'webgl' | 'webgpu' | 'fallback';

/**
 * A dynamic tree per backend: the fastest tree measured on that backend on the committed models
 * (fixtures/tslib-k4; stories260K with its trained heads), k = 4, greedy acceptance. The runs
 * behind each entry are in bench/results/ (bench/results/README.md; docs/performance.md, "Draft trees").
 *
 * - cpu: 3 nodes — the plain-JS kernels cost in proportion to the rows, so only a tree as small as
 *   the chain pays: the fastest tree in 3 of 4 comparisons, ahead of the chain in 3 of 4.
 * - wasm: 3 nodes — the fastest tree in 3 of 4 comparisons (sequential modules: the static
 *   6-node tree); larger trees raise τ but cost more per step than they gain on these models.
 * - webgl: 3 nodes — the fastest tree on both models (SwiftShader).
 * - webgpu: 6 nodes — the forward cost per budget was flat from 1 to 6 nodes (SwiftShader), and
 *   the 6-node tree keeps more per step.
 * - fallback (any other backend, e.g. tensorflow in Node): 3 nodes, the tree whose forward is the
 *   chain's size: the safe choice where nothing was measured.
 * @internal
 */
export const TREE_BACKEND_DEFAULTS: Readonly<Record<TreeBackend, Readonly<DynamicTree>>> = Object.freeze({
  cpu: Object.freeze({ topK: 4, maxNodes: 3 }),
  wasm: Object.freeze({ topK: 4, maxNodes: 3 }),
  webgl: Object.freeze({ topK: 4, maxNodes: 3 }),
  webgpu: Object.freeze({ topK: 4, maxNodes: 6 }),
  fallback: Object.freeze({ topK: 4, maxNodes: 3 }),
});

/**
 * The measured default tree for `backend` (default: the running backend, `tf.getBackend()`; the
 * library only reads it), or `DECODE_DEFAULTS.tree` for a backend without one of its own.
 */
export function defaultTree(backend: string = tf.getBackend()): Readonly<DynamicTree> {
  if (typeof backend !== 'string') fail(TypeError, 'defaultTree', 'backend', 'must be a backend name (a string)', backend);
  const known = Object.prototype.hasOwnProperty.call(TREE_BACKEND_DEFAULTS, backend) && backend !== 'fallback';
  return known ? TREE_BACKEND_DEFAULTS[backend as TreeBackend] : TREE_BACKEND_DEFAULTS.fallback;
}

/** One row of a cost table: a tree of `nodes` draft nodes costs `ms` per step's forward. @internal */
export interface TreeCost {
  /** Draft nodes in the tree (the forward also feeds the root). */
  nodes: number;
  /** Median milliseconds of one tree forward plus the verifier's argmax over its rows, through one readback. */
  ms: number;
}

/** Options of {@link measureTreeCosts}. @internal */
export interface MeasureTreeCostsOptions {
  /** Timed forwards per budget (the median is kept), an integer in [1, 64], run in rounds over the budgets. Default: {@link TREE_AUTO_DEFAULTS}.repeats. */
  repeats?: number;
  /** Untimed forwards per budget first (shader compilation, kernel caches), an integer in [0, 16]. Default: {@link TREE_AUTO_DEFAULTS}.warmup. */
  warmup?: number;
  /** Aborting rejects with the signal's reason after restoring the model's cache and freeing every tensor; checked between forwards. */
  signal?: AbortSignal;
}

/** Defaults of `tree: 'auto'`'s building blocks, each with its reason. @internal */
export const TREE_AUTO_DEFAULTS = Object.freeze({
  /** The budgets worth measuring: from a chain-sized tree to 32 nodes, denser among the small trees, where the per-backend defaults lie. */
  budgets: Object.freeze([2, 4, 6, 8, 12, 16, 24, 32]) as readonly number[],
  /** Candidates per depth to grow the tree from: enough that 32 best-first nodes never run out of siblings. */
  topK: 8,
  /** Five timed forwards per budget: a median that one scheduling hiccup cannot move, for a few ms per budget. */
  repeats: 5,
  /** Two untimed forwards per budget: WebGL compiles a shader per shape on the first, caches warm on the second. */
  warmup: 2,
});

/** Most budgets one measurement takes (each costs `warmup + repeats` forwards). */
const MAX_BUDGETS = 32;

/** Measured tables per model, keyed by backend, depth and budgets. */
const measured = new WeakMap<MultiTokenModel, Map<string, readonly TreeCost[]>>();

/** The dummy tree of `n` nodes at most `depth` deep: chains of `depth` nodes under the root, the shape best-first trees mostly take. */
function dummyTree(n: number, depth: number, vocabSize: number): { tokens: number[]; parents: number[] } {
  const tokens = [0];
  const parents = [-1]; // the root: a committed token under the cached prefix
  for (let i = 0; i < n; i++) {
    tokens.push((i + 1) % vocabSize);
    parents.push(i % depth === 0 ? 0 : i); // fed index i is node i − 1, the previous node of this chain
  }
  return { tokens, parents };
}

/** One timed forward of `tree` and the verifier's argmax over its rows, then the cache back to `length` rows. */
async function timeForward(model: Required<Pick<MultiTokenModel, 'forwardTree' | 'keepRows'>> & MultiTokenModel, tree: { tokens: number[]; parents: number[] }): Promise<number> {
  const t0 = performance.now();
  let best: tf.Tensor | undefined;
  const states = model.forwardTree(tree.tokens, tree.parents); // [n + 1, S]
  try {
    best = tf.tidy(() => (model.headArgmax ? model.headArgmax(states, 1) : tf.argMax(tf.squeeze(model.headLogits(states, [0]), [1]), 1))); // [n + 1(, 1)]
    await best.data();
    return performance.now() - t0;
  } finally {
    states.dispose();
    best?.dispose();
    model.keepRows([]);
  }
}

/**
 * What a tree step's forward costs on `model` and the running backend, per node budget: for each
 * budget, a dummy tree of that many nodes (chains at most `depth` deep under one root token) runs
 * through `forwardTree` and the verifier's argmax over its rows, `warmup` rounds untimed and
 * `repeats` rounds timed (`performance.now()` around the forward and one awaited `data()`; a round
 * runs every budget once, so that other work on the machine hits every budget alike); the median
 * is kept. Measured once per (model, backend, depth, budgets): later calls return the same
 * table. The model's cache is left as it was (every fed row is dropped with `keepRows([])`, or
 * `truncate` after a throw), and no tensor is left behind, also after a throw or an abort. The
 * event loop gets a turn between forwards, so a page stays responsive and a signal aborted by a
 * timer is seen (the call rejects with its reason). It feeds the model, so call it between decodes,
 * never while one runs.
 *
 * @param model A model with `forwardTree` and `keepRows` (e.g. `CachedTransformer`).
 * @param budgets Node counts to measure, increasing integers in [1, `TREE_LIMITS.maxNodes`] (at most 32 of them).
 * @param depth Deepest depth of the dummy trees, an integer in [1, numHeads − 1] (the decode's `draftLength`).
 * @returns The cost table, one {@link TreeCost} per budget in the budgets' order.
 * @internal
 */
export async function measureTreeCosts(
  model: MultiTokenModel,
  budgets: readonly number[] = TREE_AUTO_DEFAULTS.budgets,
  depth: number = model?.numHeads - 1,
  options: MeasureTreeCostsOptions = {},
): Promise<readonly TreeCost[]> {
  const fn = 'measureTreeCosts';
  checkModel(fn, model);
  const missing = (['forwardTree', 'keepRows'] as const).filter((m) => typeof model[m] !== 'function');
  if (missing.length > 0) throw new TypeError(`${fn}: model must have forwardTree and keepRows (a tree forward, then dropping its rows), but model.${missing.join(' and model.')} ${missing.length > 1 ? 'are' : 'is'} missing.`);
  if (!Array.isArray(budgets) || budgets.length < 1 || budgets.length > MAX_BUDGETS) fail(RangeError, fn, 'budgets', `must be an array of 1 to ${MAX_BUDGETS} node counts`, budgets);
  budgets.forEach((b, i) => checkInteger(fn, `budgets[${i}]`, b, i === 0 ? 1 : budgets[i - 1]! + 1, TREE_LIMITS.maxNodes));
  checkInteger(fn, 'depth', depth, 1, Math.max(1, model.numHeads - 1));
  if (options === null || typeof options !== 'object') fail(TypeError, fn, 'options', 'must be an object', options);
  checkKeys(fn, 'options', options, ['repeats', 'warmup', 'signal']);
  const { repeats = TREE_AUTO_DEFAULTS.repeats, warmup = TREE_AUTO_DEFAULTS.warmup, signal } = options;
  checkInteger(fn, 'options.repeats', repeats, 1, 64);
  checkInteger(fn, 'options.warmup', warmup, 0, 16);
  if (signal !== undefined && (signal === null || typeof signal !== 'object' || typeof signal.throwIfAborted !== 'function')) {
    fail(TypeError, fn, 'options.signal', 'must be an AbortSignal', signal);
  }
  const length = model.length;
  if (length + depth + 1 > model.maxLength) {
    throw new RangeError(`${fn}: a tree ${depth} deep must fit the context (length ${length} + ${depth + 1} ≤ maxLength = ${model.maxLength}), but it does not.`);
  }
  const key = `${tf.getBackend()}|${depth}|${budgets.join(',')}`;
  const cached = measured.get(model)?.get(key);
  if (cached !== undefined) return cached;
  signal?.throwIfAborted();
  const treeModel = model as Parameters<typeof timeForward>[0];
  const trees = budgets.map((n) => dummyTree(n, depth, model.vocabSize));
  const times: number[][] = budgets.map(() => []);
  try {
    // round-robin over the budgets, so that a burst of other work hits every budget alike
    for (let r = 0; r < warmup + repeats; r++) {
      for (const [i, tree] of trees.entries()) {
        await macrotask(); // a turn for timers and events between forwards (a readback alone resolves as a microtask on cpu and wasm), untimed
        signal?.throwIfAborted();
        const ms = await timeForward(treeModel, tree);
        if (r >= warmup) times[i]!.push(ms);
      }
    }
  } finally {
    if (model.length !== length) model.truncate(length); // a forward threw after appending: drop what it fed
  }
  const frozen = Object.freeze(budgets.map((nodes, i) => Object.freeze({ nodes, ms: median(times[i]!) })));
  if (!measured.has(model)) measured.set(model, new Map());
  measured.get(model)!.set(key, frozen);
  return frozen;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `costs`' ms at `n` nodes: linear between measured budgets, the nearest measured one outside them. */
function costAt(costs: readonly TreeCost[], n: number): number {
  if (n <= costs[0]!.nodes) return costs[0]!.ms;
  for (let i = 1; i < costs.length; i++) {
    const [a, b] = [costs[i - 1]!, costs[i]!];
    if (n <= b.nodes) return a.ms + ((b.ms - a.ms) * (n - a.nodes)) / (b.nodes - a.nodes);
  }
  return costs[costs.length - 1]!.ms;
}

/**
 * How many of a step's best-first nodes to verify: the n in [1, min(scores.length, the largest
 * budget in `costs`)] maximising (1 + Σ_{i<n} exp(scores[i])) / cost(n) — expected tokens committed
 * per step (EAGLE-2 §4.1: a node's path probability estimates its acceptance; 1 for the bonus
 * token) per millisecond. cost(n) interpolates `costs` linearly between measured budgets (the
 * nearest measured budget's ms below the smallest). Ties go to the smaller tree. Returns 0 when
 * there are no nodes. Pure and synchronous, cheap enough for every step.
 *
 * @param scores Cumulative draft log-probabilities of the nodes in best-first order (non-increasing, each ≤ 0 or −Infinity).
 * @param costs A cost table as {@link measureTreeCosts} returns: node counts increasing, ms finite and positive.
 * @internal
 */
export function chooseBudget(scores: ArrayLike<number>, costs: readonly TreeCost[]): number {
  const fn = 'chooseBudget';
  if (scores === null || typeof scores !== 'object' || typeof scores.length !== 'number') fail(TypeError, fn, 'scores', 'must be an array of log-probabilities', scores);
  if (!Array.isArray(costs) || costs.length < 1) fail(TypeError, fn, 'costs', 'must be a non-empty cost table (measureTreeCosts)', costs);
  costs.forEach((c: TreeCost, i) => {
    const min = i === 0 ? 1 : costs[i - 1]!.nodes + 1;
    if (c === null || typeof c !== 'object' || !Number.isInteger(c.nodes) || c.nodes < min) {
      fail(RangeError, fn, `costs[${i}].nodes`, `must be an integer ≥ ${min} (node counts increasing)`, c?.nodes);
    }
    if (typeof c.ms !== 'number' || !Number.isFinite(c.ms) || !(c.ms > 0)) fail(RangeError, fn, `costs[${i}].ms`, 'must be a finite number > 0', c.ms);
  });
  const limit = Math.min(scores.length, costs[costs.length - 1]!.nodes);
  let [best, bestRate, expected] = [0, 0, 1];
  for (let n = 1; n <= limit; n++) {
    const s = scores[n - 1]!;
    const previous = n === 1 ? 0 : scores[n - 2]!;
    if (typeof s !== 'number' || Number.isNaN(s) || s > 0 || s > previous) {
      throw new RangeError(`${fn}: scores must be non-increasing log-probabilities ≤ 0, but scores[${n - 1}] is ${show(s)}${n > 1 ? ` after ${show(previous)}` : ''}.`);
    }
    expected += Math.exp(s);
    const rate = expected / costAt(costs, n);
    if (rate > bestRate) [best, bestRate] = [n, rate];
  }
  return best;
}
