/**
 * Faster matMuls for training on the wasm backend.
 *
 * tfjs-backend-wasm 4.22 has one fast path (XNNPACK): a plain `a·b` with batch 1. A transposed
 * operand or a batched product takes a much slower path (on a [2048,128]·[128,512] product,
 * transposeB about 7× and transposeA about 20× the plain time; a batched attention product about
 * 6× the same work as separate batch-1 products). Backpropagation is exactly those cases
 * (dA = dY·Bᵀ, dB = Aᵀ·dY, and attention's q·kᵀ). So this wraps the wasm `BatchMatMul` and
 * `_FusedMatMul` kernels: a transposed operand is first materialized by the wasm `Transpose`
 * kernel, and a batched product runs as one batch-1 product per batch entry, copied into the
 * output. The same products, summed in the same order per output element.
 */
import * as tf from '@tensorflow/tfjs-core';
import { wrapWasmKernel } from './replace.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
/** The members of tfjs-backend-wasm's backend that the wrappers use. */
interface WasmBackendLike {
  disposeData(dataId: tf.DataId): boolean;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
}
type Kernel = (args: KernelArgs) => tf.TensorInfo;

/** The kernels wrapped here, and the one the wrappers call. */
export const MATMUL_KERNELS: readonly string[] = [tf.BatchMatMul, tf._FusedMatMul, tf.Transpose];

function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return perm;
}

/** `a·b` for `[..., m, k]·[..., k, n]` with equal batch dims, one batch-1 kernel call per entry. */
function perBatch(plain: Kernel, backend: WasmBackendLike, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo {
  const [m, k] = a.shape.slice(-2) as [number, number];
  const n = b.shape[b.shape.length - 1]!;
  const batch = a.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const out = backend.makeOutput([...a.shape.slice(0, -2), m, n], 'float32'); // [..., m, n]
  for (let i = 0; i < batch; i++) {
    const ai = backend.makeOutput([1, m, k], 'float32');
    const bi = backend.makeOutput([1, k, n], 'float32');
    // heap views are taken after every allocation: growing the heap detaches older views
    backend.typedArrayFromHeap(ai).set(backend.typedArrayFromHeap(a).subarray(i * m * k, (i + 1) * m * k));
    backend.typedArrayFromHeap(bi).set(backend.typedArrayFromHeap(b).subarray(i * k * n, (i + 1) * k * n));
    const oi = plain({ inputs: { a: ai, b: bi }, backend, attrs: { transposeA: false, transposeB: false } });
    backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(oi), i * m * n);
    for (const t of [ai, bi, oi]) backend.disposeData(t.dataId);
  }
  return out;
}

/** The wrapper of the wasm matMul kernel `kernelName` (`original`). */
function wrapper(kernelName: string, original: tf.KernelFunc): tf.KernelFunc {
  const plain = original as unknown as Kernel;
  const transpose = tf.getKernel(tf.Transpose, 'wasm')!.kernelFunc as unknown as Kernel;
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const backend = args.backend as WasmBackendLike;
    const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
    const given = args.inputs as Record<string, tf.TensorInfo>;
    if (given['a']!.dtype !== 'float32' || given['b']!.dtype !== 'float32') return plain(args); // the original's own message
    const inputs = { ...given };
    const made: tf.TensorInfo[] = [];
    for (const [name, flag] of [['a', attrs.transposeA], ['b', attrs.transposeB]] as const) {
      if (!flag) continue;
      const x = inputs[name]!;
      const t = transpose({ inputs: { x }, backend, attrs: { perm: swapLastTwo(x.shape.length) } });
      inputs[name] = t;
      made.push(t);
    }
    const a = inputs['a']!;
    const b = inputs['b']!;
    const batchA = a.shape.slice(0, -2);
    const batched = kernelName === tf.BatchMatMul && batchA.reduce((x, y) => x * y, 1) > 1 && batchA.length === b.shape.length - 2 && batchA.every((d, i) => d === b.shape[i]);
    const out = batched ? perBatch(plain, backend, a, b) : plain({ ...args, inputs, attrs: { ...attrs, transposeA: false, transposeB: false } });
    for (const t of made) backend.disposeData(t.dataId);
    return out;
  };
  return kernelFunc as unknown as tf.KernelFunc;
}

/** Replaces the wasm matMul kernels by the wrappers above (the caller has checked that {@link MATMUL_KERNELS} exist). */
export function registerWasmFastMatMul(): void {
  wrapWasmKernel(tf.BatchMatMul, (original) => wrapper(tf.BatchMatMul, original));
  wrapWasmKernel(tf._FusedMatMul, (original) => wrapper(tf._FusedMatMul, original));
}
