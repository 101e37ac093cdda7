/**
 * The fused decode kernels, registered the tfjs way (`tf.registerKernel`) for the cpu and wasm
 * backends. A decode step of the composite ops is a few hundred small kernels, each costing
 * microseconds of dispatch whatever its size; these replace them by a handful that loop over the
 * backend's own memory — the cpu backend's value arrays, the wasm heap — with the arithmetic of
 * `math.ts`:
 *
 * - `MtpDecoderBlock`: a whole pre-norm block (its projections through the backend's own matmul
 *   kernel, called directly, and between them the parts below), one per block and step;
 * - `MtpCachedAttention`, `MtpAddNorm`, `MtpNorm`, `MtpMlpActivation`: those parts, each also a
 *   kernel of its own; attention's inner loops run as WebAssembly SIMD on wasm (`simd.ts`);
 * - `MtpSequentialModule`: one sequential draft module; `MtpCheckedArgmax`: argmax with the
 *   non-finite rows marked, through a draft vocabulary's ids;
 * - the heads' passes of a speculative step: `MtpDraftArgmax` (a group of parallel offset heads,
 *   the draft unembedding and the checked argmax — also the verifier's argmax over the whole
 *   vocabulary), `MtpSequentialChain` (every sequential module at the tip, each fed the argmax
 *   before it) and `MtpGreedyVerdict` (greedy acceptance over a chain or tree).
 *
 * On wasm with SIMD, small projections, the SwiGLU activation, each attention head and the
 * argmax run in the module of `simd.ts`, on the heap, without a call into the backend.
 *
 * Registration is lazy and idempotent ({@link registerFusedKernels}, called by
 * {@link fusedKernelsAvailable}): importing the package registers nothing. On any other backend
 * (WebGL, WebGPU, node), or after `setFusedKernels(false)`, the composite ops run.
 *
 * Reference: tfjs-core's `registerKernel`/`runKernel` (kernel_registry.ts, engine.ts); the cpu
 * backend's `data.get(dataId).values` and `makeTensorInfo`, the wasm backend's `makeOutput` and
 * `typedArrayFromHeap` (backend_cpu.ts, backend_wasm.ts); WebLLM and llama.cpp for the idea of a
 * few fused kernels per layer instead of one per op.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../internal/errors.js';
import type { MlpKind, NormKind } from '../models/config.js';
import { activate, applyActivation, attentionScratch, type AttentionPlan, cachedAttention, checkedArgmaxRows, finiteRowBound, greedyTipRow, moduleInput, normRows, silu, type SimdAttention } from './math.js';
import { simdLoops, type SimdLoops } from './simd.js';

type TensorInfo = tf.TensorInfo;

/** Kernel names (prefixed: the registry is global and shared with every other tfjs user). */
export const FUSED_KERNELS = {
  norm: 'MtpNorm',
  addNorm: 'MtpAddNorm',
  activation: 'MtpMlpActivation',
  attention: 'MtpCachedAttention',
  argmax: 'MtpCheckedArgmax',
  block: 'MtpDecoderBlock',
  sequential: 'MtpSequentialModule',
  draftArgmax: 'MtpDraftArgmax',
  draftTopK: 'MtpDraftTopK',
  greedyVerdict: 'MtpGreedyVerdict',
  sequentialChain: 'MtpSequentialChain',
  sequentialTree: 'MtpSequentialTree',
} as const;

/** The backends the fused kernels are written for. */
const FUSED_BACKENDS = ['cpu', 'wasm'] as const;

/**
 * Float32 views of a backend's tensor storage, and fresh outputs. Allocate every output before
 * taking views: a wasm allocation may grow the heap, which detaches earlier views.
 */
export interface KernelMemory {
  /** A live view of a float32 tensor's values (writes go to the tensor). */
  view(t: TensorInfo): Float32Array;
  /** A new float32 tensor of `shape` (contents unspecified until written). */
  output(shape: number[]): TensorInfo;
  /** A live view of an int32 tensor's values. */
  viewInt32(t: TensorInfo): Int32Array;
  /** A new int32 tensor of `shape` and a view of its values. */
  outputInt32(shape: number[]): { info: TensorInfo; values: Int32Array };
  /** Frees a tensor this memory made (an intermediate of a kernel that never reached the engine). */
  free(t: TensorInfo): void;
}

interface CpuLike {
  data: { get(dataId: tf.DataId): { values?: unknown } };
  disposeData(dataId: tf.DataId): boolean;
  makeTensorInfo(shape: number[], dtype: 'float32' | 'int32', values: Float32Array | Int32Array): TensorInfo;
}
interface WasmLike {
  disposeData(dataId: tf.DataId): boolean;
  makeOutput(shape: number[], dtype: 'float32' | 'int32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array;
}

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The {@link KernelMemory} of `backend`, or null when it is neither the cpu nor the wasm kind. */
export function kernelMemory(backend: unknown): KernelMemory | null {
  if (backend === null || typeof backend !== 'object') return null;
  let memory = memories.get(backend);
  if (memory === undefined) {
    memory = memoryInterface(backend as Partial<CpuLike & WasmLike>);
    memories.set(backend, memory);
  }
  return memory;
}

/** {@link kernelMemory} per backend instance (every kernel call asks; the views themselves are never kept). */
const memories = new WeakMap<object, KernelMemory | null>();

function memoryInterface(b: Partial<CpuLike & WasmLike>): KernelMemory | null {
  if (typeof b.makeOutput === 'function' && typeof b.typedArrayFromHeap === 'function') {
    const wasm = b as WasmLike;
    return {
      view: (t) => wasm.typedArrayFromHeap(t) as Float32Array,
      viewInt32: (t) => wasm.typedArrayFromHeap(t) as Int32Array,
      output: (shape) => wasm.makeOutput(shape, 'float32'),
      outputInt32: (shape) => {
        const info = wasm.makeOutput(shape, 'int32');
        return { info, values: wasm.typedArrayFromHeap(info) as Int32Array };
      },
      free: (t) => void wasm.disposeData(t.dataId),
    };
  }
  if (typeof b.makeTensorInfo === 'function' && b.data !== undefined && typeof b.data.get === 'function') {
    const cpu = b as CpuLike;
    return {
      view: (t) => {
        const values = cpu.data.get(t.dataId).values;
        if (!(values instanceof Float32Array)) throw new Error(`tfjs-mtp fused kernels: expected float32 values on the cpu backend, got ${Object.prototype.toString.call(values)}.`);
        return values;
      },
      viewInt32: (t) => {
        const values = cpu.data.get(t.dataId).values;
        if (!(values instanceof Int32Array)) throw new Error(`tfjs-mtp fused kernels: expected int32 values on the cpu backend, got ${Object.prototype.toString.call(values)}.`);
        return values;
      },
      output: (shape) => cpu.makeTensorInfo(shape, 'float32', new Float32Array(sizeOf(shape))),
      outputInt32: (shape) => {
        const values = new Int32Array(sizeOf(shape));
        return { info: cpu.makeTensorInfo(shape, 'int32', values), values };
      },
      free: (t) => void cpu.disposeData(t.dataId),
    };
  }
  return null;
}

function memoryOf(backend: unknown, kernel: string): KernelMemory {
  const memory = kernelMemory(backend);
  if (memory === null) throw new Error(`${kernel}: this kernel runs on the cpu and wasm backends only, but the backend has neither one's memory interface.`);
  return memory;
}

/** Attributes of the norm kernels. */
interface NormAttrs {
  kind: NormKind;
  epsilon: number;
}

/** What tfjs passes a kernel function. */
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown };

