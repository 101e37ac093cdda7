/**
 * Draft trees: which candidate continuations a tree step verifies. A tree hangs under the root —
 * the last committed token — and a node at depth d holds one of offset d's candidates at the
 * node the previous step accepted (Medusa's parallel heads: every depth-d node draws from the same
 * offset-d distribution, ranked by probability). Two ways to choose the nodes:
 *
 * - static: a list of paths of per-depth candidate ranks, Medusa's `medusa_choices` form
 *   (Cai et al. 2024, §2.1.2): `[1, 0]` is the 2nd candidate of offset 1 followed by the 1st of
 *   offset 2. Every proper prefix of a path must be a path too.
 * - dynamic `{ topK, maxNodes }`: each step, the `maxNodes` paths of the highest cumulative draft
 *   log-probability among the top-`topK` candidates per depth (EAGLE-2's re-ranking rule, Li et
 *   al. 2024, §4.2, with the parallel heads' log-probabilities as the draft confidence).
 *
 * Drafts whose output depends on the drafted tokens before them (sequential MTP modules) make a
 * node's children depend on the node's own token, so per-depth ranks no longer describe them. A
 * model with `headTree` grows a candidate forest instead (EAGLE-2 §4.1: per depth, the `topK`
 * candidates of the highest cumulative log-probability are expanded, each through the next module
 * fed its own token), and a dynamic tree keeps the forest's `maxNodes` best candidates by path
 * score (§4.2). Static trees keep their rank semantics with every model: rank r at depth d is the
 * r-th candidate of offset d along the top-1 chain (for sequential modules, offset d conditioned on
 * the argmax tokens of offsets 1…d−1, whatever the node's ancestors are).
 *
 * Nodes are kept in topological order (a parent before its children) and, among siblings, in
 * rank order — the order the acceptance walks try them in.
 */
import { fail, show } from '../internal/errors.js';
import { checkKeys } from '../internal/keys.js';
import { TREE_AUTO_DEFAULTS } from './tree_auto.js';

/** A static tree: paths of per-depth candidate ranks (0 = the most likely), e.g. `[[0], [1], [0, 0]]`. @inline */
export type TreePaths = readonly (readonly number[])[];

/** A dynamic tree grown each step from the heads' top-k (EAGLE-2). */
export interface DynamicTree {
  /** Candidates per depth, an integer in [1, 64] (and at most the vocabulary). */
  topK: number;
  /** Most draft nodes per step, an integer in [1, 256]. */
  maxNodes: number;
}

/**
 * `speculativeDecode`'s `tree` option: static paths, a dynamic tree, or `'auto'` — a dynamic tree
 * whose size is chosen each step: the best-first nodes' expected accepted tokens per millisecond,
 * against the step costs measured while decoding (as `draftLength: 'auto'` sizes a chain).
 */
export type TreeOption = TreePaths | DynamicTree | 'auto';

/** Bounds of a tree, checked before anything is allocated (stated in {@link DynamicTree}'s fields). @internal */
export const TREE_LIMITS = Object.freeze({
  /** Draft nodes per step: the forward runs over all of them (Medusa's largest published tree has 63; EAGLE-2 verifies ≤ 60). */
  maxNodes: 256,
  /** Candidates per depth (and the highest static rank + 1). */
  topK: 64,
});

/** One draft node: its parent (−1 = the root), its depth (1 = offset 1) and its candidate rank. */
export interface TreeNode {
  parent: number;
  depth: number;
  rank: number;
}

/** A tree option after validation (internal). */
export interface TreeSpec {
  /** The static nodes, or null for a dynamic tree. */
  nodes: TreeNode[] | null;
  /** Candidates per depth the heads must rank (highest static rank + 1, or `topK`). */
  topK: number;
  /** Node budget of a dynamic tree (the static tree's size otherwise). */
  maxNodes: number;
  /** Deepest depth (offsets 1…depth are drafted). */
  depth: number;
  /** `'auto'`: each step keeps the best-first prefix `chooseBudget` picks (at most `maxNodes`). */
  auto: boolean;
}

/** Per-depth candidates (parallel heads): per depth d (index d − 1), the top-k ids and their log-probabilities. */
export interface RankDraft {
  ids: number[][];
  logProbs: number[][] | null;
}

/**
 * A candidate forest grown by the model (`MultiTokenModel.headTree`, sequential modules): one entry
 * per candidate in generation order — its token, its parent (an earlier index, −1 = a child of the
 * root), its rank among its siblings and its path's summed log-probability.
 */
export interface ForestDraft {
  forest: { tokens: number[]; parents: number[]; ranks: number[]; scores: number[] };
}

/** The candidates a step drafted at the node it accepted, for the next tree: per-depth ranks, or a grown forest. */
export type TreeDraft = RankDraft | ForestDraft;

/** A tree ready to feed: node tokens, their parents and depths. */
export interface DraftTree {
  nodes: TreeNode[];
  tokens: number[];
}

