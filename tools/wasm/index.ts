/**
 * The wasm training kernels, for the scripts and benches: the package's own
 * `registerWasmTrainingKernels` (src/training/wasm), re-exported where they import it from.
 */
export { registerWasmTrainingKernels, type WasmTrainingKernels } from '../../src/training/wasm/index.js';
