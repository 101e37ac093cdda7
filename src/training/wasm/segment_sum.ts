/**
 * A JavaScript `UnsortedSegmentSum` kernel for the wasm backend, which ships none. tfjs needs it
 * for the gradient of `gather` — i.e. of every `Embedding` and of a tied unembedding read by
 * `gather` — so without it the wasm backend cannot train a language model's embedding at all.
 *
 * The kernel reads its inputs from the wasm heap (`readSync`, copies), sums rows in JS and writes
 * the output straight into a heap buffer made by `makeOutput` (what the wasm backend's own
 * kernels do). For an embedding gradient, x is `[N, D]` (N = batch·seq positions) and the output
 * is `[V, D]`: N·D additions, microseconds next to the matMuls around it.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The members of tfjs-backend-wasm's backend that the kernel uses. */
interface WasmBackendLike {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.backend_util.TypedArray;
}

/** `out[s] = Σ_{i: ids[i] = s} x[i]` over the leading axes of x that `segmentIds` covers; out-of-range ids dropped (as TensorFlow). */
function unsortedSegmentSum(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (args.attrs as { numSegments: number }).numSegments;
  const rowShape = x.shape.slice(segmentIds.shape.length); // the summed part: [D] for an embedding
  const rowSize = rowShape.reduce((a, b) => a * b, 1);
  const xs = backend.readSync(x.dataId) as Float32Array; // [N, D]
  const ids = backend.readSync(segmentIds.dataId) as Int32Array; // [N]
  const out = backend.makeOutput([numSegments, ...rowShape], x.dtype); // [V, D]
  const ys = backend.typedArrayFromHeap(out) as Float32Array; // taken after the allocation: growing the heap detaches older views
  ys.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue;
    const src = i * rowSize;
    const dst = s * rowSize;
    for (let j = 0; j < rowSize; j++) ys[dst + j]! += xs[src + j]!;
  }
  return out;
}

/** Registers the kernel for the 'wasm' backend unless it has one (tfjs's own, or this one). */
export function registerWasmUnsortedSegmentSum(): void {
  if (tf.getKernel(tf.UnsortedSegmentSum, 'wasm') !== undefined) return;
  tf.registerKernel({ kernelName: tf.UnsortedSegmentSum, backendName: 'wasm', kernelFunc: unsortedSegmentSum as tf.KernelFunc });
}
