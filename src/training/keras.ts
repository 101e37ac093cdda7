/**
 * `model.compile` adapters: the multi-token loss as a Keras-style loss function, and a metric
 * per offset for `model.fit` logs. tfjs-layers has no `lossWeights` and a `MultiTokenHead` has
 * one output, so the per-offset weights live inside the loss.
 *
 * Reference: Gloeckle et al. (2024), §2; Cai et al., "Medusa" (2024), §2.1.1.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkInteger, SIZE_LIMITS } from '../internal/errors.js';
import { multiTokenLoss, type MultiTokenLossOptions } from './loss.js';
import { checkOffsetWeights } from './weights.js';

/**
 * A loss for `model.compile({ loss })`: `yPred` is the `[batch, seq, k, vocab]` head output and
 * `yTrue` its targets. `model.fit` requires targets with the output's rank and static
 * dimensions, so pass {@link oneHotMultiTokenTargets}; id targets `[batch, seq, k]` work when
 * the function is called directly.
 *
 * @param options Per-offset weights; a `mask` is refused (mark padding as -1 targets instead,
 *   since a fixed mask tensor cannot follow `model.fit`'s batches).
 *
 * @example
 * model.compile({ optimizer: 'adam', loss: multiTokenLossFunction({ offsetWeights: { decay: 0.8 } }) });
 */
export function multiTokenLossFunction(options: MultiTokenLossOptions = {}): (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Scalar {
  if (options.mask !== undefined) {
    throw new TypeError(`multiTokenLossFunction: options.mask is not supported (model.fit batches the data), but got a tensor of shape [${options.mask.shape.join(', ')}]; mark padding as -1 targets instead.`);
  }
  checkOffsetWeights('multiTokenLossFunction', options.offsetWeights);
  const lossFn = (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar => {
    const { loss, perOffset } = multiTokenLoss(yTrue, yPred, options);
    perOffset.dispose();
    return loss;
  };
  return Object.defineProperty(lossFn, 'name', { value: 'multi_token_loss' });
}

/**
 * A metric reporting offset `offset`'s mean cross-entropy in `model.fit` logs, named
 * `offset${offset}_loss` (e.g. `offset1_loss`, and `val_offset1_loss` with validation data).
 *
 * @param offset Integer in `[0, 64)`, below the head's numHeads (checked when the metric runs).
 *
 * @example
 * model.compile({ optimizer: 'adam', loss: multiTokenLossFunction(), metrics: [offsetLossMetric(0), offsetLossMetric(1)] });
 */
export function offsetLossMetric(offset: number): (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor {
  checkInteger('offsetLossMetric', 'offset', offset, 0, SIZE_LIMITS.numHeads - 1);
  const metric = (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor => {
    const k = yPred.shape[2];
    if (yPred.rank !== 4 || offset >= k!) {
      throw new RangeError(`offsetLossMetric: offset must be below the number of offsets ${k ?? '?'} of logits [${yPred.shape.join(', ')}], but got ${offset}.`);
    }
    return tf.tidy(() => {
      const { perOffset } = multiTokenLoss(yTrue, yPred); // [k]
      return tf.reshape(tf.slice(perOffset, [offset], [1]), []); // []
    });
  };
  return Object.defineProperty(metric, 'name', { value: `offset${offset}_loss` });
}
