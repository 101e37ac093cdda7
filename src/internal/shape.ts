/**
 * Shape helpers shared by every custom layer (the MTP layers and the reference transformer's):
 * the single tensor of a `call`, the single shape of a `build`/`computeOutputShape`, and the
 * last (hidden) dimension of an input shape, checked with a message naming the layer.
 *
 * Reference: tfjs-layers `Layer.call` / `Layer.build` (inputs may arrive as a one-element list).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { Shape } from '@tensorflow/tfjs-layers';

/** A static shape with unknown dimensions as `null` (tfjs-layers' own type). */
export type { Shape };

/** The single tensor of a layer's `call` inputs. */
export function one(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0]! : inputs;
}

/** The single shape of a layer's `build`/`computeOutputShape` argument. */
export function oneShape(inputShape: Shape | Shape[]): Shape {
  return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
}

/**
 * The last dimension (hidden size) of an input shape whose rank is one of `ranks`; throws a
 * `RangeError` naming `where` and the shape when the rank is wrong or the dimension unknown.
 */
export function lastDim(where: string, inputShape: Shape | Shape[] | readonly number[], ranks: readonly number[]): number {
  const shape = oneShape(inputShape as Shape | Shape[]);
  const d = shape[shape.length - 1];
  if (!ranks.includes(shape.length)) {
    throw new RangeError(`${where}: the input must have rank ${ranks.join(' or ')} ([..., hidden]), but got rank ${shape.length} (shape [${shape.join(', ')}]).`);
  }
  if (d == null) {
    throw new RangeError(`${where}: the input's last dimension (hidden size) must be known, but got shape [${shape.join(', ')}].`);
  }
  return d;
}
