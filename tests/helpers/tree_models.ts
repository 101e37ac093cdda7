/**
 * A Markov table model (tests/helpers' TableModel) that also runs tree steps: its state is the
 * one-hot of each fed token, so a node's logits depend on its own token only and `forwardTree`
 * needs no attention; `keepRows` keeps the cursor's bookkeeping honest (it refuses what a
 * CachedTransformer refuses). For the sampling distribution tests, where exact answers are known
 * in closed form.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TableModel } from './toy_models.js';

export class TreeTableModel extends TableModel {
  /** Every tree fed, as [tokens, parents]. */
  readonly trees: [number[], number[]][] = [];
  private lastFed = 0;

  override forward(tokenIds: readonly number[]): tf.Tensor2D {
    this.lastFed = tokenIds.length;
    return super.forward(tokenIds);
  }

  forwardTree(tokenIds: readonly number[], parents: readonly number[]): tf.Tensor2D {
    parents.forEach((p, i) => {
      if (!(p >= -1 && p < i)) throw new RangeError(`TreeTableModel: parents[${i}] = ${p} is not an earlier index.`);
    });
    this.trees.push([[...tokenIds], [...parents]]);
    return this.forward(tokenIds);
  }

  keepRows(rows: readonly number[]): void {
    if (this.lastFed === 0 || rows.some((r, i) => r >= this.lastFed || (i > 0 && r <= rows[i - 1]!))) {
      throw new RangeError(`TreeTableModel: bad keepRows ${JSON.stringify(rows)} after ${this.lastFed} fed.`);
    }
    this.length -= this.lastFed - rows.length;
    this.lastFed = 0;
  }

  override truncate(length: number): void {
    super.truncate(length);
    this.lastFed = 0;
  }
}

/**
 * A TreeTableModel whose drafts behave like sequential modules: `headTree` grows the EAGLE-2 tree
 * with a child's logits read from `tables[1]` at its PARENT's token (the root's children at the
 * root token), so each node's children depend on its own token. Same layout as
 * `MultiTokenModel.headTree` (k at depth 1, then k groups of k per depth); `grown` counts the
 * calls. Offset 0 and `headLogits` stay the plain Markov table.
 */
export class GrowingTableModel extends TreeTableModel {
  /** Number of headTree calls. */
  grown = 0;
  private readonly draftTable: tf.Tensor2D; // [V, V]

  constructor(tablesData: number[][][]) {
    super(tablesData);
    this.draftTable = tf.tensor2d(tablesData[1]!);
  }

  headTree(states: tf.Tensor2D, roots: tf.Tensor1D, depth: number, k: number): { ids: tf.Tensor2D; parents: tf.Tensor2D; scores: tf.Tensor2D } {
    this.grown++;
    return tf.tidy(() => {
      const m = states.shape[0];
      const children = (tokens: tf.Tensor) => {
        const logits = tf.gather(this.draftTable, tf.reshape(tokens, [-1])) as tf.Tensor2D; // [n, V]
        const { values, indices } = tf.topk(logits, k);
        return { ids: indices, logProbs: tf.sub(values, tf.logSumExp(logits, 1, true)) }; // [n, k]
      };
      const first = children(roots);
      const ids: tf.Tensor[] = [first.ids];
      const parents: tf.Tensor[] = [tf.fill([m, k], -1, 'int32')];
      const scores: tf.Tensor[] = [first.logProbs];
      let frontier: { ids: tf.Tensor; scores: tf.Tensor; start: number } = { ids: first.ids, scores: first.logProbs, start: 0 };
      for (let d = 2; d <= depth; d++) {
        const F = frontier.ids.shape[1]!;
        const best = tf.topk(frontier.scores, k); // [m, k]
        const flat = tf.reshape(tf.add(best.indices, tf.mul(tf.expandDims(tf.range(0, m, 1, 'int32'), 1), tf.scalar(F, 'int32'))), [-1]);
        const next = children(tf.gather(tf.reshape(frontier.ids, [-1]), flat)); // [m·k, k]
        const childIds = tf.reshape(next.ids, [m, k * k]);
        const childScores = tf.reshape(tf.add(tf.expandDims(best.values, 2), tf.reshape(next.logProbs, [m, k, k])), [m, k * k]);
        ids.push(childIds);
        parents.push(tf.reshape(tf.tile(tf.expandDims(tf.add(best.indices, tf.scalar(frontier.start, 'int32')), 2), [1, 1, k]), [m, k * k]));
        scores.push(childScores);
        frontier = { ids: childIds, scores: childScores, start: frontier.start + F };
      }
      return { ids: tf.concat(ids, 1) as tf.Tensor2D, parents: tf.cast(tf.concat(parents, 1), 'int32') as tf.Tensor2D, scores: tf.concat(scores, 1) as tf.Tensor2D };
    });
  }

  override dispose(): void {
    this.draftTable.dispose();
    super.dispose();
  }
}

/**
 * The 4-token Markov tables of the tree sampling tests: offset 0 (p) logits per previous token,
 * and the draft logits per previous token (the candidates' ranking). Tokens 0 and 1 — the
 * candidates after the prompt — are likely under every row of p, so the acceptance rule matters.
 */
export const TREE_TABLE_P: number[][] = [
  [2.0, 1.4, -0.5, 0.1],
  [1.1, 1.6, 0.4, -1.0],
  [1.5, 1.2, 0.9, 0.0],
  [1.3, 1.0, -0.4, 1.1],
];
export const TREE_TABLE_DRAFT: number[][] = [
  [-1.0, 1.5, 0.3, -0.2],
  [1.3, -0.8, 0.0, 0.6],
  [1.4, 0.2, -1.1, -0.4],
  [0.9, 0.7, -0.9, -0.95],
];

/** softmax(logits / temperature), in float64. */
export function softmaxAt(logits: readonly number[], temperature = 1): number[] {
  const e = logits.map((x) => Math.exp(x / temperature));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/** The indices of the two largest logits, largest first. */
export function top2(logits: readonly number[]): number[] {
  return logits.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 2).map(([, i]) => i);
}
