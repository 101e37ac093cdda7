/**
 * `transformerFromWeights`: a `createTransformer` model whose trunk (and, untied, output matrix)
 * come from a checkpoint's named float32 tensors — the one entry point every checkpoint loader
 * (llama2.c, Hugging Face safetensors) goes through. Names and shapes follow `weights.ts`
 * (canonical Llama names, matrices `[in, out]`); everything is checked before anything is
 * allocated, so a bad checkpoint fails fast and leaks nothing.
 *
 * Offset 0 of the `MultiTokenHead` is the identity and its unembedding is the token embedding
 * (tied) or `output.weight` (untied), so offset 0 is the checkpoint's classifier exactly;
 * offsets 1…k−1 keep their identity-start initialization.
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';
import { show } from '../internal/errors.js';
import type { MultiTokenHead } from '../layers/index.js';
import { type TransformerConfig, resolveTransformerConfig } from './config.js';
import { buildTransformer, LAYER_NAMES } from './transformer.js';
import { outputWeightSpec, trunkWeightSpecs } from './weights.js';

/** One tensor of a checkpoint, float32, row-major. */
export interface CheckpointTensor {
  /** Dimensions, outermost first. */
  shape: number[];
  /** The values, row-major; `data.length` is the product of `shape`. */
  data: Float32Array;
}

/** A checkpoint's tensors by canonical name (`tok_embeddings.weight`, `layers.0.attention.wq.weight`, …). */
export type CheckpointWeights = Map<string, CheckpointTensor>;

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

function checkTensor(where: string, name: string, t: CheckpointTensor | undefined, shape: readonly number[]): Float32Array {
  if (t === undefined) throw new Error(`${where}: the checkpoint must have weight '${name}' of shape [${shape.join(', ')}], but it is missing.`);
  if (t === null || typeof t !== 'object' || !Array.isArray(t.shape) || !(t.data instanceof Float32Array)) {
    throw new TypeError(`${where}: weight '${name}' must be { shape: number[], data: Float32Array }, but got ${show(t)}.`);
  }
  if (!sameShape(t.shape, shape)) {
    throw new RangeError(`${where}: weight '${name}' must have shape [${shape.join(', ')}], but got [${t.shape.join(', ')}].`);
  }
  const size = shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== size) {
    throw new RangeError(`${where}: weight '${name}' of shape [${shape.join(', ')}] must hold ${size} values, but got ${t.data.length}.`);
  }
  for (let i = 0; i < t.data.length; i++) {
    if (!Number.isFinite(t.data[i]!)) throw new RangeError(`${where}: weight '${name}' must be finite, but element ${i} is ${t.data[i]}.`);
  }
  return t.data;
}

/** `[rows, cols]` row-major → `[cols, rows]`. */
function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/**
 * Builds the `LayersModel` of `config` (a `TransformerConfig` with the architecture fields plus
 * `mtpHeads`/`headKind`) and sets every trunk weight from `weights`, checking names, shapes,
 * sizes and finiteness first (before allocating anything) with errors that start with
 * `${where}: `. Extra names are an error too (a misnamed weight is never silently ignored).
 *
 * @example
 * const model = transformerFromWeights({ vocabSize: 512, hiddenSize: 64, numLayers: 5, numAttentionHeads: 8,
 *   numKeyValueHeads: 4, intermediateSize: 172, maxLength: 512, norm: 'rmsNorm', positions: 'rotary',
 *   mlp: 'swiglu', useBias: false, tiedEmbeddings: true }, weights, 'loadLlama2c');
 */
export function transformerFromWeights(config: TransformerConfig, weights: CheckpointWeights, where: string): LayersModel {
  const c = resolveTransformerConfig(config, where);
  if (!(weights instanceof Map)) throw new TypeError(`${where}: weights must be a Map of canonical name → { shape, data }, but got ${show(weights)}.`);
  const values = new Map<string, Float32Array>();
  for (const spec of trunkWeightSpecs(c)) values.set(spec.name, checkTensor(where, spec.name, weights.get(spec.name), spec.shape));
  const outputSpec = outputWeightSpec(c);
  let output: Float32Array | null = null;
  if (!c.tiedEmbeddings) {
    const data = checkTensor(where, outputSpec.name, weights.get(outputSpec.name), outputSpec.shape); // [D, V]
    output = transpose(data, c.hiddenSize, c.vocabSize); // [V, D]: the SharedUnembedding's layout
  }
  const extra = [...weights.keys()].filter((name) => !values.has(name) && !(name === outputSpec.name && output !== null));
  if (extra.length > 0) {
    throw new Error(`${where}: the checkpoint has weights this config does not use: ${extra.slice(0, 5).map(show).join(', ')}${extra.length > 5 ? `, … (${extra.length})` : ''}.`);
  }

  const model = buildTransformer(c, values);
  if (output !== null) {
    const head = model.getLayer(LAYER_NAMES.head) as unknown as MultiTokenHead;
    const kernel = tf.tensor2d(output, [c.vocabSize, c.hiddenSize]); // [V, D]
    try {
      head.unembedding.weights[0]!.write(kernel);
    } finally {
      kernel.dispose();
    }
  }
  return model;
}
