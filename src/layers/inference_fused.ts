/**
 * The fused inference pass of a `MultiTokenHead`: all requested offsets at all rows in a handful
 * of kernels. Per list of offsets asked for (within one `prepare`), the offset heads' kernels are
 * stacked: a run of offsets of one kind becomes one matMul with their first matrices side by side
 * (and, for `lowRank`/`mlp`, one matMul with their second matrices on a block diagonal). The
 * states of every requested offset at every row come out as one `[R, n, D]` tensor, which the
 * shared unembedding projects (see draft_projection.ts: pre-transposed `[D, V]` — `matMul(h, W,
 * false, true)` takes a slow path on wasm, `matMul(h, Wᵀ)` the XNNPACK one — and, for draft
 * offsets, the draft vocabulary's `[D, Vd]`), and `argmax` runs on the device.
 *
 * The ops are those of `LightweightOffsetHead.call` and `SharedUnembedding.call` (matMul, then
 * bias add, then activation, then the residual add, in the same order), so the values equal the
 * layer path's up to the summation order of the unembedding matMul. Prepared tensors are copies:
 * they are made from the weights at each `prepare` and freed at the last `release`, so a decode
 * never sees weights older than its own start.
 *
 * Reference: Gloeckle et al. (2024) §2; Cai et al., "Medusa" (2024) §2.1.1 (heads as small
 * transforms before one shared vocabulary projection).
 */
import * as tf from '@tensorflow/tfjs-core';
import { topk2d } from '../internal/topk.js';
import { fusedCheckedArgmax, fusedDraftArgmax, fusedDraftTopK, type FusedDraftGroup } from '../kernels/ops.js';
import { HEAD_ACTIVATIONS } from '../kernels/math.js';
import { fusedKernelsAvailable } from '../kernels/registry.js';
import type { OffsetHeadKind } from './args.js';
import type { LightweightOffsetHead } from './offset_head.js';
import type { UnembeddingProjection } from './draft_projection.js';

/**
 * A run of consecutive requested offsets of one kind and activation, computed by one stacked
 * matMul (or two): first matrices side by side `[D, count·W]` (W = D, r or H; null for identity)
 * with their biases, second matrices on a block diagonal `[count·W, count·D]` (lowRank, mlp) with
 * theirs (mlp), as the fused draft kernel takes them.
 */
interface Group extends Omit<FusedDraftGroup, 'activation'> {
  kind: OffsetHeadKind;
  /** The head whose activation the run applies (every head of the run has the same). */
  head: LightweightOffsetHead;
}

/** Stacked tensors for one list of offsets. */
type Plan = Group[];

/** `mats` (each `[a, b]`) on the diagonal of a `[n·a, n·b]` matrix of zeros. */
function blockDiagonal(mats: tf.Tensor2D[]): tf.Tensor2D {
  if (mats.length === 1) return tf.clone(mats[0]!);
  const [a, b] = mats[0]!.shape;
  const zero = tf.zeros([a, b]);
  const rows = mats.map((m, i) => tf.concat(mats.map((_, j) => (i === j ? m : zero)), 1)); // n × [a, n·b]
  return tf.concat(rows, 0) as tf.Tensor2D; // [n·a, n·b]
}

/** `mats` side by side (a fresh tensor, also for one). */
function sideBySide<T extends tf.Tensor>(mats: T[], axis: number): T {
  return (mats.length === 1 ? tf.clone(mats[0]!) : tf.concat(mats, axis)) as T;
}

/**
 * Copies of each offset's second matrix, for the fused draft kernel (one product per offset, not
 * the block diagonal's n-fold work), where the running backend has the fused kernels; else null.
 */
function secondParts(mats: tf.Tensor2D[]): tf.Tensor2D[] | null {
  return mats.length > 1 && fusedKernelsAvailable() ? mats.map((m) => tf.clone(m)) : null;
}