/** `MtpNorm`: inputs x, weight, bias?; attrs kind, epsilon. */
function normKernel({ inputs, backend, attrs }: KernelArgs): TensorInfo | TensorInfo[] {
  const { x, weight, bias } = inputs as { x: TensorInfo; weight: TensorInfo; bias?: TensorInfo };
  const { kind, epsilon } = attrs as unknown as NormAttrs;
  const memory = memoryOf(backend, FUSED_KERNELS.norm);
  const out = memory.output([...x.shape]);
  normRows(memory.view(x), null, memory.view(weight), bias ? memory.view(bias) : null, kind, epsilon, memory.view(out), null);
  return out;
}

/** `MtpAddNorm`: inputs x, residual, weight, bias?; attrs kind, epsilon; outputs [x + residual, its norm]. */
function addNormKernel({ inputs, backend, attrs }: KernelArgs): TensorInfo | TensorInfo[] {
  const { x, residual, weight, bias } = inputs as { x: TensorInfo; residual: TensorInfo; weight: TensorInfo; bias?: TensorInfo };
  const { kind, epsilon } = attrs as unknown as NormAttrs;
  const memory = memoryOf(backend, FUSED_KERNELS.addNorm);
  const sum = memory.output([...x.shape]);
  const out = memory.output([...x.shape]);
  normRows(memory.view(x), memory.view(residual), memory.view(weight), bias ? memory.view(bias) : null, kind, epsilon, memory.view(out), memory.view(sum));
  return [sum, out];
}

/** `MtpMlpActivation`: inputs a, b?; attrs kind. */
function activationKernel({ inputs, backend, attrs }: KernelArgs): TensorInfo | TensorInfo[] {
  const { a, b } = inputs as { a: TensorInfo; b?: TensorInfo };
  const { kind } = attrs as unknown as { kind: MlpKind };
  const memory = memoryOf(backend, FUSED_KERNELS.activation);
  const F = a.shape[a.shape.length - 1]! / (kind === 'swiglu' && b === undefined ? 2 : 1); // paired [gate | up] rows: half as wide out
  const out = memory.output([...a.shape.slice(0, -1), F]);
  activate(kind, memory.view(a), b ? memory.view(b) : null, memory.view(out), F);
  return out;
}

/** The wasm backend's module: its heap, allocator and tensors' offsets. */
interface WasmModuleLike {
  wasm: { asm?: { memory?: unknown }; _malloc(bytes: number): number; _free(at: number): void };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } };
}

let simdEnabled = true;

/**
 * Switches the WebAssembly SIMD loops of the attention kernel on the wasm backend on (the
 * default, where the engine has SIMD) or off (the JS loops), returning the previous setting: for
 * tests and for measuring them.
 *
 * @internal
 */
export function setSimdAttention(on: boolean): boolean {
  const previous = simdEnabled;
  simdEnabled = on;
  return previous;
}

/** The wasm backend's SIMD loops, its heap and module, and where a tensor sits in the heap (bytes). */
interface WasmSimd {
  loops: SimdLoops;
  memory: WebAssembly.Memory;
  wasm: WasmModuleLike['wasm'];
  offset(t: TensorInfo): number;
}

/** {@link WasmSimd} of `backend` when it is wasm with WebAssembly SIMD and the SIMD loops are on; null elsewhere. */
function wasmSimd(backend: unknown): WasmSimd | null {
  if (!simdEnabled) return null;
  const b = backend as Partial<WasmModuleLike>;
  const memory = b.wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory) || b.dataIdMap === undefined) return null;
  const loops = simdLoops(memory);
  if (loops === null) return null;
  const ids = b.dataIdMap;
  return { loops, memory, wasm: b.wasm!, offset: (t) => ids.get(t.dataId).memoryOffset };
}

/**
 * On the wasm backend with WebAssembly SIMD: the loops over its memory, the byte offsets of
 * `keys` and `values`, and a scratch block of `floats` (freed by `free`); null elsewhere.
 */
function simdOf(backend: unknown, keys: TensorInfo, values: TensorInfo, floats: number): { attention: SimdAttention; free(): void } | null {
  const simd = wasmSimd(backend);
  if (simd === null) return null;
  const scratch = simd.wasm._malloc(4 * floats) >>> 0; // may grow the memory: views are taken after
  return {
    attention: { loops: simd.loops, keys: simd.offset(keys), values: simd.offset(values), scratch, heap: new Float32Array(simd.memory.buffer) },
    free: () => simd.wasm._free(scratch),
  };
}

/** `MtpCachedAttention`: inputs q, k?, v? (none: q holds [q | k | v]), keys, values; attrs plan. */
function attentionKernel({ inputs, backend, attrs }: KernelArgs): TensorInfo | TensorInfo[] {
  const { q, k, v, keys, values } = inputs as { q: TensorInfo; k?: TensorInfo; v?: TensorInfo; keys: TensorInfo; values: TensorInfo };
  const { plan } = attrs as unknown as { plan: AttentionPlan };
  const memory = memoryOf(backend, FUSED_KERNELS.attention);
  const qWidth = plan.numHeads * plan.headDim;
  const kvWidth = plan.numKeyValueHeads * plan.headDim;
  const out = memory.output([...q.shape.slice(0, -1), qWidth]);
  const simd = simdOf(backend, keys, values, attentionScratch(plan)); // allocates: before any view
  try {
    const qs = memory.view(q);
    const packed = k === undefined || v === undefined; // one [q | k | v] matrix
    const stride = packed ? qWidth + 2 * kvWidth : qWidth;
    const ks = packed ? { data: qs, offset: qWidth, stride } : { data: memory.view(k), offset: 0, stride: kvWidth };
    const vs = packed ? { data: qs, offset: qWidth + kvWidth, stride } : { data: memory.view(v), offset: 0, stride: kvWidth };
    cachedAttention({ data: qs, offset: 0, stride }, ks, vs, memory.view(keys), memory.view(values), plan, memory.view(out), simd?.attention ?? null);
  } finally {
    simd?.free();
  }
  return out;
}

