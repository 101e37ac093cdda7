/**
 * The fused kernels as ops: what the trunk's decode path calls (one dispatch each, through
 * `tf.engine().runKernel`), with the same meaning as the composite functions in `../ops.ts`.
 * Only valid where {@link fusedKernelsAvailable} said yes; no gradients (decoding only).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MlpKind, NormKind } from '../models/config.js';
import type { Norm } from '../models/ops.js';
import type { AttentionPlan } from './math.js';
import { FUSED_KERNELS } from './registry.js';

function run(name: string, inputs: Record<string, tf.Tensor | undefined>, attrs: object): tf.Tensor | tf.Tensor[] {
  const named: tf.NamedTensorMap = {};
  for (const [key, t] of Object.entries(inputs)) if (t !== undefined) named[key] = t;
  return tf.engine().runKernel(name, named, attrs as unknown as tf.NamedAttrMap);
}

/** The tensors of one block for {@link fusedBlock} (see the kernel's `BlockInputs`). */
export interface FusedBlockInputs {
  x: tf.Tensor3D;
  h: tf.Tensor3D;
  keys: tf.Tensor2D;
  values: tf.Tensor2D;
  wq: tf.Tensor3D;
  wk?: tf.Tensor3D;
  wv?: tf.Tensor3D;
  bq?: tf.Tensor1D;
  bk?: tf.Tensor1D;
  bv?: tf.Tensor1D;
  wo: tf.Tensor3D;
  bo?: tf.Tensor1D;
  ffnNorm: tf.Tensor1D;
  ffnNormBias?: tf.Tensor1D;
  w1: tf.Tensor3D;
  b1?: tf.Tensor1D;
  w3?: tf.Tensor3D;
  b3?: tf.Tensor1D;
  w2: tf.Tensor3D;
  b2?: tf.Tensor1D;
  nextNorm: tf.Tensor1D;
  nextNormBias?: tf.Tensor1D;
}

/**
 * One pre-norm block over the T new rows, one kernel: `[x', h']` from the residual stream `x`
 * and its norm `h` (`[1, T, D]`), the cache buffers written in place as by
 * {@link fusedCachedAttention}; `h'` is `x'` under the next block's norm (or the final one).
 */
export function fusedBlock(inputs: FusedBlockInputs, plan: AttentionPlan, norm: NormKind, epsilon: number, mlp: MlpKind): [tf.Tensor3D, tf.Tensor3D] {
  return run(FUSED_KERNELS.block, inputs as unknown as Record<string, tf.Tensor | undefined>, { plan, norm, epsilon, mlp }) as [tf.Tensor3D, tf.Tensor3D];
}

/** One folded sequential draft module, one kernel (see `SequentialMtpHead`): offset j's states `[m, D]`. */
export function fusedSequentialModule(
  previous: tf.Tensor2D,
  tokens: tf.Tensor1D,
  embedding: tf.Tensor2D,
  tokenScale: tf.Tensor2D,
  module: { state: tf.Tensor2D; token: tf.Tensor2D; w1: tf.Tensor2D; b1: tf.Tensor1D; w2: tf.Tensor2D; b2: tf.Tensor1D },
  epsilon: number,
): tf.Tensor2D {
  return run(FUSED_KERNELS.sequential, { previous, tokens, embedding, tokenScale, ...module }, { epsilon }) as tf.Tensor2D;
}

/** A stacked group of parallel offset heads for {@link fusedDraftArgmax} (see `layers/inference_fused.ts`). */
export interface FusedDraftGroup {
  kind: 'identity' | 'linear' | 'residual' | 'lowRank' | 'mlp';
  /** Number of offsets n. */
  count: number;
  /** The heads' activation, a tfjs-layers name. */
  activation: string;
  /** First matrices side by side `[D, n·W]`, null for identity; their biases `[n·W]` or null. */
  first: tf.Tensor2D | null;
  firstBias: tf.Tensor1D | null;
  /** Second matrices on a block diagonal `[n·W, n·D]` (lowRank, mlp) or null; their biases `[n·D]` or null. */
  second: tf.Tensor2D | null;
  secondBias: tf.Tensor1D | null;
  /** The second matrices one by one, `[W, D]` each: when given, the kernel runs one product per offset instead of the block diagonal. */
  secondParts?: readonly tf.Tensor2D[] | null;
}

/**
 * The argmax drafts of a group of n parallel offsets at the rows of `x` `[m, D]`, one kernel:
 * the offsets' states, the draft unembedding `unembed` `[D, Vd]` (+ `bias`), the checked argmax
 * mapped through `ids` `[Vd]` (a draft vocabulary), each row's n offsets −1 together when one is
 * not finite. Int32 `[m·n]`.
 */
