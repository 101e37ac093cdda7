/**
 * The kernels that training needs on the wasm backend (tfjs-backend-wasm 4.22): a JS
 * `UnsortedSegmentSum` (the gradient of an embedding; wasm ships none, so without it any model
 * with a trainable `Embedding` fails in backpropagation), and optionally faster matMul and
 * layout kernels for backpropagation's shapes. Nothing is registered until an app calls
 * {@link registerWasmTrainingKernels}: the package has no side effects, and decoding never
 * needs these kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkBoolean, fail } from '../../internal/errors.js';
import { LAYOUT_KERNELS, registerWasmLayoutKernels } from './layout.js';
import { MATMUL_KERNELS, registerWasmFastMatMul } from './matmul.js';
import { registerWasmUnsortedSegmentSum } from './segment_sum.js';

const WHERE = 'registerWasmTrainingKernels';

/** Which of the optional kernels {@link registerWasmTrainingKernels} installs (the segment sum, which training needs, always). @inline */
export interface WasmTrainingKernels {
  /** Wrap wasm's `BatchMatMul` and `_FusedMatMul` so transposed and batched products take the fast batch-1 path. Default true. */
  matMul?: boolean;
  /** Replace wasm's `SplitV`, `Unpack` and leading-axes float32 `Sum` by block copies and one-pass sums. Default true. */
  layout?: boolean;
}

/**
 * Makes the wasm backend able to train (and trains faster on it): registers a JavaScript
 * `UnsortedSegmentSum` for 'wasm' — the gradient of `gather`, hence of every `Embedding` — and,
 * unless turned off, replaces wasm's matMul and layout kernels with wrappers that are several
 * times faster on backpropagation's transposed and batched shapes (the same arithmetic; `Sum`
 * up to summation order). Kernel registrations are process-wide and apply to every model on the
 * wasm backend afterwards, inference included. Idempotent. Call it after importing
 * `@tensorflow/tfjs-backend-wasm` (before or after `tf.setBackend('wasm')`); it never changes the
 * backend.
 *
 * @param which The optional kernels: `{ matMul: false, layout: false }` registers only the
 *   missing `UnsortedSegmentSum` and leaves wasm's own kernels untouched.
 *
 * @example
 * import '@tensorflow/tfjs-backend-wasm';
 * registerWasmTrainingKernels();
 * await tf.setBackend('wasm');
 * await model.fit(x, y); // an Embedding's gradient now works on wasm
 */
export function registerWasmTrainingKernels(which: WasmTrainingKernels = {}): void {
  if (which === null || typeof which !== 'object') fail(TypeError, WHERE, 'which', 'must be an object { matMul?, layout? } or undefined', which);
  const matMul = which.matMul === undefined ? true : checkBoolean(WHERE, 'which.matMul', which.matMul);
  const layout = which.layout === undefined ? true : checkBoolean(WHERE, 'which.layout', which.layout);
  // Every check before any registration: nothing is half-installed.
  const needed = [...(matMul ? MATMUL_KERNELS : []), ...(layout ? LAYOUT_KERNELS : [])];
  const missing = needed.filter((name) => tf.getKernel(name, 'wasm') === undefined);
  if (missing.length > 0) {
    throw new Error(`${WHERE}: the wasm backend's own kernels must be registered first (import '@tensorflow/tfjs-backend-wasm' before calling), but ${missing.map((n) => `'${n}'`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not registered for 'wasm'.`);
  }
  registerWasmUnsortedSegmentSum();
  if (matMul) registerWasmFastMatMul();
  if (layout) registerWasmLayoutKernels();
}
