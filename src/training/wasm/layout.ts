/**
 * Layout kernels for training on the wasm backend, for work that tfjs-backend-wasm 4.22 does
 * slowly (on the reference transformer, a `SplitV` of the attention's q/k/v and a bias-gradient
 * `Sum` over the batch axis together take about a fifth of a training step):
 *
 * - `SplitV` and `Unpack` (the gradient of `stack`) along any axis, as contiguous block copies
 *   (`TypedArray.set`);
 * - `Sum` of float32 over the leading axes (a bias gradient), as one pass over rows accumulated in
 *   float64; other reductions go to the wasm kernel.
 *
 * The same results, up to float summation order in `Sum`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { wrapWasmKernel } from './replace.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
/** The members of tfjs-backend-wasm's backend that the kernels use. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.backend_util.TypedArray;
}

/** The kernels replaced here. */
export const LAYOUT_KERNELS: readonly string[] = [tf.SplitV, tf.Unpack, tf.Sum];

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Splits `x` along `axis` into pieces of `sizes`; `squeeze` drops the axis (Unpack). */
function splitAlong(backend: WasmBackendLike, x: tf.TensorInfo, a: number, sizes: number[], squeeze: boolean): tf.TensorInfo[] {
  const outer = size(x.shape.slice(0, a));
  const inner = size(x.shape.slice(a + 1));
  const outs = sizes.map((s) => backend.makeOutput([...x.shape.slice(0, a), ...(squeeze ? [] : [s]), ...x.shape.slice(a + 1)], x.dtype));
  const src = backend.typedArrayFromHeap(x); // views taken after every allocation
  let start = 0;
  outs.forEach((out, i) => {
    const dst = backend.typedArrayFromHeap(out);
    const chunk = sizes[i]! * inner;
    for (let o = 0; o < outer; o++) dst.set(src.subarray(o * x.shape[a]! * inner + start, o * x.shape[a]! * inner + start + chunk), o * chunk);
    start += chunk;
  });
  return outs;
}

function splitV(args: KernelArgs): tf.TensorInfo[] {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { numOrSizeSplits, axis } = args.attrs as { numOrSizeSplits: number | number[]; axis: number };
  const a = axis < 0 ? axis + x.shape.length : axis;
  const sizes = typeof numOrSizeSplits === 'number' ? new Array<number>(numOrSizeSplits).fill(x.shape[a]! / numOrSizeSplits) : [...numOrSizeSplits];
  const free = sizes.indexOf(-1);
  if (free >= 0) sizes[free] = x.shape[a]! - sizes.reduce((s, v) => (v === -1 ? s : s + v), 0);
  return splitAlong(args.backend as WasmBackendLike, x, a, sizes, false);
}

function unpack(args: KernelArgs): tf.TensorInfo[] {
  const { value } = args.inputs as { value: tf.TensorInfo };
  const { axis } = args.attrs as { axis: number };
  const a = axis < 0 ? axis + value.shape.length : axis;
  return splitAlong(args.backend as WasmBackendLike, value, a, new Array<number>(value.shape[a]!).fill(1), true);
}

function makeSum(original: tf.KernelFunc): tf.KernelFunc {
  const sum = (args: KernelArgs): tf.TensorInfo => {
    const backend = args.backend as WasmBackendLike;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const axes = (Array.isArray(axis) ? axis : [axis]).map((v) => (v < 0 ? v + x.shape.length : v)).sort((p, q) => p - q);
    const leading = axes.every((v, i) => v === i) && axes.length < x.shape.length;
    if (!leading || x.dtype !== 'float32') return original(args as never) as tf.TensorInfo;
    const rows = size(x.shape.slice(0, axes.length));
    const rest = x.shape.slice(axes.length);
    const cols = size(rest);
    const out = backend.makeOutput(keepDims ? [...axes.map(() => 1), ...rest] : rest, 'float32');
    const acc = new Float64Array(cols);
    const src = backend.typedArrayFromHeap(x);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (let c = 0; c < cols; c++) acc[c]! += src[base + c]!;
    }
    backend.typedArrayFromHeap(out).set(acc);
    return out;
  };
  return sum as unknown as tf.KernelFunc;
}

/** Replaces the wasm `SplitV`, `Unpack` and `Sum` kernels (the caller has checked that {@link LAYOUT_KERNELS} exist). */
export function registerWasmLayoutKernels(): void {
  wrapWasmKernel(tf.SplitV, () => splitV as unknown as tf.KernelFunc);
  wrapWasmKernel(tf.Unpack, () => unpack as unknown as tf.KernelFunc);
  wrapWasmKernel(tf.Sum, makeSum);
}