export function fusedDraftArgmax(x: tf.Tensor2D, g: FusedDraftGroup, unembed: tf.Tensor2D, bias: tf.Tensor1D | null, ids: tf.Tensor1D | null): tf.Tensor1D {
  return run(FUSED_KERNELS.draftArgmax, draftInputs(x, g, unembed, bias, ids), { kind: g.kind, count: g.count, activation: g.activation }) as tf.Tensor1D;
}

/** The inputs of the draft kernels (`MtpDraftArgmax`, `MtpDraftTopK`) for group `g` at the rows of `x`. */
function draftInputs(x: tf.Tensor2D, g: FusedDraftGroup, unembed: tf.Tensor2D, bias: tf.Tensor1D | null, ids: tf.Tensor1D | null): Record<string, tf.Tensor | undefined> {
  const parts = g.secondParts ?? null;
  const inputs: Record<string, tf.Tensor | undefined> = { x, first: g.first ?? undefined, firstBias: g.firstBias ?? undefined, second: parts === null ? (g.second ?? undefined) : undefined, secondBias: g.secondBias ?? undefined, unembed, unembedBias: bias ?? undefined, ids: ids ?? undefined };
  parts?.forEach((w, j) => (inputs[`second${j + 1}`] = w));
  return inputs;
}

/**
 * {@link fusedDraftArgmax}'s offsets ranked, one kernel: the `k` most likely draft tokens of each
 * offset at each row of `x` `[m, D]` (ties by lower column; rank 0 is the argmax), mapped through
 * `ids`, with log-probabilities over the draft vocabulary; −1 ids throughout a row with a
 * non-finite logit in any of its offsets. `[m·n·k]` each.
 */
export function fusedDraftTopK(x: tf.Tensor2D, g: FusedDraftGroup, unembed: tf.Tensor2D, bias: tf.Tensor1D | null, ids: tf.Tensor1D | null, k: number): { ids: tf.Tensor1D; logProbs: tf.Tensor1D } {
  const [top, logProbs] = run(FUSED_KERNELS.draftTopK, draftInputs(x, g, unembed, bias, ids), { kind: g.kind, count: g.count, activation: g.activation, k }) as [tf.Tensor1D, tf.Tensor1D];
  return { ids: top, logProbs };
}

/**
 * Greedy acceptance over a draft tree, one kernel: from the verifier's argmax `best` int32 `[R]`
 * (row 0 the root, row i + 1 node i), `[packed, tip, next]` — `packed` `[R + 1]` is the tip's row
 * then `best` (the step's readback), `tip` and `next` `[1]` the tip's row and `best` there.
 */
