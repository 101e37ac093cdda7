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
