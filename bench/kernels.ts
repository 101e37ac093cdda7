/**
 * Micro-benchmarks of the kernels a decoding step is made of, on one backend (docs/performance.md,
 * "Why the rest of the gap is in the forward"): the attention products at T query rows per head
 * in the forms that were weighed against each other, what a fresh right-hand operand costs
 * XNNPACK, and the ways of compacting a KV cache. Prints one markdown table per case.
 *
 *     npm run bench:kernels -- [--case attention|fused-attention|fresh-keys|gather|all] [--heads 4] [--kv-heads 2] [--head-size 32] [--rows 100] [--queries 1,4]
 *
 * Each form is one function returning a tensor, called `--warmup` times, then timed
 * `--iterations` times (call to return, its output disposed outside the timing); the table gives
 * the median and the 10th percentile in µs. On cpu and wasm a kernel runs when its op is called,
 * so that time is its compute; on a loaded machine the 10th percentile is the steadier figure.
 *
 * - `attention` (cache of `--rows` rows, T = each of `--queries`): softmax(q·Kᵀ + mask)·V as the
 *   model computes it (a batch of heads, `matMul(q, k, false, true)`), with keys pre-transposed,
 *   and flat 2D (all heads' query rows against all heads' keys, other heads masked out: one
 *   batch-1 matMul each way); then the products alone.
 * - `fused-attention`: the library's fused attention kernel over a static cache of `--rows`
 *   positions (`--kv-heads` key/value heads), with its WebAssembly SIMD loops (wasm) and its JS loops.
 * - `fresh-keys`: q·Kᵀ with the same key tensor every call against a new one each call (XNNPACK
 *   packs the right operand once per tensor; the cache's keys are new every step).
 * - `gather`: compacting `[1, heads, rows, head-size]` keys that hold one dead run of
 *   {@link DEAD_RUN} rows: gather on axis 2, a flat row gather, slices + concat; and an
 *   embedding lookup of k rows for scale.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fusedCachedAttention } from '../src/kernels/ops.js';
import { registerFusedKernels, setSimdAttention } from '../src/kernels/registry.js';
import { parseCommandLine, type OptionValues } from '../tools/args.js';
import { NODE_BACKENDS, useBackend } from '../tools/backend.js';
import { median, quantile } from '../tools/stats.js';

/** Rejected rows the cache lets pile up before it compacts (the gather case's dead run). */
const DEAD_RUN = 16;

const CASES = ['attention', 'fused-attention', 'fresh-keys', 'gather', 'all'] as const;

const COMMAND = {
  name: 'kernels',
  usage: 'npm run bench:kernels -- [options]',
  summary: 'Micro-benchmarks of attention formulations and KV-cache gathers (median and p10 µs per call); prints markdown tables.',
  options: {
    case: { type: 'string', default: 'all', choices: CASES, help: 'which micro-benchmark' },
    heads: { type: 'number', default: 4, integer: true, min: 1, help: 'attention heads' },
    'kv-heads': { type: 'number', default: 0, integer: true, min: 0, help: 'key/value heads of the fused-attention case (0: --heads); must divide --heads' },
    'head-size': { type: 'number', default: 32, integer: true, min: 1, help: 'size of one head' },
    rows: { type: 'number', default: 100, integer: true, min: DEAD_RUN + 2, help: 'cached rows (keys and values) before the step' },
    queries: { type: 'numbers', default: [1, 4], help: 'query rows per head T (1: a greedy step, k: a speculative k-step)' },
    vocab: { type: 'number', default: 256, integer: true, min: 4, help: 'vocabulary of the embedding lookup (gather case)' },
    iterations: { type: 'number', default: 300, integer: true, min: 1, help: 'timed calls per form' },
    warmup: { type: 'number', default: 30, integer: true, min: 0, help: 'untimed calls per form first' },
    backend: { type: 'string', default: 'wasm', choices: NODE_BACKENDS, help: 'backend' },
  },
} as const;

type Options = OptionValues<typeof COMMAND.options>;

/** A named form: `run` returns a tensor the timer disposes. */
type Form = [name: string, run: () => tf.Tensor];

/** µs per call of `run`: median and 10th percentile over `iterations` calls after `warmup`. */
function time(run: () => tf.Tensor, warmup: number, iterations: number): { median: number; p10: number } {
  for (let i = 0; i < warmup; i++) tf.dispose(run());
  const us: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const y = run();
    us.push(1000 * (performance.now() - t0));
    tf.dispose(y);
  }
  return { median: median(us), p10: quantile(us, 0.1) };
}