const kernels: ReadonlyArray<{ name: string; kernelFunc: (args: KernelArgs) => TensorInfo | TensorInfo[] }> = [
  {
    name: FUSED_KERNELS.norm,
    kernelFunc: normKernel,
  },
  {
    name: FUSED_KERNELS.addNorm,
    kernelFunc: addNormKernel,
  },
  {
    name: FUSED_KERNELS.activation,
    kernelFunc: activationKernel,
  },
  {
    name: FUSED_KERNELS.attention,
    kernelFunc: attentionKernel,
  },
  {
    name: FUSED_KERNELS.block,
    kernelFunc: ({ inputs, backend, attrs }) => decoderBlock(inputs as unknown as BlockInputs, backend, attrs as unknown as BlockAttrs),
  },
  {
    name: FUSED_KERNELS.sequential,
    kernelFunc: ({ inputs, backend, attrs }) => sequentialModule(inputs as unknown as SequentialInputs, backend, attrs as unknown as { epsilon: number }),
  },
  {
    name: FUSED_KERNELS.draftArgmax,
    kernelFunc: ({ inputs, backend, attrs }) => draftArgmax(inputs as unknown as DraftInputs, backend, attrs as unknown as DraftAttrs),
  },
  {
    name: FUSED_KERNELS.draftTopK,
    kernelFunc: ({ inputs, backend, attrs }) => draftTopK(inputs as unknown as DraftInputs, backend, attrs as unknown as DraftAttrs & { k: number }),
  },
  {
    name: FUSED_KERNELS.sequentialChain,
    kernelFunc: ({ inputs, backend, attrs }) => sequentialChain(inputs as unknown as Record<string, TensorInfo>, backend, attrs as unknown as { count: number; epsilon: number }),
  },
  {
    name: FUSED_KERNELS.sequentialTree,
    kernelFunc: ({ inputs, backend, attrs }) => sequentialTree(inputs as unknown as Record<string, TensorInfo>, backend, attrs as unknown as { depth: number; k: number; epsilon: number }),
  },
  {
    name: FUSED_KERNELS.greedyVerdict,
    kernelFunc: ({ inputs, backend, attrs }) => {
      // [tip, best…] for the step's readback, then tip [1] and next [1] for drafting at the tip
      const { best } = inputs as { best: TensorInfo };
      const { parentRow, tokens, depth } = attrs as unknown as { parentRow: number[]; tokens: number[]; depth: number[] };
      const memory = memoryOf(backend, FUSED_KERNELS.greedyVerdict);
      const R = best.shape[0]!;
      const packed = memory.outputInt32([R + 1]);
      const tip = memory.outputInt32([1]);
      const next = memory.outputInt32([1]);
      const b = memory.viewInt32(best);
      const row = greedyTipRow(b, parentRow, tokens, depth);
      const all = memory.viewInt32(packed.info);
      all[0] = row;
      all.set(b, 1);
      memory.viewInt32(tip.info)[0] = row;
      memory.viewInt32(next.info)[0] = b[row]!;
      return [packed.info, tip.info, next.info];
    },
  },
  {
    name: FUSED_KERNELS.argmax,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { logits, ids } = inputs as { logits: TensorInfo; ids?: TensorInfo };
      const { group } = attrs as unknown as { group: number };
      const memory = memoryOf(backend, FUSED_KERNELS.argmax);
      const N = logits.shape[0]!;
      const out = memory.outputInt32([N]);
      argmaxRows(backend, memory, logits, out.values, ids === undefined ? null : memory.viewInt32(ids), group);
      return out.info;
    },
  },
];

/**
 * The running backend's own fused matmul kernel, to call directly from inside a kernel (no
 * engine work, no reshape): `a·b (+ bias)` (then relu) on `[1, n, in]` and `[1, in, out]`. The
 * result is the caller's to free.
 */
function backendMatMul(backend: unknown): (a: TensorInfo, b: TensorInfo, bias?: TensorInfo, activation?: 'linear' | 'relu') => TensorInfo {
  const kernel = tf.getKernel('_FusedMatMul', tf.getBackend())!.kernelFunc as unknown as (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs: object }) => TensorInfo;
  return (a, b, bias, activation = 'linear') => kernel({ inputs: bias === undefined ? { a, b } : { a, b, bias }, backend, attrs: { transposeA: false, transposeB: false, activation, leakyreluAlpha: 0 } });
}

/**
 * The weights and state of one pre-norm block, by name: the residual stream `x` and its norm `h`
 * (`[1, T, D]`), the cache buffers, and the projections as `[1, in, out]` matrices — q|k|v packed
 * in `wq` (then no `wk`, `wv`) or three, gate|up packed in `w1` (swiglu without `w3`) or two.
 */
interface BlockInputs {
  x: TensorInfo;
  h: TensorInfo;
  keys: TensorInfo;
  values: TensorInfo;
  wq: TensorInfo;
  wk?: TensorInfo;
  wv?: TensorInfo;
  bq?: TensorInfo;
  bk?: TensorInfo;
  bv?: TensorInfo;
  wo: TensorInfo;
  bo?: TensorInfo;
  ffnNorm: TensorInfo;
  ffnNormBias?: TensorInfo;
  w1: TensorInfo;
  b1?: TensorInfo;
  w3?: TensorInfo;
  b3?: TensorInfo;
  w2: TensorInfo;
  b2?: TensorInfo;
  nextNorm: TensorInfo;
  nextNormBias?: TensorInfo;
}

/** What a block needs besides tensors. */
interface BlockAttrs {
  plan: AttentionPlan;
  norm: NormKind;
  epsilon: number;
  mlp: MlpKind;
}

/**
 * One whole block in one dispatch: its projections through the backend's own matmul kernel
 * (XNNPACK on wasm), called directly, and the fused parts above between them — attention over
 * the cache, residual add + norm, the activation, residual add + the next block's norm. What
 * the engine would do per op (tracking, scopes, tensor objects) happens once; intermediates are
 * freed here. Returns `[x', h']`: the residual stream after the block and its next norm.
 */