const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);

/** Validates the `tree` option against the model (`draftLength` is the deepest allowed depth). */
export function resolveTree(fn: string, tree: unknown, draftLength: number, vocabSize: number): TreeSpec {
  const arg = 'options.tree';
  if (Array.isArray(tree)) return staticTree(fn, tree, draftLength, vocabSize);
  if (tree === 'auto') {
    if (draftLength < 1) fail(RangeError, fn, 'options.draftLength', 'must be at least 1 with options.tree', draftLength);
    const budgets = TREE_AUTO_DEFAULTS.budgets;
    return { nodes: null, topK: Math.min(TREE_AUTO_DEFAULTS.topK, vocabSize), maxNodes: budgets[budgets.length - 1]!, depth: draftLength, auto: true };
  }
  if (tree === null || typeof tree !== 'object') {
    fail(TypeError, fn, arg, "must be a list of paths of candidate ranks (e.g. [[0], [1], [0, 0]]), { topK, maxNodes } or 'auto'", tree);
  }
  checkKeys(fn, arg, tree, ['topK', 'maxNodes']);
  const { topK, maxNodes } = tree as Partial<DynamicTree>;
  const maxK = Math.min(TREE_LIMITS.topK, vocabSize);
  if (!isInt(topK) || topK < 1 || topK > maxK) fail(RangeError, fn, `${arg}.topK`, `must be an integer in [1, ${maxK}]`, topK);
  if (!isInt(maxNodes) || maxNodes < 1 || maxNodes > TREE_LIMITS.maxNodes) {
    fail(RangeError, fn, `${arg}.maxNodes`, `must be an integer in [1, ${TREE_LIMITS.maxNodes}]`, maxNodes);
  }
  if (draftLength < 1) fail(RangeError, fn, 'options.draftLength', 'must be at least 1 with options.tree', draftLength);
  return { nodes: null, topK, maxNodes, depth: draftLength, auto: false };
}

/** Checks a static tree's paths and orders them into nodes (by depth, then by ranks). */
function staticTree(fn: string, paths: unknown[], draftLength: number, vocabSize: number): TreeSpec {
  const arg = 'options.tree';
  if (paths.length < 1 || paths.length > TREE_LIMITS.maxNodes) fail(RangeError, fn, `${arg}.length`, `must be in [1, ${TREE_LIMITS.maxNodes}] paths`, paths.length);
  const maxRank = Math.min(TREE_LIMITS.topK, vocabSize) - 1;
  const keys = new Set<string>();
  for (let i = 0; i < paths.length; i++) { // indices, not forEach: a hole in a sparse array is a missing path, not a skipped one
    const path: unknown = paths[i];
    if (!Array.isArray(path) || path.length < 1 || path.length > draftLength) {
      fail(RangeError, fn, `${arg}[${i}]`, `must be a non-empty array of at most draftLength = ${draftLength} ranks`, path);
    }
    for (let d = 0; d < path.length; d++) {
      const r: unknown = path[d];
      if (!isInt(r) || r < 0 || r > maxRank) fail(RangeError, fn, `${arg}[${i}][${d}]`, `must be a candidate rank, an integer in [0, ${maxRank}]`, r);
    }
    const key = path.join(',');
    if (keys.has(key)) fail(RangeError, fn, `${arg}[${i}]`, 'must not repeat an earlier path', path);
    keys.add(key);
  }
  const sorted = (paths as number[][]).slice().sort((a, b) => a.length - b.length || compareRanks(a, b));
  for (const path of sorted) {
    const parent = path.slice(0, -1);
    if (parent.length > 0 && !keys.has(parent.join(','))) {
      throw new RangeError(`${fn}: ${arg} must contain every prefix of its paths, but ${show(path)} has no ${show(parent)}.`);
    }
  }
  const index = new Map(sorted.map((p, i) => [p.join(','), i]));
  const nodes = sorted.map((p) => ({ parent: p.length === 1 ? -1 : index.get(p.slice(0, -1).join(','))!, depth: p.length, rank: p[p.length - 1]! }));
  return { nodes, topK: Math.max(...nodes.map((n) => n.rank)) + 1, maxNodes: nodes.length, depth: Math.max(...nodes.map((n) => n.depth)), auto: false };
}

