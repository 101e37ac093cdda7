/**
 * Adapter: any `tf.LayersModel` mapping token ids `[batch, seq]` to multi-token logits
 * `[batch, seq, k, vocab]` becomes a {@link MultiTokenModel}. It keeps no cache: every forward
 * recomputes the whole window (correct on every model and backend; slower than a KV cache).
 * The model must be causal — position t may depend only on tokens ≤ t — as any language model is.
 *
 * Windows: a model with a fixed input length T (or `options.window`) sees at most T tokens. As
 * long as the sequence fits, one call covers every new position (inputs padded on the right,
 * which a causal model ignores). Past T, each position is computed from the T tokens that end
 * at it — the same window `greedyDecode` would give it — so speculative decoding still equals
 * greedy decoding exactly; a block of n new positions then costs one batched call of n windows.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { MultiTokenModel } from './model.js';
import { fail, show } from '../internal/errors.js';

/** Options of {@link fromLayersModel}. @inline */
export interface LayersModelAdapterOptions {
  /**
   * Most tokens fed to the model at once (the sliding window). Default: the model's fixed input
   * length when it has one, else unlimited. Set it when the model has a context limit its input
   * shape does not show (for example learned position embeddings).
   */
  window?: number;
}

/** The `MultiTokenModel` returned by {@link fromLayersModel}; states are the flattened `[k·V]` logits. */
class LayersModelAdapter implements MultiTokenModel {
  readonly maxLength = Infinity;
  private ids: number[] = [];

  constructor(
    private readonly model: LayersModel,
    readonly numHeads: number,
    readonly vocabSize: number,
    private readonly window: number,
    private readonly fixedLength: number | null,
    private readonly inputDtype: 'int32' | 'float32',
  ) {}

  get length(): number {
    return this.ids.length;
  }

  forward(tokenIds: readonly number[]): tf.Tensor2D {
    if ((this.model as unknown as { _refCount?: number | null })._refCount === 0) {
      throw new Error(`fromLayersModel: the wrapped LayersModel '${this.model.name}' has been disposed (layersModel.dispose()); wrap a live model to decode with it.`);
    }
    const first = this.ids.length;
    this.ids.push(...tokenIds);
    const positions = Array.from({ length: tokenIds.length }, (_, i) => first + i);
    const starts = positions.map((p) => Math.max(0, p + 1 - this.window)); // window of position p: ids[start..p]
    const shared = starts.every((s) => s === starts[0]);
    const windows = shared ? [this.ids.slice(starts[0])] : positions.map((p, i) => this.ids.slice(starts[i], p + 1));
    const width = this.fixedLength ?? Math.max(...windows.map((w) => w.length));
    const rows = positions.map((p, i) => (shared ? 0 : i) * width + (p - starts[i])); // row of each position in the flat output
    return tf.tidy(() => {
      const input = tf.tensor2d(windows.map((w) => [...w, ...new Array<number>(width - w.length).fill(0)]), [windows.length, width], this.inputDtype); // [w, T]
      const out = this.model.predict(input) as tf.Tensor; // [w, T, k, V]
      const flat = tf.reshape(out, [windows.length * width, this.numHeads * this.vocabSize]); // [w·T, k·V]
      return tf.gather(flat, tf.tensor1d(rows, 'int32')) as tf.Tensor2D; // [n, k·V]
    });
  }

  headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    return tf.tidy(() => {
      const all = tf.reshape(states, [states.shape[0], this.numHeads, this.vocabSize]); // [m, k, V]
      return tf.gather(all, tf.tensor1d(offsets as number[], 'int32'), 1) as tf.Tensor3D; // [m, |offsets|, V]
    });
  }

  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.ids.length) {
      fail(RangeError, 'fromLayersModel: truncate', 'length', `must be an integer in [0, ${this.ids.length}]`, length);
    }
    this.ids.length = length;
  }
}

/**
 * Wraps a `tf.LayersModel` whose output is `[batch, seq, k, vocab]` (for example a trunk
 * followed by `MultiTokenHead`) as a {@link MultiTokenModel} for the decoders. No KV cache:
 * each forward recomputes the window — see the module notes on sliding windows.
 *
 * @example
 * ```ts
 * const model = fromLayersModel(layersModel);
 * const { tokens } = await speculativeDecode(model, prompt, { maxNewTokens: 32 });
 * ```
 */
export function fromLayersModel(model: LayersModel, options: LayersModelAdapterOptions = {}): MultiTokenModel {
  const fn = 'fromLayersModel';
  if (model === null || typeof model !== 'object' || typeof model.predict !== 'function' || !Array.isArray(model.outputs)) {
    fail(TypeError, fn, 'model', 'must be a tf.LayersModel', model);
  }
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new TypeError(`${fn}: model must have one input and one output, but got ${model.inputs.length} inputs and ${model.outputs.length} outputs.`);
  }
  const outShape = model.outputs[0].shape;
  const [, , k, vocab] = outShape;
  if (outShape.length !== 4 || !Number.isInteger(k) || !Number.isInteger(vocab)) {
    throw new TypeError(`${fn}: model output must have shape [batch, seq, k, vocab] with known k and vocab, but got ${show(outShape)}.`);
  }
  const inShape = model.inputs[0].shape;
  if (inShape.length !== 2) {
    throw new TypeError(`${fn}: model input must have shape [batch, seq] (token ids), but got ${show(inShape)}.`);
  }
  const fixedLength = inShape[1];
  const { window = fixedLength ?? Infinity } = options;
  if (!(window === Infinity || (Number.isInteger(window) && window > 0))) {
    fail(RangeError, fn, 'options.window', 'must be a positive integer', window);
  }
  if (fixedLength !== null && window > fixedLength) {
    fail(RangeError, fn, 'options.window', `must be at most the model's input length ${fixedLength}`, window);
  }
  const dtype = model.inputs[0].dtype === 'float32' ? 'float32' : 'int32';
  return new LayersModelAdapter(model, k as number, vocab as number, window, fixedLength, dtype);
}
