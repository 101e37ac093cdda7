/**
 * Replacing one of the wasm backend's own kernels by a wrapper of it, once per process: the
 * wrapper is marked, so a second call (or a second copy of this package, ESM next to CJS) sees
 * it and leaves it alone. The original's setup and dispose functions are kept.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The mark on a wrapper's kernel function (a registry-wide symbol: every copy of the package agrees). */
const WRAPPED = Symbol.for('tfjs-mtp.wasmTrainingKernel');

/** Whether the wasm `kernelName` is already one of these wrappers. */
export function isWrapped(kernelName: string): boolean {
  const kernel = tf.getKernel(kernelName, 'wasm');
  return kernel !== undefined && (kernel.kernelFunc as unknown as Record<symbol, unknown>)[WRAPPED] === true;
}

/** Replaces the registered wasm `kernelName` (which must exist) by `make(original)`, unless already wrapped. */
export function wrapWasmKernel(kernelName: string, make: (original: tf.KernelFunc) => tf.KernelFunc): void {
  if (isWrapped(kernelName)) return;
  const original = tf.getKernel(kernelName, 'wasm')!;
  const kernelFunc = make(original.kernelFunc);
  Object.defineProperty(kernelFunc, WRAPPED, { value: true });
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc,
    ...(original.setupFunc ? { setupFunc: original.setupFunc } : {}),
    ...(original.disposeFunc ? { disposeFunc: original.disposeFunc } : {}),
  });
}