function decoderBlock(inputs: BlockInputs, backend: unknown, attrs: BlockAttrs): TensorInfo[] {
  const small = smallBlockOnWasm(inputs, backend);
  if (small !== null) return small(attrs);
  const { plan, norm, epsilon, mlp } = attrs;
  const matMul = backendMatMul(backend);
  const memory = memoryOf(backend, FUSED_KERNELS.block);
  const made: TensorInfo[] = [];
  const mm = (a: TensorInfo, b: TensorInfo, bias: TensorInfo | undefined, activation: 'linear' | 'relu' = 'linear'): TensorInfo => {
    const out = matMul(a, b, bias, activation);
    made.push(out);
    return out;
  };
  const call = (kernel: (args: KernelArgs) => TensorInfo | TensorInfo[], named: Record<string, TensorInfo | undefined>, kernelAttrs: object): TensorInfo[] => {
    const clean: tf.NamedTensorInfoMap = {};
    for (const [key, t] of Object.entries(named)) if (t !== undefined) clean[key] = t;
    const out = kernel({ inputs: clean, backend, attrs: kernelAttrs });
    const list = Array.isArray(out) ? out : [out];
    made.push(...list);
    return list;
  };
  try {
    const { x, h, keys, values } = inputs;
    const [q, k, v] = inputs.wk === undefined ? [mm(h, inputs.wq, inputs.bq), undefined, undefined] : [mm(h, inputs.wq, inputs.bq), mm(h, inputs.wk, inputs.bk), mm(h, inputs.wv!, inputs.bv)];
    const [a] = call(attentionKernel, { q, k, v, keys, values }, { plan });
    const [mid, hn] = call(addNormKernel, { x, residual: mm(a!, inputs.wo, inputs.bo), weight: inputs.ffnNorm, bias: inputs.ffnNormBias }, { kind: norm, epsilon });
    let act: TensorInfo;
    if (mlp === 'relu') act = mm(hn!, inputs.w1, inputs.b1, 'relu');
    else if (mlp === 'gelu') [act] = call(activationKernel, { a: mm(hn!, inputs.w1, inputs.b1) }, { kind: mlp }) as [TensorInfo];
    else [act] = call(activationKernel, { a: mm(hn!, inputs.w1, inputs.b1), b: inputs.w3 === undefined ? undefined : mm(hn!, inputs.w3, inputs.b3) }, { kind: mlp }) as [TensorInfo];
    const [next, normed] = call(addNormKernel, { x: mid, residual: mm(act, inputs.w2, inputs.b2), weight: inputs.nextNorm, bias: inputs.nextNormBias }, { kind: norm, epsilon });
    made.splice(made.indexOf(next!), 1);
    made.splice(made.indexOf(normed!), 1);
    return [next!, normed!];
  } finally {
    for (const t of made) memory.free(t);
  }
}

/** The tensors of one folded sequential draft module (see `SequentialMtpHead`'s `fold`). */
interface SequentialInputs {
  /** Offset j−1's states `[m, D]`. */
  previous: TensorInfo;
  /** The tokens fed, int32 `[m]` (clamped into [0, V)). */
  tokens: TensorInfo;
  /** The token embedding `[V, D]` and each row's 1 / RMS `[V, 1]`. */
  embedding: TensorInfo;
  tokenScale: TensorInfo;
  /** The projection's halves with the norms' gains folded in, `[D, D]` each; the MLP. */
  state: TensorInfo;
  token: TensorInfo;
  w1: TensorInfo;
  b1: TensorInfo;
  w2: TensorInfo;
  b2: TensorInfo;
}

/** `t` seen as `[1, …shape]` (the matmul kernel's batch axis): the same memory, no copy. */
const batch1 = (t: TensorInfo): TensorInfo => ({ dataId: t.dataId, dtype: t.dtype, shape: [1, ...t.shape] });

/**
 * What a kernel with intermediates works with: its backend's memory, `mm` ({@link projections})
 * and `fresh` outputs, every one recorded in `made` for the kernel to free in its `finally`.
 */
function kernelScratch(backend: unknown, kernel: string): { memory: KernelMemory; made: TensorInfo[]; mm: ReturnType<typeof projections>; fresh(shape: number[]): TensorInfo } {
  const memory = memoryOf(backend, kernel);
  const made: TensorInfo[] = [];
  const fresh = (shape: number[]): TensorInfo => {
    const t = memory.output(shape);
    made.push(t);
    return t;
  };
  return { memory, made, mm: projections(backend, memory, made), fresh };
}

/**
 * One sequential draft module in one dispatch: `u = rms(previous)·P_state + rms(e_token)·P_token`
 * (the folded projection), then `u + w2(silu(w1 u + b1)) + b2` — the projections through
 * {@link projections} (the SIMD matmul where small on wasm, else the backend's own kernel called
 * directly), the rest in JS. Returns offset j's states `[m, D]`.
 */
function sequentialModule(inputs: SequentialInputs, backend: unknown, attrs: { epsilon: number }): TensorInfo {
  const { memory, made, mm, fresh } = kernelScratch(backend, FUSED_KERNELS.sequential);
  try {
    const [m, D] = inputs.previous.shape as [number, number];
    const V = inputs.embedding.shape[0]!;
    const tokens = Int32Array.from(memory.viewInt32(inputs.tokens), (t) => Math.min(Math.max(t, 0), V - 1)); // a broken row's −1 included
    const gathered = fresh([m, D]);
    const rows = memory.view(gathered);
    const e = memory.view(inputs.embedding);
    tokens.forEach((t, r) => rows.set(e.subarray(t * D, (t + 1) * D), r * D));
    const fromState = mm(inputs.previous, inputs.state);
    const fromToken = mm(gathered, inputs.token);
    const u = fresh([m, D]);
    moduleInput(memory.view(fromState), memory.view(inputs.previous), memory.view(fromToken), memory.view(inputs.tokenScale), tokens, attrs.epsilon, memory.view(u));
    const hidden = mm(u, inputs.w1, inputs.b1);
    const act = fresh([...hidden.shape]);
    silu(memory.view(hidden), memory.view(act));
    const y = mm(act, inputs.w2, inputs.b2);
    const out = memory.output([m, D]); // returned: not freed here
    const o = memory.view(out);
    const uv = memory.view(u);
    const yv = memory.view(y);
    for (let i = 0; i < o.length; i++) o[i] = uv[i]! + yv[i]!;
    return out;
  } finally {
    for (const t of made) memory.free(t);
  }
}

/**
 * On the wasm backend with WebAssembly SIMD: `y = a·b` through the module's matmul (`simd.ts`),
 * on tensors already in the heap (`y` allocated by the caller) — for projections small enough
 * that the backend kernel's call costs more than the arithmetic. Null elsewhere.
 */
function simdMatMul(backend: unknown): ((a: TensorInfo, b: TensorInfo, y: TensorInfo, rows: number, inDim: number, outDim: number) => void) | null {
  const simd = wasmSimd(backend);
  if (simd === null) return null;
  const { loops, offset } = simd;
  return (a, b, y, rows, inDim, outDim) => loops.matmul(offset(a), offset(b), 0, offset(y), rows, inDim, outDim);
}

