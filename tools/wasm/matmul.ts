/**
 * Faster matMuls for the wasm backend, for training only.
 *
 * tfjs-backend-wasm 4.22 has one fast path (XNNPACK): a plain `a·b` with batch 1. Measured on
 * this machine: [2048,128]·[128,512] takes ~15 ms plain, ~100 ms with transposeB and ~330 ms
 * with transposeA; a batched [64,128,128]·[64,128,32] (attention) takes ~25 ms, against ~4 ms
 * as 64 separate batch-1 products. Backpropagation is exactly those cases (dA = dY·Bᵀ,
 * dB = Aᵀ·dY, and attention's q·kᵀ). So this wraps the wasm `BatchMatMul` and `_FusedMatMul`
 * kernels: a transposed operand is first materialized by the wasm `Transpose` kernel, and a
 * batched product runs as one batch-1 product per batch entry, copied into the output.
 * Same arithmetic, several times faster. Registered by the training script only: the library
 * never touches kernels or backends.
 */
import * as tf from '@tensorflow/tfjs-core';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
interface WasmBackendLike {
  disposeData(dataId: tf.DataId): boolean;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
}
type Kernel = (args: KernelArgs) => tf.TensorInfo;

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
  const out = backend.makeOutput([...a.shape.slice(0, -2), m, n], 'float32');
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

function wrap(kernelName: string): void {
  const original = tf.getKernel(kernelName, 'wasm');
  const transpose = tf.getKernel(tf.Transpose, 'wasm');
  if (original === undefined || transpose === undefined) {
    throw new Error(`registerWasmFastMatMul: the wasm backend has no ${original ? 'Transpose' : kernelName} kernel to wrap.`);
  }
  const plain = original.kernelFunc as unknown as Kernel;
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const backend = args.backend as WasmBackendLike;
    const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
    const inputs = { ...args.inputs } as Record<string, tf.TensorInfo>;
    const made: tf.TensorInfo[] = [];
    for (const [name, flag] of [['a', attrs.transposeA], ['b', attrs.transposeB]] as const) {
      if (!flag) continue;
      const x = inputs[name]!;
      const t = transpose.kernelFunc({ inputs: { x }, backend, attrs: { perm: swapLastTwo(x.shape.length) } } as never) as tf.TensorInfo;
      inputs[name] = t;
      made.push(t);
    }
    const a = inputs['a']!;
    const b = inputs['b']!;
    const batchA = a.shape.slice(0, -2);
    const batched =
      kernelName === tf.BatchMatMul &&
      batchA.reduce((x, y) => x * y, 1) > 1 &&
      batchA.length === b.shape.length - 2 &&
      batchA.every((d, i) => d === b.shape[i]);
    const out = batched
      ? perBatch(plain, backend, a, b)
      : plain({ ...args, inputs, attrs: { ...attrs, transposeA: false, transposeB: false } });
    for (const t of made) backend.disposeData(t.dataId);
    return out;
  };
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc: kernelFunc as unknown as tf.KernelFunc,
    ...(original.setupFunc ? { setupFunc: original.setupFunc } : {}),
    ...(original.disposeFunc ? { disposeFunc: original.disposeFunc } : {}),
  });
}

let registered = false;

/** Replaces the wasm matMul kernels by the wrappers above (idempotent; call before `setBackend('wasm')`). */
export function registerWasmFastMatMul(): void {
  if (registered) return;
  wrap(tf.BatchMatMul);
  wrap(tf._FusedMatMul);
  registered = true;
}
