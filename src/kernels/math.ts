/**
 * The arithmetic of the fused decode kernels, as plain loops over `Float32Array`s: what the cpu
 * and wasm kernels run over their backends' memory (the cpu backend's value arrays, the wasm
 * heap). Each function is the same math as the composite ops in `../ops.ts`, accumulated in
 * float64 and stored as float32.
 *
 * Reference: llama2.c's run.c `rmsnorm`, the attention loop of `forward()` (scores, softmax,
 * weighted sum per head, one pass over the cache) and its SwiGLU loop; Ainslie et al., "GQA"
 * (2023) for query heads sharing a key/value head; Su et al., "RoFormer" (2021) §3.4.
 */
import type { MlpKind, NormKind, RopeLayout } from '../models/config.js';
import type { SimdLoops } from './simd.js';

/**
 * `out[r] = norm(x[r]) ⊙ weight (+ bias)` for every row of `x` `[rows, D]` (flat), where `x` is
 * `a + b` when `b` is given (the residual add, whose result is also written to `sum`).
 */
export function normRows(
  a: Float32Array,
  b: Float32Array | null,
  weight: Float32Array,
  bias: Float32Array | null,
  kind: NormKind,
  epsilon: number,
  out: Float32Array,
  sum: Float32Array | null,
): void {
  const D = weight.length;
  const rows = a.length / D;
  for (let r = 0; r < rows; r++) {
    const base = r * D;
    let mean = 0;
    if (b !== null) {
      for (let d = 0; d < D; d++) sum![base + d] = a[base + d]! + b[base + d]!; // rounded to float32 as the composite add is
    }
    const x = b === null ? a : sum!;
    if (kind === 'layerNorm') {
      for (let d = 0; d < D; d++) mean += x[base + d]!;
      mean /= D;
    }
    let square = 0;
    for (let d = 0; d < D; d++) {
      const c = x[base + d]! - mean;
      square += c * c;
    }
    const scale = 1 / Math.sqrt(square / D + epsilon);
    for (let d = 0; d < D; d++) {
      const y = (x[base + d]! - mean) * scale * weight[d]!;
      out[base + d] = bias === null ? y : y + bias[d]!;
    }
  }
}

/** Largest finite float32: a float32 sum of a row's logits beyond it is ±Infinity. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Argmax per row of `logits` `[N, V]` into `out` (int32 `[N]`), −1 where the row holds NaN or
 * ±Infinity (or its sum overflows float32, as the composite path's finiteness test of the row
 * sum does); the first index among equals. `ids` maps each column to its token id. With `group`
 * g, rows come in runs of g (one position's offsets) and a run with any −1 row is −1 throughout.
 * `fast(r)`, when given, may answer row r's column itself (or decline with −1: the exact loop
 * below then answers).
 */
export function checkedArgmaxRows(logits: Float32Array, V: number, out: Int32Array, ids: Int32Array | null = null, group = 1, fast?: (r: number) => number): void {
  for (let r = 0; r < out.length; r++) {
    const quick = fast === undefined ? -1 : fast(r);
    const best = quick >= 0 ? quick : argmaxRow(logits, r * V, V);
    out[r] = best < 0 ? -1 : ids === null ? best : ids[best]!;
  }
  if (group > 1) {
    for (let r = 0; r < out.length; r += group) {
      let broken = false;
      for (let i = r; i < r + group; i++) if (out[i] === -1) broken = true;
      if (broken) out.fill(-1, r, r + group);
    }
  }
}

/** The column of the largest of `logits[base … base + V)` (the first among equals), or −1 when the row's sum is not a finite float32. */
function argmaxRow(logits: Float32Array, base: number, V: number): number {
  let best = 0;
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < V; i++) {
    const x = logits[base + i]!;
    sum += x;
    if (x > max) {
      max = x;
      best = i;
    }
  }
  return Number.isFinite(sum) && Math.abs(sum) <= FLOAT32_MAX ? best : -1; // NaN or ±Infinity anywhere makes the sum so
}

/** The largest magnitude a row of V logits may hold for its float32 sum to be certainly finite (the SIMD argmax's bound). */
export const finiteRowBound = (V: number): number => FLOAT32_MAX / V;

/**
 * Greedy acceptance over a draft tree from the verifier's argmax `best` at every row (row 0 the
 * root, row i + 1 node i; −1 a broken row): node i is accepted when its token equals `best` at
 * its parent's row and its parent is accepted (or is the root). Returns the tip's row: the
 * deepest accepted node's (the earliest among equally deep ones) + 1, or 0 when none is.
 */