function compareRanks(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/**
 * The dynamic tree: the `maxNodes` paths of the highest summed log-probability, found best-first
 * (a node's first child and next sibling enter the frontier when it is taken; both score no higher
 * than it, so the nodes come out in non-increasing score and every parent before its children).
 */
function bestPaths(logProbs: number[][], topK: number, maxNodes: number): { nodes: TreeNode[]; scores: number[] } {
  const depth = logProbs.length;
  const nodes: TreeNode[] = [];
  const scores: number[] = [];
  // Frontier entries: a candidate node (parent index, depth, rank) and its score.
  const frontier: { parent: number; depth: number; rank: number; score: number }[] = [{ parent: -1, depth: 1, rank: 0, score: logProbs[0]![0]! }];
  while (nodes.length < maxNodes && frontier.length > 0) {
    let best = 0;
    for (let i = 1; i < frontier.length; i++) if (frontier[i]!.score > frontier[best]!.score) best = i;
    const f = frontier.splice(best, 1)[0]!;
    if (!(f.score > -Infinity)) break; // candidates of probability 0 (or NaN: the step reports it) are not worth a node
    nodes.push({ parent: f.parent, depth: f.depth, rank: f.rank });
    scores.push(f.score);
    const base = f.parent < 0 ? 0 : scores[f.parent]!;
    if (f.rank + 1 < topK) frontier.push({ ...f, rank: f.rank + 1, score: base + logProbs[f.depth - 1]![f.rank + 1]! });
    if (f.depth < depth) frontier.push({ parent: nodes.length - 1, depth: f.depth + 1, rank: 0, score: f.score + logProbs[f.depth]![0]! });
  }
  return { nodes, scores };
}

/**
 * The candidates of the tree to verify next, best first where the tree has scores: the spec's
 * nodes (dynamic: chosen from `draft`'s log-probabilities, or the best of its grown forest), cut to
 * the depths that fit `room` more positions, with their tokens from `draft`. A prefix of the
 * nodes is a tree too (parents come first), which is how `tree: 'auto'` sizes it.
 */
export function growTree(spec: TreeSpec, draft: TreeDraft | null, room: number): { nodes: TreeNode[]; tokens: number[]; scores: number[] } {
  if (draft === null || room < 1) return { nodes: [], tokens: [], scores: [] };
  let all: TreeNode[];
  let scores: number[] = [];
  let tokenOf: (n: TreeNode, i: number) => number;
  if ('forest' in draft) {
    const best = bestOfForest(draft.forest, spec.maxNodes);
    [all, scores] = [best.nodes, best.scores];
    tokenOf = (_, i) => best.tokens[i]!;
  } else {
    if (spec.nodes !== null) all = spec.nodes;
    else ({ nodes: all, scores } = bestPaths(draft.logProbs!, spec.topK, spec.maxNodes));
    tokenOf = (n) => draft.ids[n.depth - 1]![n.rank]!;
  }
  const kept: TreeNode[] = [];
  const tokens: number[] = [];
  const keptScores: number[] = [];
  const renumber = new Map<number, number>();
  const clean = monotone(scores);
  all.forEach((n, i) => {
    if (n.depth > room) return; // a parent is shallower, so what is kept stays a tree
    renumber.set(i, kept.length);
    kept.push({ ...n, parent: n.parent < 0 ? -1 : renumber.get(n.parent)! });
    tokens.push(tokenOf(n, i));
    if (clean.length > 0) keptScores.push(clean[i]!);
  });
  return { nodes: kept, tokens, scores: keptScores };
}

/**
 * EAGLE-2's re-ranking (Li et al. 2024, §4.2) of a grown forest: the `maxNodes` candidates of the
 * highest path score, ordered by score (ties: generation order). A candidate's score is its
 * parent's plus a log-probability ≤ 0 and its parent was generated before it, so every parent
 * comes first: the kept candidates form a tree in topological order, siblings in rank order.
 */
function bestOfForest(f: ForestDraft['forest'], maxNodes: number): DraftTree & { scores: number[] } {
  const order = f.scores
    .map((score, i) => ({ score, i }))
    .filter((c) => c.score > -Infinity) // probability 0 (or NaN: the step reports it) is not worth a node
    .sort((a, b) => b.score - a.score || a.i - b.i);
  const index = new Map<number, number>();
  const nodes: TreeNode[] = [];
  const tokens: number[] = [];
  const scores: number[] = [];
  for (const { i, score } of order) {
    if (nodes.length === maxNodes) break;
    const p = f.parents[i]!;
    const parent = p < 0 ? -1 : index.get(p);
    if (parent === undefined) continue; // only a score above its parent's could get here: not a tree path
    index.set(i, nodes.length);
    nodes.push({ parent, depth: parent < 0 ? 1 : nodes[parent]!.depth + 1, rank: f.ranks[i]! });
    tokens.push(f.tokens[i]!);
    scores.push(score);
  }
  return { nodes, tokens, scores };
}

/** Best-first scores made exactly non-increasing and ≤ 0 (a log-softmax of probability ≈ 1 can round a hair above 0). */
function monotone(scores: readonly number[]): number[] {
  let last = 0;
  return scores.map((s) => (last = Math.min(last, s)));
}

/** The children of the root (index 0) and of each node (index i + 1), in node order. */
export function childrenOf(nodes: readonly TreeNode[]): number[][] {
  const children: number[][] = Array.from({ length: nodes.length + 1 }, () => []);
  nodes.forEach((n, i) => children[n.parent + 1]!.push(i));
  return children;
}
