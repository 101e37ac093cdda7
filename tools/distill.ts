/**
 * Stage 2 of `npm run train` (`--stage heads`, scripts/train.ts): self-distillation of the draft heads, with the
 * trunk, the embedding and offset 0 frozen — so the verifier, and with it every greedy output,
 * is exactly the stage-1 model's.
 *
 * Why: a draft from offset j is accepted iff it equals the verifier's own argmax j positions
 * later, not the corpus' next byte. Stage 1 trains offset j on the corpus; here offset j at
 * position t learns the frozen offset 0's argmax at position t + j (teacher-forced on corpus
 * windows): the acceptance test itself, as a cross-entropy. This is the self-distillation of
 * Medusa-2 (Cai et al. 2024, §2.3.2), with hard argmax targets because acceptance is greedy.
 * Cheap: the trunk runs forward only (no gradient), the heads are 3·(D² + D) parameters.
 */
import * as tf from '@tensorflow/tfjs-core';
import { model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import type { MultiTokenHead } from '../src/index.js';
import { headOf } from './checkpoint.js';

/** The frozen parts as functions: token ids → final hidden states, and the teacher's argmax. */
export interface DistillParts {
  hidden: (ids: tf.Tensor2D) => tf.Tensor3D; // [B, T] → [B, T, D]
  head: MultiTokenHead;
  trainable: tf.Variable[]; // offset heads 1…k-1 only
}

/** Splits a trained model into the frozen trunk, the head, and the draft heads' variables. */
export function distillParts(model: LayersModel): DistillParts {
  const head = headOf(model);
  const trunk = functionalModel({ inputs: model.inputs, outputs: head.input as SymbolicTensor }); // ids → the head's input [B, T, D]
  const trainable = head.offsetHeads.slice(1).flatMap((h) => h.trainableWeights.map((w) => (w as unknown as { read(): tf.Variable }).read()));
  return { hidden: (ids) => trunk.predict(ids) as tf.Tensor3D, head, trainable };
}

/**
 * Distillation loss of offsets 1…k-1 on one batch, and the per-offset agreement (share of
 * positions where the head's argmax equals the teacher's: teacher-forced acceptance).
 * `hidden` `[B, T, D]` and `teacher` `[B, T]` (offset 0's argmax) are constants.
 */
export function distillLoss(parts: DistillParts, hidden: tf.Tensor3D, teacher: tf.Tensor2D): { loss: tf.Scalar; agreement: tf.Tensor1D } {
  const [B, T, D] = hidden.shape;
  const V = parts.head.vocabSize;
  const losses: tf.Scalar[] = [];
  const agreement: tf.Scalar[] = [];
  for (let j = 1; j < parts.head.numHeads; j++) {
    const h = tf.reshape(tf.slice(hidden, [0, 0, 0], [B, T - j, D]), [B * (T - j), D]); // [m, D] positions t < T - j
    const target = tf.reshape(tf.slice(teacher, [0, j], [B, T - j]), [B * (T - j)]); // [m] teacher's token at t + j
    const logits = tf.reshape(parts.head.computeLogits(h, [j]), [B * (T - j), V]); // [m, V]
    const hot = tf.cast(tf.oneHot(target as tf.Tensor1D, V), 'float32'); // [m, V]
    losses.push(tf.neg(tf.mean(tf.sum(tf.mul(hot, tf.logSoftmax(logits)), -1))) as tf.Scalar);
    agreement.push(tf.mean(tf.cast(tf.equal(tf.argMax(logits, -1), target), 'float32')) as tf.Scalar);
  }
  return { loss: tf.div(tf.addN(losses), losses.length) as tf.Scalar, agreement: tf.stack(agreement) as tf.Tensor1D };
}

/** The frozen model's hidden states and offset-0 argmax for a batch of windows `[B, T]`. */
export function teacherBatch(parts: DistillParts, ids: tf.Tensor2D): { hidden: tf.Tensor3D; teacher: tf.Tensor2D } {
  return tf.tidy(() => {
    const hidden = parts.hidden(ids); // [B, T, D]
    const [B, T, D] = hidden.shape;
    const logits0 = parts.head.computeLogits(tf.reshape(hidden, [B * T, D]), [0]); // [B·T, 1, V]
    const teacher = tf.reshape(tf.argMax(logits0, -1), [B, T]) as tf.Tensor2D; // [B, T]
    return { hidden, teacher };
  });
}