export function greedyTipRow(best: Int32Array, parentRow: readonly number[], tokens: readonly number[], depth: readonly number[]): number {
  const N = tokens.length;
  const accepted = new Uint8Array(N + 1);
  accepted[0] = 1; // the root
  let tip = 0;
  let rank = 0;
  for (let i = 0; i < N; i++) {
    const p = parentRow[i]!; // parents come before their children
    if (accepted[p] === 1 && best[p] === tokens[i]) {
      accepted[i + 1] = 1;
      const r = depth[i]! * (N + 1) - i; // deeper first, then earlier (all > 0)
      if (r > rank) [rank, tip] = [r, i + 1];
    }
  }
  return tip;
}

/** 2^i for i in [−159, 0], by i + 159. */
const POW2 = Float64Array.from({ length: 160 }, (_, i) => Math.pow(2, i - 159));

/**
 * `exp(x)` for x ≤ 0 (a softmax's shifted scores), twice as fast as `Math.exp` and within 1e-8 of
 * it (relative): x·log2 e = n + f with n an integer and |f| ≤ ½, 2^f by its Taylor series to the
 * 7th power (remainder below 6e-9), 2^n from a table; 0 below −103 (under float32's smallest).
 */
export function expNonPositive(x: number): number {
  if (x < -103) return 0;
  const y = x * Math.LOG2E;
  const n = Math.round(y);
  const z = (y - n) * Math.LN2;
  const p = 1 + z * (1 + z * (1 / 2 + z * (1 / 6 + z * (1 / 24 + z * (1 / 120 + z * (1 / 720 + z * (1 / 5040)))))));
  return p * POW2[n + 159]!;
}

/** `erf(x)` to float32 precision: Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), as tfjs's own Erf kernels. */
function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const v = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * v);
  const poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
  return sign * (1 - poly * Math.exp(-v * v));
}

/**
 * The MLP's activation between its two projections, elementwise: swiglu `silu(a) ⊙ b`, gelu
 * `a·Φ(a)` (exact, through erf), relu `max(a, 0)`. For swiglu without `b`, each row of `a` holds
 * both operands side by side, `[gate | up]` (2F floats), and `out` has F per row.
 */
export function activate(kind: MlpKind, a: Float32Array, b: Float32Array | null, out: Float32Array, F: number): void {
  const n = out.length;
  if (kind === 'swiglu') {
    const paired = b === null;
    for (let i = 0; i < n; i++) {
      const at = paired ? i + Math.floor(i / F) * F : i; // row r's gate sits at 2F·r + (i mod F), its up F later
      const x = a[at]!;
      const e = expNonPositive(-Math.abs(x)); // silu(x) = x·σ(x), σ from exp(−|x|) ≤ 1 either side
      out[i] = (x >= 0 ? x / (1 + e) : (x * e) / (1 + e)) * (paired ? a[at + F]! : b[i]!);
    }
  } else if (kind === 'gelu') {
    for (let i = 0; i < n; i++) {
      const x = a[i]!;
      out[i] = 0.5 * x * (1 + erf(x * Math.SQRT1_2));
    }
  } else {
    for (let i = 0; i < n; i++) out[i] = Math.max(a[i]!, 0);
  }
}

/**
 * A sequential draft module's inner step, in place where noted: `u = fromState · rms⁻¹(previous)
 * + fromToken · tokenScale[token]` per row (`fromState`, `fromToken` `[m, D]` the two halves of
 * the folded projection, `previous` `[m, D]`, `tokenScale` `[V]`), written to `u`.
 */
export function moduleInput(fromState: Float32Array, previous: Float32Array, fromToken: Float32Array, tokenScale: Float32Array, tokens: Int32Array, epsilon: number, u: Float32Array): void {
  const m = tokens.length;
  const D = u.length / m;
  for (let r = 0; r < m; r++) {
    let square = 0;
    for (let d = 0; d < D; d++) square += previous[r * D + d]! * previous[r * D + d]!;
    const scale = 1 / Math.sqrt(square / D + epsilon);
    const t = tokenScale[tokens[r]!]!;
    for (let d = 0; d < D; d++) u[r * D + d] = fromState[r * D + d]! * scale + fromToken[r * D + d]! * t;
  }
}

/** `out = x·σ(x)` elementwise (silu / swish), through the table exp. */
export function silu(x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    const v = x[i]!;
    const e = expNonPositive(-Math.abs(v));
    out[i] = v >= 0 ? v / (1 + e) : (v * e) / (1 + e);
  }
}