/** Attention at T query rows per head against `rows + T` keys, in each form. */
function attentionForms(o: Options, T: number): { forms: Form[]; inputs: tf.Tensor[] } {
  const [H, hs, L] = [o.heads, o['head-size'], o.rows + T];
  const q = tf.randomNormal([1, H, T, hs]); // [1, H, T, hs]
  const keys = tf.randomNormal([1, H, L, hs]); // [1, H, L, hs]
  const keysT = tf.transpose(keys, [0, 1, 3, 2]); // [1, H, hs, L]
  const values = tf.randomNormal([1, H, L, hs]); // [1, H, L, hs]
  const mask = tf.zeros([T, L]); // [T, L]
  const probs = tf.softmax(tf.randomNormal([1, H, T, L])); // [1, H, T, L]
  const qFlat = tf.reshape(q, [H * T, hs]); // [H·T, hs]
  const keysFlat = tf.reshape(keys, [H * L, hs]); // [H·L, hs]
  const keysFlatT = tf.transpose(keysFlat); // [hs, H·L]
  const valuesFlat = tf.reshape(values, [H * L, hs]); // [H·L, hs]
  const blockMask = tf.zeros([H * T, H * L]); // [H·T, H·L] (the values do not change the cost)
  const attend = (scores: () => tf.Tensor, v: tf.Tensor, m: tf.Tensor) => () => tf.tidy(() => tf.matMul(tf.softmax(tf.add(scores(), m)), v));
  const forms: Form[] = [
    ['batched, matMul(q, k, false, true) (the model)', attend(() => tf.matMul(q, keys, false, true), values, mask)],
    ['batched, keys pre-transposed', attend(() => tf.matMul(q, keysT), values, mask)],
    ['flat 2D block-masked, keys pre-transposed', attend(() => tf.matMul(qFlat, keysFlatT), valuesFlat, blockMask)],
    ['flat 2D block-masked, transposeB', attend(() => tf.matMul(qFlat, keysFlat, false, true), valuesFlat, blockMask)],
    ['q·Kᵀ alone, batched transposeB', () => tf.matMul(q, keys, false, true)],
    ['q·Kᵀ alone, batched, keys pre-transposed', () => tf.matMul(q, keysT)],
    ['P·V alone, batched', () => tf.matMul(probs, values)],
    ['q·Kᵀ alone, flat 2D', () => tf.matMul(qFlat, keysFlatT)],
  ];
  return { forms, inputs: [q, keys, keysT, values, mask, probs, qFlat, keysFlat, keysFlatT, valuesFlat, blockMask] };
}

/**
 * The library's fused attention kernel (`MtpCachedAttention`, src/kernels) at T new rows over a
 * static cache of `rows` positions: its WebAssembly SIMD loops (wasm) and its JS loops, against
 * the composite model ops above at the same shape.
 */
function fusedAttentionForms(o: Options, T: number): { forms: Form[]; inputs: tf.Tensor[] } {
  const [H, hs, L] = [o.heads, o['head-size'], o.rows];
  const Hkv = o['kv-heads'] || H;
  if (H % Hkv !== 0) throw new Error(`kernels: --kv-heads must divide --heads (${H}), but got ${Hkv}.`);
  const capacity = L + T;
  const keys = tf.randomNormal([Hkv * hs, capacity]) as tf.Tensor2D; // the static cache's lanes
  const values = tf.randomNormal([Hkv * hs, capacity]) as tf.Tensor2D;
  const qkv = tf.randomNormal([1, T, (H + 2 * Hkv) * hs]) as tf.Tensor3D; // one packed projection
  const half = hs / 2;
  const rotary = hs % 2 === 0 ? { cos: new Float32Array(T * half).fill(0.6), sin: new Float32Array(T * half).fill(0.8), layout: 'interleaved' as const } : null;
  const plan = { numHeads: H, numKeyValueHeads: Hkv, headDim: hs, cached: L, rows: T, sees: null, rotary };
  registerFusedKernels();
  const fused = (simd: boolean) => () => {
    const previous = setSimdAttention(simd);
    try {
      return fusedCachedAttention(qkv, undefined, undefined, keys, values, plan);
    } finally {
      setSimdAttention(previous);
    }
  };
  const forms: Form[] = [
    [`fused kernel, ${o.backend === 'wasm' ? 'WebAssembly SIMD loops' : 'JS loops (no SIMD on this backend)'}`, fused(true)],
    ['fused kernel, JS loops', fused(false)],
  ];
  return { forms, inputs: [keys, values, qkv] };
}

/** q·Kᵀ with the same right-hand tensor each call against a new one (and what making it costs). */
function freshKeyForms(o: Options, T: number): { forms: Form[]; inputs: tf.Tensor[] } {
  const [H, hs, L] = [o.heads, o['head-size'], o.rows + T];
  const q = tf.randomNormal([1, H, T, hs]); // [1, H, T, hs]
  const keys = tf.randomNormal([1, H, L, hs]); // [1, H, L, hs]
  const qFlat = tf.reshape(q, [H * T, hs]); // [H·T, hs]
  const keysFlatT = tf.randomNormal([hs, H * L]); // [hs, H·L]
  const forms: Form[] = [
    ['batched q·Kᵀ, same keys', () => tf.matMul(q, keys, false, true)],
    ['batched q·Kᵀ, fresh keys (clone)', () => tf.tidy(() => tf.matMul(q, tf.clone(keys), false, true))],
    ['clone alone', () => tf.clone(keys)],
    ['flat q·Kᵀ, same keys', () => tf.matMul(qFlat, keysFlatT)],
    ['flat q·Kᵀ, fresh keys (add 0)', () => tf.tidy(() => tf.matMul(qFlat, tf.add(keysFlatT, 0)))],
    ['add 0 alone', () => tf.add(keysFlatT, 0)],
  ];
  return { forms, inputs: [q, keys, qFlat, keysFlatT] };
}

