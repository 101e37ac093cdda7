/**
 * The training-only wasm kernels (tfjs-backend-wasm 4.22): a JS `UnsortedSegmentSum` (the
 * embedding gradient; wasm ships none), matMul wrappers that avoid wasm's slow transposed and
 * batched paths, and JS `SplitV` / `Unpack` / bias-gradient `Sum`. docs/models.md gives the
 * measured tokens/s of each (`npx tsx bench/train_speed.ts`). Kernel registrations are global:
 * call before `tf.setBackend('wasm')`; the library itself never registers kernels.
 */
import { registerWasmLayoutKernels } from './layout.js';
import { registerWasmFastMatMul } from './matmul.js';
import { registerWasmUnsortedSegmentSum } from './segment_sum.js';

/** Which of the optional kernels to register (the segment sum is always needed to train). */
export interface WasmTrainingKernels {
  /** The matMul wrappers (default true). */
  matMul?: boolean;
  /** `SplitV` / `Unpack` / `Sum` (default true). */
  layout?: boolean;
}

/** Registers the training kernels for the 'wasm' backend (idempotent). */
export function registerWasmTrainingKernels(which: WasmTrainingKernels = {}): void {
  registerWasmUnsortedSegmentSum();
  if (which.matMul ?? true) registerWasmFastMatMul();
  if (which.layout ?? true) registerWasmLayoutKernels();
}