/** The offset heads' activations (tfjs-layers names) {@link applyActivation} computes; the fused draft kernel takes no other. */
export const HEAD_ACTIVATIONS: ReadonlySet<string> = new Set(['linear', 'relu', 'swish', 'gelu', 'tanh', 'sigmoid']);

/** `out = f(x)` elementwise for one of {@link HEAD_ACTIVATIONS}, as tfjs-layers defines it (gelu exact, through erf). */
export function applyActivation(name: string, x: Float32Array, out: Float32Array): void {
  const n = out.length;
  switch (name) {
    case 'swish':
      return silu(x, out);
    case 'relu':
      for (let i = 0; i < n; i++) out[i] = Math.max(x[i]!, 0);
      return;
    case 'gelu':
      for (let i = 0; i < n; i++) out[i] = 0.5 * x[i]! * (1 + erf(x[i]! * Math.SQRT1_2));
      return;
    case 'tanh':
      for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!);
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) {
        const e = expNonPositive(-Math.abs(x[i]!));
        out[i] = x[i]! >= 0 ? 1 / (1 + e) : e / (1 + e);
      }
      return;
    case 'linear':
      out.set(x.subarray(0, n));
      return;
    default:
      throw new Error(`applyActivation: the activation must be one of ${[...HEAD_ACTIVATIONS].join(', ')}, but it is '${name}'.`);
  }
}

/** Rotary cosines and sines of the new rows, `[T, hs/2]` each (pair i of row t turns by `positions[t]·freq_i`). */
export interface RotaryAngles {
  cos: Float32Array;
  sin: Float32Array;
  layout: RopeLayout;
}

/**
 * Everything the cached-attention kernel needs besides tensors: the shapes, where the new rows
 * go, which new rows each new row sees, and the rotary angles.
 */
export interface AttentionPlan {
  /** Query heads H. */
  numHeads: number;
  /** Key/value heads Hkv (H / Hkv query heads share one). */
  numKeyValueHeads: number;
  /** Width of one head hs. */
  headDim: number;
  /** Rows of the cache in use before this call (the new rows are written at `cached … cached + T − 1`). */
  cached: number;
  /** New rows T. */
  rows: number;
  /** For each new row, the new rows it attends to (a tree node: its ancestors and itself, increasing); null: causal (row t sees new rows 0…t). */
  sees: readonly (readonly number[])[] | null;
  /** Rotary angles of the new rows, or null (learned positions); with `batch`, one row: the position all sequences are at. */
  rotary: RotaryAngles | null;
  /**
   * The new rows are independent sequences of equal length (batched generation): row t is the
   * position `cached` of sequence t, whose keys and values are lanes `t·Hkv·hs …` of the buffers
   * (`[T·Hkv·hs, capacity]`), and it sees its own sequence only. `sees` must be null. Default false.
   */
  batch?: boolean;
}

/**
 * The SIMD loops (`simd.ts`) and where things are in the memory they run on: `keys` and `values`
 * as byte offsets, and a scratch block of {@link attentionScratch} floats (`scratch` bytes, `heap` its view).
 */
export interface SimdAttention {
  loops: SimdLoops;
  keys: number;
  values: number;
  scratch: number;
  heap: Float32Array;
}

/** Rows of a matrix inside a flat array: row t starts at `offset + t·stride`. */
export interface Strided {
  data: Float32Array;
  offset: number;
  stride: number;
}

/** Rotates one head's vector `x[at … at + hs)` into `out[to … to + hs)` by row t's angles. */
function rotate(x: Float32Array, at: number, out: Float64Array, hs: number, rotary: RotaryAngles, t: number, to = 0): void {
  const half = hs / 2;
  const { cos, sin } = rotary;
  const interleaved = rotary.layout === 'interleaved';
  for (let i = 0; i < half; i++) {
    const d0 = interleaved ? 2 * i : i;
    const d1 = interleaved ? 2 * i + 1 : i + half;
    const c = cos[t * half + i]!;
    const s = sin[t * half + i]!;
    const x0 = x[at + d0]!;
    const x1 = x[at + d1]!;
    out[to + d0] = x0 * c - x1 * s;
    out[to + d1] = x1 * c + x0 * s;
  }
}

/**
 * Attention of T new rows over a static KV cache, in place. `keys` and `values` are laid out
 * `[Hkv·hs, capacity]`: one lane per head dimension, positions along it, so the products over
 * positions are contiguous loops. Writes the new rows' rotated keys and their values at
 * positions `plan.cached + t`, then for each new row and query head computes
 * `softmax(q·Kᵀ/√hs)·V` over the cached positions and the new rows it sees, into `out`
 * `[T, H·hs]`. `q` (H·hs floats a row), `k` and `v` (Hkv·hs) are the projections of the new
 * rows, q and k not yet rotated: three matrices, or column ranges of one (a fused q|k|v matmul).
 */