/**
 * {@link checkedArgmaxRows} over the tensor `logits` `[N, V]`: on wasm with SIMD each row through
 * the module's argmax (four columns per operation), the exact JS loop for a row it declines
 * (NaN, ±Infinity or logits large enough for the row's sum to overflow) or where V is not a
 * multiple of 4.
 */
function argmaxRows(backend: unknown, memory: KernelMemory, logits: TensorInfo, out: Int32Array, ids: Int32Array | null, group: number): void {
  const V = logits.shape[logits.shape.length - 1]!;
  let fast: ((r: number) => number) | undefined;
  const simd = V % 4 === 0 ? wasmSimd(backend) : null;
  if (simd !== null) {
    const at = simd.offset(logits);
    const bound = finiteRowBound(V);
    fast = (r) => simd.loops.argmax(at + 4 * r * V, V, bound);
  }
  checkedArgmaxRows(memory.view(logits), V, out, ids, group, fast);
}

/**
 * `a·b (+ bias)` for a kernel's small projections: through the SIMD matmul on wasm where the
 * matrix is at most {@link SIMD_MATMUL_LIMIT} floats, else the backend's own kernel; the bias
 * added after, as the composite path does (and its tensor may share storage of another rank).
 * Results `[rows, out]` are pushed to `made` (the caller frees them).
 */
function projections(backend: unknown, memory: KernelMemory, made: TensorInfo[]): (a: TensorInfo, b: TensorInfo, bias?: TensorInfo) => TensorInfo {
  const matMul = backendMatMul(backend);
  const small = simdMatMul(backend);
  return (a, b, bias) => {
    const [rows, inDim] = a.shape as [number, number];
    const outDim = b.shape[1]!;
    let out: TensorInfo;
    if (small !== null && inDim * outDim <= SIMD_MATMUL_LIMIT) {
      out = memory.output([1, rows, outDim]);
      small(a, b, out, rows, inDim, outDim);
    } else out = matMul(batch1(a), batch1(b));
    made.push(out);
    if (bias !== undefined) {
      const y = memory.view(out);
      const c = memory.view(bias);
      const width = c.length;
      for (let i = 0; i < y.length; i++) y[i] = y[i]! + c[i % width]!;
    }
    return { dataId: out.dataId, dtype: out.dtype, shape: out.shape.slice(1) };
  };
}

/**
 * Sequential drafting at the tip in one dispatch: modules 1…n from `states` `[m, D]`, module 1 fed
 * `roots`, module j + 1 fed module j's draft argmax (each through {@link sequentialModule}), each
 * state through the draft unembedding `[D, Vd]` (+ bias) and the checked argmax mapped through
 * `ids`; a row with a non-finite column is −1 throughout. Inputs `states`, `roots`, `embedding`,
 * `tokenScale`, `unembed`, `unembedBias?`, `ids?`, and per module j `state{j}`, `token{j}`,
 * `w1_{j}`, `b1_{j}`, `w2_{j}`, `b2_{j}`. Returns int32 `[m, n]`.
 */
function sequentialChain(inputs: Record<string, TensorInfo>, backend: unknown, attrs: { count: number; epsilon: number }): TensorInfo {
  const { memory, made, mm } = kernelScratch(backend, FUSED_KERNELS.sequentialChain);
  try {
    const { count: n, epsilon } = attrs;
    const [m] = inputs.states!.shape as [number, number];
    const unembed = inputs.unembed!;
    const columns: Int32Array[] = [];
    let previous = inputs.states!;
    let tokens = inputs.roots!;
    for (let j = 1; j <= n; j++) {
      const module = { state: inputs[`state${j}`]!, token: inputs[`token${j}`]!, w1: inputs[`w1_${j}`]!, b1: inputs[`b1_${j}`]!, w2: inputs[`w2_${j}`]!, b2: inputs[`b2_${j}`]! };
      previous = sequentialModule({ previous, tokens, embedding: inputs.embedding!, tokenScale: inputs.tokenScale!, ...module }, backend, { epsilon });
      made.push(previous);
      const logits = mm(previous, unembed, inputs.unembedBias);
      const picked = memory.outputInt32([m]);
      made.push(picked.info);
      argmaxRows(backend, memory, logits, memory.viewInt32(picked.info), inputs.ids === undefined ? null : memory.viewInt32(inputs.ids), 1);
      columns.push(Int32Array.from(memory.viewInt32(picked.info)));
      tokens = picked.info; // a −1 is clamped by the next module and breaks the row below
    }
    const out = memory.outputInt32([m, n]); // returned: not freed here
    const o = memory.viewInt32(out.info);
    for (let r = 0; r < m; r++) {
      const broken = columns.some((c) => c[r] === -1);
      for (let j = 0; j < n; j++) o[r * n + j] = broken ? -1 : columns[j]![r]!;
    }
    return out.info;
  } finally {
    for (const t of made) memory.free(t);
  }
}

/**
 * The `k` largest of `row` (descending, equal values by lower index, as `tf.topk`): their columns
 * into `cols` and values into `vals` at `at`…`at + k`. NaN never ranks above a number; a row with
 * fewer than k numbers fills the rest from the lowest columns not taken (such a row is broken and
 * reported as −1 by the caller).
 */
function topkRow(row: Float32Array, k: number, cols: Int32Array, vals: Float32Array, at: number): void {
  let n = 0; // filled so far, cols/vals[at … at + n) sorted
  for (let c = 0; c < row.length; c++) {
    const v = row[c]!;
    if (Number.isNaN(v)) continue;
    if (n === k && !(v > vals[at + k - 1]!)) continue; // not above the k-th (a tie keeps the lower column)
    let i = n < k ? n++ : k - 1;
    while (i > 0 && v > vals[at + i - 1]!) {
      vals[at + i] = vals[at + i - 1]!;
      cols[at + i] = cols[at + i - 1]!;
      i--;
    }
    vals[at + i] = v;
    cols[at + i] = c;
  }
  for (let c = 0; n < k; c++) {
    let taken = false;
    for (let i = 0; i < n; i++) if (cols[at + i] === c) taken = true;
    if (taken) continue;
    vals[at + n] = row[c]!;
    cols[at + n++] = c;
  }
}

/**
 * A row's log-sum-exp `value` (float32: its max plus the log of Σ exp(z − max), summed in
 * float64) and its plain `sum` rounded to float32, which is not finite iff a logit is not (or the
 * row's sum overflows float32), as the composite path's `isFinite(sum(logits))` decides.
 */
function logSumExpRow(z: Float32Array): { value: number; sum: number } {
  let max = -Infinity;
  let sum = 0;
  for (let c = 0; c < z.length; c++) {
    const v = z[c]!;
    sum += v;
    if (v > max) max = v;
  }
  let exps = 0;
  for (let c = 0; c < z.length; c++) exps += Math.exp(z[c]! - max);
  return { value: Math.fround(max + Math.log(exps)), sum: Math.fround(sum) };
}