/** Compacting a cache with one dead run of {@link DEAD_RUN} rows in the middle, each way. */
function gatherForms(o: Options): { forms: Form[]; inputs: tf.Tensor[] } {
  const [H, hs, R] = [o.heads, o['head-size'], o.rows];
  const live = R - DEAD_RUN;
  const cut = live >> 1; // rows [0, cut) and [cut + DEAD_RUN, R) are live
  const keys = tf.randomNormal([1, H, R, hs]); // [1, H, R, hs]
  const liveRows = Array.from({ length: live }, (_, i) => (i < cut ? i : i + DEAD_RUN));
  const index = tf.tensor1d(liveRows, 'int32'); // [live]
  const flatIndex = tf.tensor1d(Array.from({ length: H }, (_, h) => liveRows.map((r) => h * R + r)).flat(), 'int32'); // [H·live]
  // what a few speculative steps at low τ leave: runs of DEAD_RUN − 2 live rows, 2 dead between them
  const runs = Array.from({ length: Math.floor((R - 2) / DEAD_RUN) }, (_, i) => i * DEAD_RUN + 2);
  const table = tf.randomNormal([o.vocab, H * hs]); // [vocab, hidden]
  const ids = tf.tensor1d(Array.from({ length: 4 }, (_, i) => i + 1), 'int32'); // [4]
  const forms: Form[] = [
    [`gather axis 2, ${R} → ${live} rows`, () => tf.gather(keys, index, 2)],
    [`slice ${live} rows (a lower bound)`, () => tf.slice(keys, [0, 0, 0, 0], [1, H, live, hs])],
    ['2 slices + concat', () => tf.tidy(() => tf.concat([tf.slice(keys, [0, 0, 0, 0], [1, H, cut, hs]), tf.slice(keys, [0, 0, cut + DEAD_RUN, 0], [1, H, live - cut, hs])], 2))],
    [`flat row gather [${H * R}, ${hs}] → ${H * live} rows`, () => tf.tidy(() => tf.reshape(tf.gather(tf.reshape(keys, [H * R, hs]), flatIndex), [1, H, live, hs]))],
    [`${runs.length} runs of ${DEAD_RUN - 2} rows: slices + concat`, () => tf.tidy(() => tf.concat(runs.map((s) => tf.slice(keys, [0, 0, s, 0], [1, H, DEAD_RUN - 2, hs])), 2))],
    [`embedding gather, 4 rows of [${o.vocab}, ${H * hs}]`, () => tf.gather(table, ids)],
  ];
  return { forms, inputs: [keys, index, flatIndex, table, ids] };
}

function table(title: string, rows: [string, { median: number; p10: number }][]): string {
  const lines = [`#### ${title}`, '', '| form | median µs | p10 µs |', '|---|---:|---:|'];
  for (const [name, t] of rows) lines.push(`| ${name} | ${t.median.toFixed(1)} | ${t.p10.toFixed(1)} |`);
  return lines.join('\n');
}

function run(title: string, { forms, inputs }: { forms: Form[]; inputs: tf.Tensor[] }, o: Options): void {
  try {
    console.log(`\n${table(title, forms.map(([name, f]) => [name, time(f, o.warmup, o.iterations)]))}`);
  } finally {
    tf.dispose(inputs);
  }
}

async function main(): Promise<void> {
  const o = parseCommandLine(COMMAND);
  const bad = o.queries.find((T) => !Number.isInteger(T) || T < 1);
  if (bad !== undefined) throw new Error(`kernels: --queries must be positive integers, but got ${bad}.`);
  await useBackend(o.backend);
  const shape = `${o.heads} heads of ${o['head-size']}, ${o.rows} cached rows`;
  console.log(`Backend ${o.backend}; ${shape}; ${o.iterations} timed calls after ${o.warmup} untimed, per form.`);
  const all = o.case === 'all';
  for (const T of o.queries) {
    if (all || o.case === 'attention') run(`attention, T = ${T} query rows per head`, attentionForms(o, T), o);
    if (all || o.case === 'fused-attention') run(`fused attention kernel, T = ${T} new rows`, fusedAttentionForms(o, T), o);
    if (all || o.case === 'fresh-keys') run(`fresh keys, T = ${T} query rows per head`, freshKeyForms(o, T), o);
  }
  if (all || o.case === 'gather') run(`cache compaction, [1, ${o.heads}, ${o.rows}, ${o['head-size']}] keys`, gatherForms(o), o);
}

await main();