export function cachedAttention(
  q: Strided,
  k: Strided,
  v: Strided,
  keys: Float32Array,
  values: Float32Array,
  plan: AttentionPlan,
  out: Float32Array,
  simd: SimdAttention | null = null,
): void {
  const { numHeads: H, numKeyValueHeads: Hkv, headDim: hs, cached: L, rows: T, sees, rotary } = plan;
  if (plan.batch === true) {
    // each row is one new position of its own sequence: the single-sequence attention over that sequence's lanes
    const region = keys.length / T; // floats of one sequence's buffer, Hkv·hs lanes × capacity
    const one: AttentionPlan = { ...plan, rows: 1, batch: false };
    const row = (x: Strided, t: number): Strided => ({ data: x.data, offset: x.offset + t * x.stride, stride: x.stride });
    for (let t = 0; t < T; t++) {
      const lanes = simd === null ? null : { ...simd, keys: simd.keys + 4 * t * region, values: simd.values + 4 * t * region };
      cachedAttention(row(q, t), row(k, t), row(v, t), keys.subarray(t * region, (t + 1) * region), values.subarray(t * region, (t + 1) * region), one, out.subarray(t * H * hs, (t + 1) * H * hs), lanes);
    }
    return;
  }
  const width = Hkv * hs; // lanes
  const cap = keys.length / width; // positions per lane
  const g = H / Hkv;
  const vec = new Float64Array(hs);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < Hkv; h++) {
      const kAt = k.offset + t * k.stride + h * hs;
      const vAt = v.offset + t * v.stride + h * hs;
      if (rotary === null) for (let d = 0; d < hs; d++) vec[d] = k.data[kAt + d]!;
      else rotate(k.data, kAt, vec, hs, rotary, t);
      for (let d = 0; d < hs; d++) {
        keys[(h * hs + d) * cap + L + t] = vec[d]!;
        values[(h * hs + d) * cap + L + t] = v.data[vAt + d]!;
      }
    }
  }
  if (simd !== null) {
    simdAttention(simd, q, plan, cap, out);
    return;
  }
  const scale = 1 / Math.sqrt(hs);
  // the g query heads of one key/value head share its lanes: scores of all g at once, per lane
  const query = new Float64Array(g * hs); // [g, hs], rotated and scaled
  const scores = new Float64Array(g * (L + T)); // [g, n]
  const rowOf = new Int32Array(T); // the position of each new row a query sees
  for (let t = 0; t < T; t++) {
    const visible = sees?.[t] ?? null; // null: the new rows 0 … t
    const extra = visible === null ? t + 1 : visible.length;
    for (let j = 0; j < extra; j++) rowOf[j] = L + (visible === null ? j : visible[j]!);
    const n = L + extra;
    for (let kv = 0; kv < Hkv; kv++) {
      const lane0 = kv * hs * cap; // this key/value head's first lane
      for (let i = 0; i < g; i++) {
        const qAt = q.offset + t * q.stride + (kv * g + i) * hs;
        if (rotary === null) for (let d = 0; d < hs; d++) query[i * hs + d] = q.data[qAt + d]! * scale;
        else {
          rotate(q.data, qAt, query, hs, rotary, t, i * hs);
          for (let d = 0; d < hs; d++) query[i * hs + d] = query[i * hs + d]! * scale;
        }
      }
      scores.fill(0);
      for (let i = 0; i < g; i++) {
        const s0 = i * n;
        let d = 0;
        for (; d + 4 <= hs; d += 4) {
          const q0 = query[i * hs + d]!;
          const q1 = query[i * hs + d + 1]!;
          const q2 = query[i * hs + d + 2]!;
          const q3 = query[i * hs + d + 3]!;
          const l0 = lane0 + d * cap;
          const l1 = l0 + cap;
          const l2 = l1 + cap;
          const l3 = l2 + cap;
          for (let j = 0; j < L; j++) scores[s0 + j] = scores[s0 + j]! + q0 * keys[l0 + j]! + q1 * keys[l1 + j]! + q2 * keys[l2 + j]! + q3 * keys[l3 + j]!;
        }
        for (; d < hs; d++) {
          const qd = query[i * hs + d]!;
          const lane = lane0 + d * cap;
          for (let j = 0; j < L; j++) scores[s0 + j] = scores[s0 + j]! + qd * keys[lane + j]!;
        }
        for (let j = 0; j < extra; j++) {
          let sum = 0;
          for (let e = 0; e < hs; e++) sum += query[i * hs + e]! * keys[lane0 + e * cap + rowOf[j]!]!;
          scores[s0 + L + j] = sum;
        }
        let max = -Infinity;
        for (let j = 0; j < n; j++) if (scores[s0 + j]! > max) max = scores[s0 + j]!;
        let total = 0;
        for (let j = 0; j < n; j++) {
          const e = expNonPositive(scores[s0 + j]! - max);
          scores[s0 + j] = e;
          total += e;
        }
        const o = (t * H + kv * g + i) * hs;
        let e = 0;
        for (; e + 4 <= hs; e += 4) {
          const l0 = lane0 + e * cap;
          const l1 = l0 + cap;
          const l2 = l1 + cap;
          const l3 = l2 + cap;
          let a0 = 0;
          let a1 = 0;
          let a2 = 0;
          let a3 = 0;
          for (let j = 0; j < L; j++) {
            const p = scores[s0 + j]!;
            a0 += p * values[l0 + j]!;
            a1 += p * values[l1 + j]!;
            a2 += p * values[l2 + j]!;
            a3 += p * values[l3 + j]!;
          }
          for (let j = 0; j < extra; j++) {
            const p = scores[s0 + L + j]!;
            const r = rowOf[j]!;
            a0 += p * values[l0 + r]!;
            a1 += p * values[l1 + r]!;
            a2 += p * values[l2 + r]!;
            a3 += p * values[l3 + r]!;
          }
          out[o + e] = a0 / total;
          out[o + e + 1] = a1 / total;
          out[o + e + 2] = a2 / total;
          out[o + e + 3] = a3 / total;
        }
        for (; e < hs; e++) {
          const lane = lane0 + e * cap;
          let acc = 0;
          for (let j = 0; j < L; j++) acc += scores[s0 + j]! * values[lane + j]!;
          for (let j = 0; j < extra; j++) acc += scores[s0 + L + j]! * values[lane + rowOf[j]!]!;
          out[o + e] = acc / total;
        }
      }
    }
  }
}