/**
 * Dynamic tree drafting with sequential modules in one dispatch, EAGLE-2's growth as
 * `SequentialMtpHead.headTree` composes it: module 1 from `states` `[m, D]` fed `roots`, its top-k
 * children per row over the draft vocabulary with log-probabilities (logits minus their
 * log-sum-exp); then per level j = 2…depth the k frontier nodes of highest cumulative score are
 * expanded, each through module j fed its token and the state of the module that ranked it, k
 * children each (scores add up along the path). Inputs as {@link sequentialChain}. Returns, per
 * row over the G = k + (depth − 1)·k² candidates level by level, int32 token ids `[m, G]` (−1
 * throughout a row with a non-finite logit anywhere), int32 parents `[m, G]` (−1: the root;
 * else the candidate's index) and float32 cumulative scores `[m, G]`.
 */
function sequentialTree(inputs: Record<string, TensorInfo>, backend: unknown, attrs: { depth: number; k: number; epsilon: number }): TensorInfo[] {
  const { memory, made, mm, fresh } = kernelScratch(backend, FUSED_KERNELS.sequentialTree);
  try {
    const { depth, k, epsilon } = attrs;
    const [m, D] = inputs.states!.shape as [number, number];
    const Vd = inputs.unembed!.shape[1]!;
    const G = k + (depth - 1) * k * k;
    const idTable = inputs.ids === undefined ? null : Int32Array.from(memory.viewInt32(inputs.ids));
    const ids = new Int32Array(m * G);
    const parents = new Int32Array(m * G).fill(-1);
    const scores = new Float32Array(m * G);
    const finite = new Uint8Array(m).fill(1);
    /** Module j fed `previous` `[n, D]` and `tokens` (n rows, `n / m` per output row): its state, each row's top-k columns and log-probabilities `[n·k]`. */
    const expand = (j: number, previous: TensorInfo, tokens: TensorInfo) => {
      const n = previous.shape[0]!;
      const module = { state: inputs[`state${j}`]!, token: inputs[`token${j}`]!, w1: inputs[`w1_${j}`]!, b1: inputs[`b1_${j}`]!, w2: inputs[`w2_${j}`]!, b2: inputs[`b2_${j}`]! };
      const s = sequentialModule({ previous, tokens, embedding: inputs.embedding!, tokenScale: inputs.tokenScale!, ...module }, backend, { epsilon });
      made.push(s);
      const logits = memory.view(mm(s, inputs.unembed!, inputs.unembedBias)); // [n, Vd]
      const cols = new Int32Array(n * k);
      const logProbs = new Float32Array(n * k);
      const per = n / m;
      for (let i = 0; i < n; i++) {
        const row = logits.subarray(i * Vd, (i + 1) * Vd);
        const lse = logSumExpRow(row);
        if (!Number.isFinite(lse.sum)) finite[Math.floor(i / per)] = 0;
        topkRow(row, k, cols, logProbs, i * k);
        for (let r = i * k; r < (i + 1) * k; r++) logProbs[r] = Math.fround(logProbs[r]! - lse.value);
      }
      return { s, cols, logProbs };
    };
    const token = (col: number) => (idTable === null ? col : idTable[col]!);
    // level 1: every row's k children of the root (the module clamps the roots into [0, V) itself)
    let level = expand(1, inputs.states!, inputs.roots!);
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < k; c++) {
        ids[r * G + c] = token(level.cols[r * k + c]!);
        scores[r * G + c] = level.logProbs[r * k + c]!;
      }
    }
    // the frontier is the last level grown: F candidates per row from levelStart in ids and scores;
    // its module states are `level.s`, one per row at level 1 (shared by the row's k nodes)
    let F = k;
    let levelStart = 0;
    for (let j = 2; j <= depth; j++) {
      const bestCols = new Int32Array(m * k);
      const bestVals = new Float32Array(m * k);
      for (let r = 0; r < m; r++) topkRow(scores.subarray(r * G + levelStart, r * G + levelStart + F), k, bestCols, bestVals, r * k);
      // every allocation before the views that follow it (a wasm allocation may move the heap)
      const previous = fresh([m * k, D]);
      const fed = memory.outputInt32([m * k]);
      made.push(fed.info);
      const from = memory.view(level.s);
      const to = memory.view(previous);
      const tokens = memory.viewInt32(fed.info);
      for (let r = 0; r < m; r++) {
        for (let c = 0; c < k; c++) {
          const node = bestCols[r * k + c]!; // within the frontier
          const stateRow = j === 2 ? r : r * k + Math.floor(node / k); // the module state that ranked it
          to.set(from.subarray(stateRow * D, (stateRow + 1) * D), (r * k + c) * D);
          tokens[r * k + c] = ids[r * G + levelStart + node]!;
        }
      }
      level = expand(j, previous, fed.info);
      const start = k + (j - 2) * k * k;
      for (let r = 0; r < m; r++) {
        for (let c = 0; c < k; c++) {
          for (let c2 = 0; c2 < k; c2++) {
            const at = (r * k + c) * k + c2;
            const slot = r * G + start + c * k + c2;
            ids[slot] = token(level.cols[at]!);
            scores[slot] = Math.fround(level.logProbs[at]! + bestVals[r * k + c]!);
            parents[slot] = levelStart + bestCols[r * k + c]!;
          }
        }
      }
      F = k * k;
      levelStart = start;
    }
    for (let r = 0; r < m; r++) if (finite[r] === 0) ids.fill(-1, r * G, (r + 1) * G);
    const outIds = memory.outputInt32([m, G]);
    const outParents = memory.outputInt32([m, G]);
    const outScores = memory.output([m, G]); // returned: not freed here
    memory.viewInt32(outIds.info).set(ids);
    memory.viewInt32(outParents.info).set(parents);
    memory.view(outScores).set(scores);
    return [outIds.info, outParents.info, outScores];
  } finally {
    for (const t of made) memory.free(t);
  }
}

/** A stacked group of parallel offset heads and the draft unembedding (see `layers/inference_fused.ts`). */
interface DraftInputs {
  x: TensorInfo;
  first?: TensorInfo;
  firstBias?: TensorInfo;
  /** The block diagonal, or (absent) `second1` … `second{n}`: one `[W, D]` matrix per offset. */
  second?: TensorInfo;
  secondBias?: TensorInfo;
  unembed: TensorInfo;
  unembedBias?: TensorInfo;
  ids?: TensorInfo;
}

/** The group's kind, its offset count n and its activation (one of `HEAD_ACTIVATIONS`). */
interface DraftAttrs {
  kind: 'identity' | 'linear' | 'residual' | 'lowRank' | 'mlp';
  count: number;
  activation: string;
}