export function fusedGreedyVerdict(best: tf.Tensor1D, shape: { parentRow: readonly number[]; tokens: readonly number[]; depth: readonly number[] }): [tf.Tensor1D, tf.Tensor1D, tf.Tensor1D] {
  return run(FUSED_KERNELS.greedyVerdict, { best }, { parentRow: shape.parentRow, tokens: shape.tokens, depth: shape.depth }) as [tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
}

/** One folded sequential module's tensors (see `SequentialMtpHead`). */
export interface FusedSequentialWeights {
  state: tf.Tensor2D;
  token: tf.Tensor2D;
  w1: tf.Tensor2D;
  b1: tf.Tensor1D;
  w2: tf.Tensor2D;
  b2: tf.Tensor1D;
}

/**
 * Sequential drafting at the tip, one kernel: modules 1…n (`modules`) from `states` `[m, D]`,
 * module 1 fed `roots` int32 `[m]`, each next one fed the draft argmax before it (within the
 * draft vocabulary `unembed` `[D, Vd]`, ids mapped through `ids`); int32 `[m, n]`, a row with a
 * non-finite column −1 throughout.
 */
export function fusedSequentialChain(states: tf.Tensor2D, roots: tf.Tensor1D, embedding: tf.Tensor2D, tokenScale: tf.Tensor2D, modules: readonly FusedSequentialWeights[], unembed: tf.Tensor2D, bias: tf.Tensor1D | null, ids: tf.Tensor1D | null, epsilon: number): tf.Tensor2D {
  return run(FUSED_KERNELS.sequentialChain, sequentialInputs(states, roots, embedding, tokenScale, modules, unembed, bias, ids), { count: modules.length, epsilon }) as tf.Tensor2D;
}

/** The inputs of the sequential drafting kernels (`MtpSequentialChain`, `MtpSequentialTree`): module j's tensors named `state{j}`, `token{j}`, `w1_{j}`, … */
function sequentialInputs(states: tf.Tensor2D, roots: tf.Tensor1D, embedding: tf.Tensor2D, tokenScale: tf.Tensor2D, modules: readonly FusedSequentialWeights[], unembed: tf.Tensor2D, bias: tf.Tensor1D | null, ids: tf.Tensor1D | null): Record<string, tf.Tensor | undefined> {
  const inputs: Record<string, tf.Tensor | undefined> = { states, roots, embedding, tokenScale, unembed, unembedBias: bias ?? undefined, ids: ids ?? undefined };
  modules.forEach((w, i) => Object.assign(inputs, { [`state${i + 1}`]: w.state, [`token${i + 1}`]: w.token, [`w1_${i + 1}`]: w.w1, [`b1_${i + 1}`]: w.b1, [`w2_${i + 1}`]: w.w2, [`b2_${i + 1}`]: w.b2 }));
  return inputs;
}

/**
 * Dynamic tree drafting with sequential modules, one kernel (see `SequentialMtpHead.headTree`):
 * modules 1…depth (`modules`, at least `depth` of them) from `states` `[m, D]` fed `roots`, k
 * children per expanded node over the draft vocabulary (`unembed` `[D, Vd]` + `bias`, columns
 * mapped through `ids`), the k best frontier nodes expanded per level. `[m, G]` each, G = k +
 * (depth − 1)·k²: int32 token ids (−1 throughout a row with a non-finite logit), int32 parents
 * (−1: the root), float32 cumulative log-probabilities.
 */
export function fusedSequentialTree(states: tf.Tensor2D, roots: tf.Tensor1D, embedding: tf.Tensor2D, tokenScale: tf.Tensor2D, modules: readonly FusedSequentialWeights[], unembed: tf.Tensor2D, bias: tf.Tensor1D | null, ids: tf.Tensor1D | null, depth: number, k: number, epsilon: number): { ids: tf.Tensor2D; parents: tf.Tensor2D; scores: tf.Tensor2D } {
  const inputs = sequentialInputs(states, roots, embedding, tokenScale, modules.slice(0, depth), unembed, bias, ids);
  const [treeIds, parents, scores] = run(FUSED_KERNELS.sequentialTree, inputs, { depth, k, epsilon }) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  return { ids: treeIds, parents, scores };
}

/**
 * Argmax per row of `logits` `[N, V]`, −1 where the row is not finite: int32 `[N]`, one kernel.
 * `ids` `[V]` int32 maps each column to its token id (a draft vocabulary); with `group` g, a run
 * of g rows with any non-finite row is −1 throughout.
 */
export function fusedCheckedArgmax(logits: tf.Tensor2D, ids?: tf.Tensor1D, group = 1): tf.Tensor1D {
  return run(FUSED_KERNELS.argmax, { logits, ids }, { group }) as tf.Tensor1D;
}

/** `norm(x)` over the last axis of `x` `[..., D]` (see `ops.norm`), one kernel. */
export function fusedNorm<T extends tf.Tensor>(x: T, w: Norm, kind: NormKind, epsilon: number): T {
  return run(FUSED_KERNELS.norm, { x, weight: w.weight, bias: w.bias }, { kind, epsilon }) as T;
}

/** The residual add and the next norm in one kernel: `[x + residual, norm(x + residual)]`. */
export function fusedAddNorm<T extends tf.Tensor>(x: T, residual: T, w: Norm, kind: NormKind, epsilon: number): [T, T] {
  return run(FUSED_KERNELS.addNorm, { x, residual, weight: w.weight, bias: w.bias }, { kind, epsilon }) as [T, T];
}

/**
 * The MLP activation (see `ops.mlp`): `silu(a) ⊙ b` for swiglu, `gelu(a)`, `relu(a)`; one kernel.
 * Swiglu without `b`: each row of `a` is `[gate | up]`, the result half as wide.
 */
export function fusedActivation<T extends tf.Tensor>(kind: MlpKind, a: T, b?: T): T {
  return run(FUSED_KERNELS.activation, { a, b }, { kind }) as T;
}

/**
 * Attention of the new rows' projections `q` `[..., T, H·hs]`, `k`, `v` `[..., T, Hkv·hs]` (or,
 * with `k` and `v` undefined, `q` holding `[q | k | v]` per row) over the static cache buffers
 * `keys`, `values` `[Hkv·hs, capacity]`, written in place: the new rows' rotated keys and values
 * land at positions `plan.cached + t`. Returns `[..., T, H·hs]`, one kernel.
 */
export function fusedCachedAttention<T extends tf.Tensor>(q: T, k: T | undefined, v: T | undefined, keys: tf.Tensor2D, values: tf.Tensor2D, plan: AttentionPlan): T {
  return run(FUSED_KERNELS.attention, { q, k, v, keys, values }, { plan }) as T;
}