/** Floats of scratch the SIMD attention of `plan` needs (see {@link SimdAttention}). */
export function attentionScratch(plan: AttentionPlan): number {
  return (plan.numHeads + 1) * plan.headDim + 2 * plan.rows + plan.cached + 4;
}

/**
 * The attention of every new row and query head through the SIMD module's `attend`, one call
 * per head: the row's rotated, scaled queries go to the scratch block once
 * (`[queries H·hs | out hs | mask T | scores]`), and a tree row's mask (0 for the new rows it
 * sees, −Infinity for the others before it) once per row. The new rows' keys and values are
 * already in the cache, so the positions a row sees are the first `L + last + 1` of each lane.
 */
function simdAttention(simd: SimdAttention, q: Strided, plan: AttentionPlan, cap: number, out: Float32Array): void {
  const { numHeads: H, numKeyValueHeads: Hkv, headDim: hs, cached: L, rows: T, sees, rotary } = plan;
  const { loops, heap } = simd;
  const g = H / Hkv;
  const scale = 1 / Math.sqrt(hs);
  const base = simd.scratch >> 2;
  const outAt = base + H * hs;
  const maskAt = outAt + hs;
  const sAt = maskAt + T;
  const rotated = new Float64Array(hs);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const qAt = q.offset + t * q.stride + h * hs;
      if (rotary === null) for (let d = 0; d < hs; d++) heap[base + h * hs + d] = q.data[qAt + d]! * scale;
      else {
        rotate(q.data, qAt, rotated, hs, rotary, t);
        for (let d = 0; d < hs; d++) heap[base + h * hs + d] = rotated[d]! * scale;
      }
    }
    const visible = sees?.[t] ?? null; // null: the new rows 0 … t
    const last = visible === null ? t : visible[visible.length - 1]!;
    if (visible !== null) {
      heap.fill(-Infinity, maskAt, maskAt + last + 1);
      for (const j of visible) heap[maskAt + j] = 0;
    }
    for (let h = 0; h < H; h++) {
      const lane0 = Math.floor(h / g) * hs * cap; // this query head's key/value head's first lane
      loops.attend(4 * (base + h * hs), simd.keys + 4 * lane0, simd.values + 4 * lane0, 4 * outAt, 4 * sAt, L + last + 1, hs, 4 * cap, visible === null ? 0 : 4 * maskAt, last + 1);
      const o = (t * H + h) * hs;
      for (let d = 0; d < hs; d++) out[o + d] = heap[outAt + d]!;
    }
  }
}