/**
 * The offsets' draft logits of a {@link draftArgmax} / {@link draftTopK} call, `[m·n, Vd]` (offset j
 * of row r at row r·n + j), made in `scratch` (freed by the caller with everything else in it).
 */
function draftGroupLogits(inputs: DraftInputs, attrs: DraftAttrs, scratch: ReturnType<typeof kernelScratch>): TensorInfo {
  const { memory, mm, fresh } = scratch;
  const parts = Array.from({ length: attrs.count }, (_, j) => (inputs as unknown as Record<string, TensorInfo | undefined>)[`second${j + 1}`]);
  /** `a·blockdiag(W2_1 … W2_n) + b`, `a` `[m, n·W]`, as n products of `[m, W]·[W, D]` → `[m, n·D]`. */
  const perOffset = (a: TensorInfo, m: number, n: number, D: number, bias?: TensorInfo): TensorInfo => {
    const W = parts[0]!.shape[0]!;
    const slices = parts.map(() => fresh([m, W])); // every allocation before the views
    const av = memory.view(a);
    slices.forEach((t, j) => {
      const v = memory.view(t);
      for (let r = 0; r < m; r++) v.set(av.subarray(r * n * W + j * W, r * n * W + (j + 1) * W), r * W);
    });
    const products = parts.map((w, j) => mm(slices[j]!, w!));
    const y = fresh([m, n * D]);
    const yv = memory.view(y);
    products.forEach((p, j) => {
      const pv = memory.view(p);
      for (let r = 0; r < m; r++) yv.set(pv.subarray(r * D, (r + 1) * D), r * n * D + j * D);
    });
    if (bias !== undefined) {
      const b = memory.view(bias);
      for (let i = 0; i < yv.length; i++) yv[i] = yv[i]! + b[i % (n * D)]!;
    }
    return y;
  };
  const { kind, count: n, activation } = attrs;
  const [m, D] = inputs.x.shape as [number, number];
  // every allocation before the views that follow it (a wasm allocation may move the heap)
  const z = kind === 'identity' ? null : mm(inputs.x, inputs.first!, inputs.firstBias); // [m, n·W]: offset j of row r at columns j·W…
  let y: TensorInfo | null = null; // what is added to x, [m, n·D]
  if (z !== null && kind !== 'linear') {
    const a = fresh([...z.shape]);
    applyActivation(activation, memory.view(z), memory.view(a));
    y = kind === 'residual' ? a : inputs.second !== undefined ? mm(a, inputs.second, inputs.secondBias) : perOffset(a, m, n, D, inputs.secondBias);
  }
  let states: TensorInfo; // [m·n, D]
  if (kind === 'linear') states = { ...z!, shape: [m * n, D] };
  else {
    states = fresh([m * n, D]);
    const s = memory.view(states);
    const x = memory.view(inputs.x);
    const add = y === null ? null : memory.view(y);
    for (let r = 0; r < m; r++) {
      for (let j = 0; j < n; j++) {
        const to = (r * n + j) * D;
        for (let d = 0; d < D; d++) s[to + d] = add === null ? x[r * D + d]! : x[r * D + d]! + add[to + d]!;
      }
    }
  }
  return mm(states, inputs.unembed, inputs.unembedBias); // [m·n, Vd]
}

/**
 * Drafting at the tip in one dispatch: the n offsets' states from `x` `[m, D]` — identity `x`;
 * linear `x·W + b`; residual `x + f(x·W + b)`; lowRank `x + f(x·down)·up`; mlp
 * `x + f(x·W1 + b1)·W2 + b2`, every offset's matrices stacked side by side (first) or on a block
 * diagonal (second) — then the draft unembedding `[D, Vd]` (+ bias) and the checked argmax,
 * columns mapped through `ids` and each position's n offsets broken together. The matmuls go
 * through {@link projections}, the rest in JS. Returns int32 `[m·n]`.
 */
function draftArgmax(inputs: DraftInputs, backend: unknown, attrs: DraftAttrs): TensorInfo {
  const scratch = kernelScratch(backend, FUSED_KERNELS.draftArgmax);
  const { memory, made } = scratch;
  try {
    const m = inputs.x.shape[0]!;
    const n = attrs.count;
    const logits = draftGroupLogits(inputs, attrs, scratch);
    const out = memory.outputInt32([m * n]); // returned: not freed here
    argmaxRows(backend, memory, logits, out.values, inputs.ids === undefined ? null : memory.viewInt32(inputs.ids), n);
    return out.info;
  } finally {
    for (const t of made) memory.free(t);
  }
}

/**
 * {@link draftArgmax}'s offsets ranked: the `k` most likely draft tokens of each of the m·n rows
 * (descending, equal logits by lower column, so rank 0 is the argmax), mapped through `ids`, and
 * their log-probabilities over the draft vocabulary (logit minus the row's log-sum-exp). A
 * position whose n offsets hold a non-finite logit anywhere has −1 ids throughout. Returns
 * `[ids int32 [m·n·k], logProbs float32 [m·n·k]]`.
 */
function draftTopK(inputs: DraftInputs, backend: unknown, attrs: DraftAttrs & { k: number }): TensorInfo[] {
  const scratch = kernelScratch(backend, FUSED_KERNELS.draftTopK);
  const { memory, made } = scratch;
  try {
    const m = inputs.x.shape[0]!;
    const { count: n, k } = attrs;
    const logits = draftGroupLogits(inputs, attrs, scratch);
    const Vd = logits.shape[1]!;
    const ids = memory.outputInt32([m * n * k]); // returned: not freed here
    const logProbs = memory.output([m * n * k]);
    const table = inputs.ids === undefined ? null : memory.viewInt32(inputs.ids);
    const values = memory.view(logits);
    const cols = memory.viewInt32(ids.info);
    const lp = memory.view(logProbs);
    for (let r = 0; r < m; r++) {
      let broken = false;
      for (let j = 0; j < n; j++) {
        const row = r * n + j;
        const z = values.subarray(row * Vd, (row + 1) * Vd);
        const lse = logSumExpRow(z);
        if (!Number.isFinite(lse.sum)) broken = true;
        topkRow(z, k, cols, lp, row * k);
        for (let i = row * k; i < (row + 1) * k; i++) {
          lp[i] = Math.fround(lp[i]! - lse.value);
          if (table !== null) cols[i] = table[cols[i]!]!;
        }
      }
      if (broken) cols.fill(-1, r * n * k, (r + 1) * n * k);
    }
    return [ids.info, logProbs];
  } finally {
    for (const t of made) memory.free(t);
  }
}

/** Largest projection (in · out floats) the SIMD matmul takes over from the backend's: where its call overhead, not arithmetic, is the cost. */
const SIMD_MATMUL_LIMIT = 65_536;