/** Stacks the weights of `heads` (one kind, one activation) for one group. Call inside `tf.tidy`; keep the result. */
function stack(heads: LightweightOffsetHead[]): Group {
  const head = heads[0]!;
  const kind = head.kind;
  const w = (name: string) => heads.map((h) => h.weightValue(name));
  const g: Group = { kind, count: heads.length, head, first: null, firstBias: null, second: null, secondBias: null, secondParts: null };
  if (kind === 'linear' || kind === 'residual') {
    g.first = sideBySide(w('kernel') as tf.Tensor2D[], 1); // [D, n·D]
    g.firstBias = sideBySide(w('bias') as tf.Tensor1D[], 0); // [n·D]
  } else if (kind === 'lowRank') {
    g.first = sideBySide(w('down') as tf.Tensor2D[], 1); // [D, n·r]
    g.second = blockDiagonal(w('up') as tf.Tensor2D[]); // [n·r, n·D]
    g.secondParts = secondParts(w('up') as tf.Tensor2D[]);
  } else if (kind === 'mlp') {
    g.first = sideBySide(w('w1') as tf.Tensor2D[], 1); // [D, n·H]
    g.firstBias = sideBySide(w('b1') as tf.Tensor1D[], 0); // [n·H]
    g.second = blockDiagonal(w('w2') as tf.Tensor2D[]); // [n·H, n·D]
    g.secondParts = secondParts(w('w2') as tf.Tensor2D[]);
    g.secondBias = sideBySide(w('b2') as tf.Tensor1D[], 0); // [n·D]
  }
  return g;
}

/** The tensors a group owns. */
function tensorsOf(g: Group): tf.Tensor[] {
  return [g.first, g.firstBias, g.second, g.secondBias, ...(g.secondParts ?? [])].filter((t): t is NonNullable<typeof t> => t !== null);
}

/** `x·W (+ b)` as matMul then add, the order the offset head's `call` uses. */
function affine(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D | null): tf.Tensor2D {
  const y = tf.matMul(x, w);
  return (b === null ? y : tf.add(y, b)) as tf.Tensor2D;
}

/** One group's states `[R, count, D]` from `x` `[R, D]`. */
function runGroup(g: Group, x: tf.Tensor2D): tf.Tensor3D {
  const [R, D] = x.shape;
  const x3 = tf.reshape(x, [R, 1, D]); // [R, 1, D]
  if (g.kind === 'identity') return (g.count === 1 ? x3 : tf.tile(x3, [1, g.count, 1])) as tf.Tensor3D;
  const z = affine(x, g.first!, g.firstBias); // [R, count·W]
  const split = (y: tf.Tensor) => tf.reshape(y, [R, g.count, D]); // [R, count, D]
  if (g.kind === 'linear') return split(z) as tf.Tensor3D;
  if (g.kind === 'residual') return tf.add(x3, split(g.head.activate(z))) as tf.Tensor3D;
  const y = affine(g.head.activate(z) as tf.Tensor2D, g.second!, g.secondBias); // [R, count·D]
  return tf.add(x3, split(y)) as tf.Tensor3D;
}

/**
 * Argmax per row of `logits` `[N, V]` → int32 `[N]`, with −1 where the row holds NaN or
 * ±Infinity (argmax alone skips NaN on some backends and picks it on others; the row's sum is
 * non-finite exactly when one of its logits is, or when finite logits overflow the sum).
 */
export function checkedArgmax(logits: tf.Tensor2D): tf.Tensor1D {
  if (fusedKernelsAvailable()) return fusedCheckedArgmax(logits); // cpu, wasm: one kernel instead of eight
  const ids = tf.argMax(logits, 1); // [N] int32
  return tf.where(tf.isFinite(tf.sum(logits, 1)), ids, tf.scalar(-1, 'int32')) as tf.Tensor1D;
}

/**
 * The `k` most likely tokens of each row of `logits` `[N, V]` and their log-probabilities, both
 * `[N, k]`: rank 0 is {@link checkedArgmax}'s id (the greedy decoders' tie rule), ranks 1…k−1 come
 * from `topk` (a tie with the argmax may repeat an id there). Rows holding NaN or ±Infinity get
 * −1 in every id.
 */
export function topKOfLogits(logits: tf.Tensor2D, k: number): { ids: tf.Tensor2D; logProbs: tf.Tensor2D } {
  const { values, indices } = topk2d(logits, k); // [N, k] each
  const best = tf.expandDims(checkedArgmax(logits), 1); // [N, 1]
  const rest = k > 1 ? tf.concat([best, tf.slice(indices, [0, 1], [-1, k - 1])], 1) : best; // [N, k]
  const finite = tf.expandDims(tf.isFinite(tf.sum(logits, 1)), 1); // [N, 1]
  const ids = tf.where(finite, rest, tf.fill(rest.shape, -1, 'int32')) as tf.Tensor2D;
  const logProbs = tf.sub(values, tf.logSumExp(logits, 1, true)) as tf.Tensor2D; // [N, k]
  return { ids, logProbs };
}

/** The prepared (counted) fused pass over a `MultiTokenHead`'s offset heads and its unembedding projection. @internal */
export class FusedHeads {
  private count = 0;
  private readonly plans = new Map<string, Plan>();

  constructor(
    private readonly heads: readonly LightweightOffsetHead[],
    private readonly projection: UnembeddingProjection,
  ) {}

  /** Whether a `prepare` is in effect. */
  get prepared(): boolean {
    return this.count > 0;
  }

  /**
   * Makes the projection's tensors (pre-transposed unembedding, draft rows) from the current
   * weights; the offset stacks are rebuilt on first use. Counted. A prepare while another is in
   * effect (two decodes sharing one head) remakes the tensors too, so a decode never runs on
   * weights older than its own start.
   */
  prepare(): void {
    this.free();
    this.projection.make();
    this.count++;
  }

  /** The last `release` frees every prepared tensor (an extra `release` is a no-op). */
  release(): void {
    if (this.count === 0) return;
    if (--this.count === 0) this.free();
  }

  private free(): void {
    for (const plan of this.plans.values()) {
      for (const g of plan) tf.dispose(tensorsOf(g));
    }
    this.plans.clear();
    this.projection.free();
  }

  /** The stacked weights for `offsets`, made on first use within a prepare. */
  private plan(offsets: readonly number[]): Plan {
    const key = offsets.join(',');
    let plan = this.plans.get(key);
    if (plan === undefined) {
      const runs: LightweightOffsetHead[][] = [];
      for (const j of offsets) {
        const h = this.heads[j]!;
        const last = runs[runs.length - 1];
        if (last !== undefined && last[0]!.kind === h.kind && last[0]!.activation === h.activation) last.push(h);
        else runs.push([h]);
      }
      const made: Plan = [];
      tf.tidy(() => {
        for (const r of runs) made.push(stack(r));
        for (const g of made) tensorsOf(g).forEach((t) => tf.keep(t));
      });
      plan = made;
      this.plans.set(key, made);
    }
    return plan;
  }

  /**
   * The argmax tokens of `offsets` at the rows of `x` `[R, D]`, int32 `[R·n]` (row r's offsets at
   * r·n …), through the one-kernel pass (`fusedDraftArgmax`) — over the draft vocabulary
   * (`'draft'`, offsets ≥ 1) or the whole one (`'full'`, offset 0) — or null where it does not
   * apply: no fused kernels on this backend, the offsets not one group, an activation the kernel
   * lacks, or nothing prepared. Call inside `tf.tidy`.
   */
  argmax(x: tf.Tensor2D, offsets: readonly number[], vocabulary: 'draft' | 'full'): tf.Tensor1D | null {
    const pass = this.onePass(offsets, vocabulary);
    return pass === null ? null : fusedDraftArgmax(x, pass.group, pass.weights.w, pass.weights.bias, vocabulary === 'draft' ? this.projection.idTable() : null);
  }

  /**
   * The `k` most likely draft tokens of `offsets` (n of them) at every row of `x` `[R, D]` with
   * their log-probabilities over the draft vocabulary, `[R·n·k]` each (see `fusedDraftTopK`), in
   * one kernel; null where that kernel does not apply (as {@link argmax}).
   */
  topK(x: tf.Tensor2D, offsets: readonly number[], k: number): { ids: tf.Tensor1D; logProbs: tf.Tensor1D } | null {
    const pass = this.onePass(offsets, 'draft');
    return pass === null ? null : fusedDraftTopK(x, pass.group, pass.weights.w, pass.weights.bias, this.projection.idTable(), k);
  }

  /** The one group of `offsets` and the prepared projection for a one-kernel pass, or null where none applies (see {@link argmax}). */
  private onePass(offsets: readonly number[], vocabulary: 'draft' | 'full'): { group: Group & { activation: string }; weights: { w: tf.Tensor2D; bias: tf.Tensor1D | null } } | null {
    const weights = vocabulary === 'draft' ? this.projection.draftWeights() : this.projection.fullWeights();
    if (weights === null || !fusedKernelsAvailable()) return null;
    const plan = this.plan(offsets);
    if (plan.length !== 1) return null;
    const g = plan[0]!;
    const activation = String(g.head.activation);
    if (g.kind !== 'identity' && g.kind !== 'linear' && !HEAD_ACTIVATIONS.has(activation)) return null;
    return { group: { ...g, activation }, weights };
  }

  /** The states `[R, n, D]` of `offsets` (n of them) at the rows of `x` `[R, D]`: column i is offset `offsets[i]`. Prepared only; call inside `tf.tidy`. */
  offsetStates(x: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    const parts = this.plan(offsets).map((g) => runGroup(g, x)); // [R, count, D] each
    return (parts.length === 1 ? parts[0]! : tf.concat(parts, 1)) as tf.Tensor3D; // [R, n, D]
  }
}