/**
 * {@link decoderBlock} for a small model on the wasm backend with WebAssembly SIMD: every
 * projection through the SIMD matmul (`simd.ts`) and every intermediate in one scratch block of
 * the heap, so a block costs two allocations (its outputs) and no call into the backend's
 * kernels. Null (take the general path) unless the backend is wasm with SIMD, q|k|v and gate|up
 * are packed, and every projection is at most {@link SIMD_MATMUL_LIMIT} floats.
 */
function smallBlockOnWasm(inputs: BlockInputs, backend: unknown): ((attrs: BlockAttrs) => TensorInfo[]) | null {
  if (inputs.wk !== undefined || inputs.w3 !== undefined) return null;
  const simd = wasmSimd(backend);
  const b = backend as Partial<WasmModuleLike & WasmLike>;
  if (simd === null || typeof b.makeOutput !== 'function') return null;
  const { loops, memory } = simd;
  const mats = [inputs.wq, inputs.wo, inputs.w1, inputs.w2];
  if (mats.some((w) => w.shape[1]! * w.shape[2]! > SIMD_MATMUL_LIMIT)) return null;
  const wasm = b as WasmModuleLike & WasmLike;
  return ({ plan, norm, epsilon, mlp }) => {
    const [, T, D] = inputs.x.shape as [number, number, number];
    const qkvWidth = inputs.wq.shape[2]!;
    const F = inputs.w2.shape[1]!;
    const up = inputs.w1.shape[2]!; // F, or 2F for swiglu's [gate | up]
    const width = plan.numHeads * plan.headDim;
    // scratch: qkv | attention out | o | mid | hn | gate·up | act | f | the attention's own
    const sizes = [T * qkvWidth, T * width, T * D, T * D, T * D, T * up, T * F, T * D, attentionScratch(plan)];
    const total = sizes.reduce((a, c) => a + c, 0);
    const next = wasm.makeOutput([1, T, D], 'float32');
    const normed = wasm.makeOutput([1, T, D], 'float32');
    const scratch = wasm.wasm._malloc(4 * total) >>> 0; // every allocation before the views
    try {
      const at: number[] = []; // float offsets
      sizes.reduce((offset, size) => (at.push(offset), offset + size), scratch >> 2);
      const [QKV, ATT, O, MID, HN, GU, ACT, FF, ATTN] = at as [number, number, number, number, number, number, number, number, number];
      const heap = new Float32Array(memory.buffer);
      const off = (t: TensorInfo | undefined) => (t === undefined ? 0 : simd.offset(t));
      const view = (start: number, size: number) => heap.subarray(start, start + size);
      const mm = (x: number, w: TensorInfo, bias: TensorInfo | undefined, y: number, inDim: number, outDim: number) => loops.matmul(4 * x, off(w), off(bias), 4 * y, T, inDim, outDim);
      mm(off(inputs.h) >> 2, inputs.wq, inputs.bq, QKV, D, qkvWidth);
      const kvWidth = plan.numKeyValueHeads * plan.headDim;
      const keys = off(inputs.keys);
      const values = off(inputs.values);
      const lanes = inputs.keys.shape[0]! * inputs.keys.shape[1]!; // Hkv·hs lanes × capacity (× sequences in a batch)
      cachedAttention(
        { data: heap, offset: QKV, stride: qkvWidth },
        { data: heap, offset: QKV + width, stride: qkvWidth },
        { data: heap, offset: QKV + width + kvWidth, stride: qkvWidth },
        view(keys >> 2, lanes),
        view(values >> 2, lanes),
        plan,
        view(ATT, T * width),
        { loops, keys, values, scratch: 4 * ATTN, heap },
      );
      mm(ATT, inputs.wo, inputs.bo, O, width, D);
      const x = off(inputs.x) >> 2;
      const vec = (t: TensorInfo | undefined, n: number) => (t === undefined ? null : view(off(t) >> 2, n));
      normRows(view(x, T * D), view(O, T * D), vec(inputs.ffnNorm, D)!, vec(inputs.ffnNormBias, D), norm, epsilon, view(HN, T * D), view(MID, T * D));
      mm(HN, inputs.w1, inputs.b1, GU, D, up);
      if (mlp === 'swiglu' && F % 4 === 0) loops.swiglu(4 * GU, 4 * ACT, T, F);
      else activate(mlp, view(GU, T * up), null, view(ACT, T * F), F);
      mm(ACT, inputs.w2, inputs.b2, FF, F, D);
      normRows(view(MID, T * D), view(FF, T * D), vec(inputs.nextNorm, D)!, vec(inputs.nextNormBias, D), norm, epsilon, view(off(normed) >> 2, T * D), view(off(next) >> 2, T * D));
      return [next, normed];
    } finally {
      wasm.wasm._free(scratch);
    }
  };
}

/** Registers every fused kernel for the cpu and wasm backends, once (a kernel someone else registered under our name is left alone). */
export function registerFusedKernels(): void {
  for (const backendName of FUSED_BACKENDS) {
    for (const { name, kernelFunc } of kernels) {
      if (tf.getKernel(name, backendName) === undefined) tf.registerKernel({ kernelName: name, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
    }
  }
}

let enabled = true;

/**
 * Switches the fused decode kernels on (the default) or off for every model in this page or
 * process: off, `CachedTransformer` runs the composite tfjs ops on every backend — the switch to
 * reach for if a fused kernel is suspected of a difference, or to measure what it saves. A
 * sequence already cached keeps the path it started on until it is truncated to 0 (a new decode).
 *
 * @example
 * setFusedKernels(false); // composite ops from the next decode on
 */
export function setFusedKernels(on: boolean): void {
  if (typeof on !== 'boolean') fail(TypeError, 'setFusedKernels', 'on', 'must be a boolean', on);
  enabled = on;
}

/**
 * Whether the fused kernels run here: switched on ({@link setFusedKernels}), and the running
 * backend has every one and the memory they read (registers them first). False on WebGL, WebGPU,
 * node and any backend of another name.
 */
export function fusedKernelsAvailable(): boolean {
  if (!enabled) return false;
  const backend = tf.backend() as object;
  let ready = checked.get(backend);
  if (ready === undefined) {
    const name = tf.getBackend();
    ready = (FUSED_BACKENDS as readonly string[]).includes(name);
    if (ready) {
      registerFusedKernels();
      ready = kernels.every(({ name: kernel }) => tf.getKernel(kernel, name) !== undefined) && kernelMemory(backend) !== null;
    }
    checked.set(backend, ready);
  }
  return ready;
}

/** {@link fusedKernelsAvailable}'s answer per backend instance (asked every step: a lookup, not a check). */
const checked = new WeakMap<object, boolean>();
