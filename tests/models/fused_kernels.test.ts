/**
 * The fused decode kernels (src/kernels) against the composite tfjs ops, on cpu and wasm: each
 * kernel alone over random shapes, then whole forwards of random architectures — chains, trees
 * with keepRows, rollbacks and the static cache's growth — with the kernels on and off; the
 * dispatch count they exist for; and what stays true over a long decode (no tensor growth).
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/index.js';
import { checkedArgmax } from '../../src/layers/inference_fused.js';
import { fusedActivation, fusedAddNorm, fusedCachedAttention, fusedCheckedArgmax, fusedNorm } from '../../src/kernels/ops.js';
import { fusedKernelsAvailable, setFusedKernels, setSimdAttention } from '../../src/kernels/registry.js';
import { simdLoops } from '../../src/kernels/simd.js';
import { checkedArgmaxRows, expNonPositive, finiteRowBound, greedyTipRow } from '../../src/kernels/math.js';
import { greedyVerdict, treeShape } from '../../src/decoding/acceptance.js';
import { draftTree } from '../../src/decoding/drafters.js';
import type { OffsetHeadKind } from '../../src/layers/args.js';
import { randomizeWeights, tinyModel } from '../helpers/layers.js';
import { CachedTransformer, createTransformer, type TransformerConfig } from '../../src/models/index.js';
import { withSequentialHeads } from '../../src/models/draft_heads.js';
import { type BlockSpec, type BlockWeights, attention, norm } from '../../src/models/ops.js';
import { rotaryTablesAt } from '../../src/models/positions.js';
import { StaticKVCache } from '../../src/models/static_cache.js';
import { PACK_LIMIT, setPackLimit, TransformerTrunk } from '../../src/models/trunk.js';
import { KVCache } from '../../src/models/cache.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';

const BACKENDS = ['cpu', 'wasm'] as const;

async function use(backend: string): Promise<void> {
  await tf.setBackend(backend);
  await tf.ready();
  expect(tf.getBackend()).toBe(backend);
}

/** Largest |a − b| over two tensors of one shape. */
function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** `fn` with the fused kernels off (and back on after). */
function composite<T>(fn: () => T): T {
  setFusedKernels(false);
  try {
    return fn();
  } finally {
    setFusedKernels(true);
  }
}

afterEach(() => setFusedKernels(true));

describe.each(BACKENDS)('fused kernels on %s', (backend) => {
  it('are available, and the switch turns them off', async () => {
    await use(backend);
    expect(fusedKernelsAvailable()).toBe(true);
    expect(composite(() => fusedKernelsAvailable())).toBe(false);
  });

  it('norm and residual-add + norm equal the composite norm (rmsNorm and layerNorm, with and without bias)', async () => {
    await use(backend);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 70 }), fc.constantFrom('rmsNorm', 'layerNorm') as fc.Arbitrary<'rmsNorm' | 'layerNorm'>, fc.boolean(), fc.integer(), (N, D, kind, withBias, seed) => {
        tf.tidy(() => {
          const x = tf.randomNormal([1, N, D], 0, 3, 'float32', seed) as tf.Tensor3D;
          const r = tf.randomNormal([1, N, D], 0, 3, 'float32', seed + 1) as tf.Tensor3D;
          const w = { weight: tf.randomNormal([D], 1, 0.5, 'float32', seed + 2) as tf.Tensor1D, bias: withBias ? (tf.randomNormal([D], 0, 1, 'float32', seed + 3) as tf.Tensor1D) : undefined };
          expect(maxDiff(fusedNorm(x, w, kind, 1e-5), norm(x, w, kind, 1e-5))).toBeLessThan(1e-4);
          const [sum, normed] = fusedAddNorm(x, r, w, kind, 1e-5);
          expect(maxDiff(sum, tf.add(x, r))).toBe(0);
          expect(maxDiff(normed, norm(tf.add(x, r), w, kind, 1e-5))).toBeLessThan(1e-4);
        });
      }),
      { numRuns: 25 },
    );
  });

  it('the MLP activations equal the composite ones (swiglu from two tensors and from one [gate | up], gelu, relu)', async () => {
    await use(backend);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 50 }), fc.integer(), (N, F, seed) => {
        tf.tidy(() => {
          const a = tf.randomNormal([1, N, F], 0, 4, 'float32', seed) as tf.Tensor3D;
          const b = tf.randomNormal([1, N, F], 0, 4, 'float32', seed + 1) as tf.Tensor3D;
          const swiglu = tf.mul(tf.mul(a, tf.sigmoid(a)), b);
          expect(maxDiff(fusedActivation('swiglu', a, b), swiglu)).toBeLessThan(1e-4);
          expect(maxDiff(fusedActivation('swiglu', tf.concat([a, b], 2)), swiglu)).toBeLessThan(1e-4);
          const gelu = tf.mul(tf.mul(a, 0.5), tf.add(1, tf.erf(tf.mul(a, Math.SQRT1_2))));
          expect(maxDiff(fusedActivation('gelu', a), gelu)).toBeLessThan(1e-4);
          expect(maxDiff(fusedActivation('relu', a), tf.relu(a))).toBe(0);
        });
      }),
      { numRuns: 25 },
    );
  });

  it('checked argmax equals argMax, with −1 on rows holding NaN or ±Infinity', async () => {
    await use(backend);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 300 }), fc.integer(), fc.array(fc.constantFrom(NaN, Infinity, -Infinity), { maxLength: 3 }), (N, V, seed, poison) => {
        const values = Array.from(tf.tidy(() => tf.randomNormal([N * V], 0, 1, 'float32', seed).dataSync()));
        poison.forEach((p, i) => (values[((i * 7919 + seed) >>> 0) % values.length] = p));
        const poisoned = new Set(poison.map((_, i) => Math.floor((((i * 7919 + seed) >>> 0) % values.length) / V)));
        const logits = tf.tensor2d(values, [N, V]);
        const got = Array.from(fusedCheckedArgmax(logits).dataSync());
        const want = composite(() => Array.from(checkedArgmax(logits).dataSync()));
        logits.dispose();
        expect(got).toEqual(want);
        got.forEach((id, r) => {
          const row = values.slice(r * V, (r + 1) * V);
          expect(id).toBe(poisoned.has(r) ? -1 : row.indexOf(Math.max(...row)));
        });
      }),
      { numRuns: 40 },
    );
    // mapped through a draft vocabulary's ids, in groups of 3 rows (one position's offsets): a
    // group with a non-finite row is −1 throughout, as the composite pick + breakRows give it
    const grouped = tf.tensor2d([[0, 5, 1], [2, 2, 9], [NaN, 0, 0], [7, 1, 1], [1, 8, 1], [0, 0, 3]]);
    const ids = tf.tensor1d([10, 20, 30], 'int32');
    expect(Array.from(fusedCheckedArgmax(grouped, ids, 3).dataSync())).toEqual([-1, -1, -1, 10, 20, 30]);
    expect(Array.from(fusedCheckedArgmax(grouped, undefined, 2).dataSync())).toEqual([1, 2, -1, -1, 1, 2]);
    tf.dispose([grouped, ids]);
    // rows that tie take the first index, as argMax
    const tie = tf.tensor2d([[1, 3, 3, 0], [NaN, 0, 0, 0]]);
    expect(Array.from(fusedCheckedArgmax(tie).dataSync())).toEqual([1, -1]);
    tie.dispose();
  });

  it('cached attention equals the composite attention over a past, for chains and trees, grouped heads, both rotary layouts and learned positions', async () => {
    await use(backend);
    fc.assert(
      fc.property(
        fc.record({
          Hkv: fc.integer({ min: 1, max: 3 }),
          g: fc.integer({ min: 1, max: 3 }),
          half: fc.integer({ min: 1, max: 5 }),
          L: fc.integer({ min: 0, max: 12 }),
          T: fc.integer({ min: 1, max: 5 }),
          rope: fc.constantFrom('interleaved', 'halfSplit', null) as fc.Arbitrary<'interleaved' | 'halfSplit' | null>,
          tree: fc.boolean(),
          seed: fc.integer({ min: 0, max: 1e6 }),
        }),
        ({ Hkv, g, half, L, T, rope, tree, seed }) => {
          const H = Hkv * g;
          const hs = 2 * half;
          const D = 2 * hs;
          const parents = Array.from({ length: T }, (_, t) => (tree ? (t === 0 ? -1 : ((seed + 13 * t) % (t + 1)) - 1) : t - 1));
          const depth: number[] = [];
          parents.forEach((p) => depth.push(p < 0 ? 0 : depth[p]! + 1));
          const at = depth.map((d) => L + d);
          tf.tidy(() => {
            const rnd = (shape: number[], i: number) => tf.randomNormal(shape, 0, 0.7, 'float32', seed + i);
            const w = { wq: { weight: rnd([D, H * hs], 1) }, wk: { weight: rnd([D, Hkv * hs], 2) }, wv: { weight: rnd([D, Hkv * hs], 3) }, wo: { weight: tf.eye(H * hs) } } as unknown as BlockWeights;
            const spec: BlockSpec = { numHeads: H, numKeyValueHeads: Hkv, norm: 'rmsNorm', normEpsilon: 1e-5, mlp: 'relu' };
            const x = rnd([T, D], 4) as tf.Tensor2D;
            const pastK = rnd([1, Hkv, L, hs], 5) as tf.Tensor4D; // already rotated, as a cache holds them
            const pastV = rnd([1, Hkv, L, hs], 6) as tf.Tensor4D;
            // the composite path: one block's attention over the past (mask: causal or the tree's ancestors)
            const mask = (() => {
              const width = L + T;
              const one: number[] = [];
              for (let t = 0; t < T; t++) {
                const row = new Array<number>(width).fill(0);
                for (let j = 0; j < T; j++) {
                  let sees = false;
                  for (let a = t; a >= 0; a = parents[a]!) if (a === j) sees = true;
                  if (!sees) row[L + j] = -1e9;
                }
                one.push(...row);
              }
              return tf.tensor2d(Array.from({ length: g }, () => one).flat(), [g * T, width]);
            })();
            const ropeTables = rope === null ? null : { q: rotaryTablesAt(at, H, hs, 10000, rope), k: rotaryTablesAt(at, Hkv, hs, 10000, rope) };
            const want = attention(x, 1, w, spec, L > 0 ? { keys: pastK, values: pastV } : null, { mask, rope: ropeTables }).y; // [T, H·hs] (wo = I)
            // the fused kernel over a static cache holding the same past
            const cap = L + T + 3;
            const lanes = (t: tf.Tensor4D) => tf.pad(tf.reshape(tf.transpose(t, [0, 1, 3, 2]), [Hkv * hs, L]), [[0, 0], [0, cap - L]]) as tf.Tensor2D;
            const keys = lanes(pastK);
            const values = lanes(pastV);
            const cos = new Float32Array(T * half);
            const sin = new Float32Array(T * half);
            const freq = Array.from({ length: half }, (_, i) => Math.fround(1 / Math.fround(10000 ** Math.fround((2 * i) / hs))));
            at.forEach((p, t) => freq.forEach((f, i) => ((cos[t * half + i] = Math.cos(Math.fround(p * f))), (sin[t * half + i] = Math.sin(Math.fround(p * f))))));
            const sees = tree ? parents.map((_, t) => { const path: number[] = []; for (let a = t; a >= 0; a = parents[a]!) path.unshift(a); return path; }) : null;
            const plan = { numHeads: H, numKeyValueHeads: Hkv, headDim: hs, cached: L, rows: T, sees, rotary: rope === null ? null : { cos, sin, layout: rope } };
            const q = tf.matMul(x, w.wq.weight);
            const k = tf.matMul(x, w.wk.weight);
            const v = tf.matMul(x, w.wv.weight);
            const got = fusedCachedAttention(tf.expandDims(q, 0), tf.expandDims(k, 0), tf.expandDims(v, 0), keys, values, plan);
            expect(maxDiff(tf.squeeze(got, [0]), want)).toBeLessThan(1e-4);
            // and from one packed [q | k | v] matrix, into fresh buffers
            const packed = fusedCachedAttention(tf.expandDims(tf.concat([q, k, v], 1), 0), undefined, undefined, lanes(pastK), lanes(pastV), plan);
            expect(maxDiff(packed, got)).toBe(0);
            // the new rows landed in the buffers, rotated as the composite path rotated its keys
            const kNew = tf.reshape(tf.transpose(tf.slice(keys, [0, L], [Hkv * hs, T])), [T, Hkv * hs]);
            const kWant = ropeTables === null ? k : tf.add(tf.mul(k, ropeTables.k.cos), tf.mul(tf.gather(k, ropeTables.k.partner, 1), ropeTables.k.sin));
            expect(maxDiff(kNew, kWant)).toBeLessThan(1e-4);
          });
        },
      ),
      { numRuns: 30 },
    );
  });
});

/** A random small architecture. */
const architectures: fc.Arbitrary<TransformerConfig> = fc
  .record({
    Hkv: fc.integer({ min: 1, max: 2 }),
    g: fc.integer({ min: 1, max: 2 }),
    half: fc.integer({ min: 1, max: 3 }),
    numLayers: fc.integer({ min: 1, max: 2 }),
    norm: fc.constantFrom('rmsNorm', 'layerNorm'),
    positions: fc.constantFrom('rotary', 'learned'),
    ropeLayout: fc.constantFrom('interleaved', 'halfSplit'),
    mlp: fc.constantFrom('relu', 'gelu', 'swiglu'),
    useBias: fc.boolean(),
    seed: fc.integer({ min: 0, max: 1000 }),
  })
  .map(({ Hkv, g, half, ...rest }) => ({
    vocabSize: 40,
    maxLength: 150, // past the static cache's first 128 rows: the growth is exercised
    hiddenSize: 12,
    numAttentionHeads: Hkv * g,
    numKeyValueHeads: Hkv,
    headDim: 2 * half,
    intermediateSize: 10,
    mtpHeads: 2,
    ...rest,
  })) as fc.Arbitrary<TransformerConfig>;

/** The states of a script of forwards, trees, keepRows and truncates (each step's `[n, D]` values). */
function runScript(model: ReturnType<typeof createTransformer>, seed: number): number[][] {
  const cached = new CachedTransformer(model);
  const out: number[][] = [];
  const ids = (n: number, s: number) => Array.from({ length: n }, (_, i) => (s * 31 + i * 7) % 40);
  const record = (t: tf.Tensor2D) => {
    out.push(Array.from(t.dataSync()));
    t.dispose();
  };
  try {
    record(cached.forward(ids(5, seed)));
    for (let step = 0; step < 6; step++) {
      record(cached.forward(ids(3, seed + step))); // a speculative block
      cached.truncate(cached.length - ((seed + step) % 3)); // a partial acceptance
      const parents = [-1, 0, 0, 1, -1, 4];
      record(cached.forwardTree(ids(6, seed + 10 + step), parents));
      cached.keepRows(step % 2 === 0 ? [0, 1, 3] : [4, 5]); // one root-to-node path
    }
    record(cached.forward(ids(130 - cached.length, seed + 99))); // long enough to grow the static cache
    record(cached.forward([1]));
  } finally {
    cached.dispose();
  }
  return out;
}

describe.each(BACKENDS)('whole forwards on %s', (backend) => {
  it('fused and composite give the same states through chains, trees, keepRows, rollbacks and cache growth, for random architectures, projections packed or not', async () => {
    await use(backend);
    fc.assert(
      fc.property(architectures, (config) => {
        const model = createTransformer(config);
        try {
          const plain = composite(() => runScript(model, config.seed!));
          for (const limit of [PACK_LIMIT, 0]) {
            setPackLimit(limit); // q|k|v and gate|up packed into one matmul each, or not (as a large model runs)
            const fused = runScript(model, config.seed!);
            expect(fused.length).toBe(plain.length);
            fused.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - plain[i]![j]!)).toBeLessThan(2e-4)));
          }
        } finally {
          setPackLimit(PACK_LIMIT);
          model.dispose();
        }
      }),
      { numRuns: 12 },
    );
  });

  it('batched generation: B sequences side by side in one static cache (stepBatchFused) give the composite stepBatch states, through cache growth, for random architectures', async () => {
    await use(backend);
    expect(fusedKernelsAvailable()).toBe(true); // registers the kernels (lazily, as generation does)
    fc.assert(
      fc.property(architectures, fc.integer({ min: 1, max: 5 }), (config, B) => {
        const model = createTransformer(config);
        const trunk = model.layers.find((l) => l instanceof TransformerTrunk) as TransformerTrunk;
        randomizeWeights(trunk, config.seed!, 0.5); // scores far from uniform: a row attending to another sequence's keys shows
        const { numLayers, numKeyValueHeads, headDim } = trunk.arch;
        const fusedCache = new StaticKVCache(numLayers, B * numKeyValueHeads * headDim, config.maxLength!);
        const plainCache = new KVCache();
        const before = tf.memory().numTensors;
        try {
          for (let t = 0; t < 140; t++) {
            const ids = Array.from({ length: B }, (_, b) => (config.seed! + 11 * b + (3 + 8 * b) * t) % 40); // every sequence its own text
            const fused = trunk.stepBatchFused(ids, fusedCache); // [B, D]
            const plain = composite(() => tf.tidy(() => trunk.stepBatch(tf.tensor1d(ids, 'int32'), plainCache)));
            expect(maxDiff(fused, plain)).toBeLessThan(2e-4);
            tf.dispose([fused, plain]);
          }
          expect(fusedCache.length).toBe(140);
        } finally {
          fusedCache.clear();
          plainCache.clear();
        }
        expect(tf.memory().numTensors).toBe(before); // both caches freed, every step's states disposed
        model.dispose();
      }),
      { numRuns: 6 },
    );
  });

  it('stepBatchFused refuses a cache whose width is not one sequence per id, leaving nothing behind', async () => {
    await use(backend);
    expect(fusedKernelsAvailable()).toBe(true);
    const model = createTransformer({ vocabSize: 20, maxLength: 16, hiddenSize: 8, numLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1, mtpHeads: 1, seed: 2 });
    const trunk = model.layers.find((l) => l instanceof TransformerTrunk) as TransformerTrunk;
    const cache = new StaticKVCache(1, 2 * 4, 16); // two sequences' lanes (Hkv·hs = 4)
    await expectThrowNoLeak(() => trunk.stepBatchFused([1, 2, 3], cache), 'TransformerTrunk.stepBatchFused: cache width must be ids.length · Hkv · hs = 12 (one sequence per id), but got 8.');
    expect(cache.length).toBe(0);
    cache.clear();
    model.dispose();
  });

  it('decodes exactly what the composite path decodes (greedy and speculative), leaving no tensor behind', async () => {
    await use(backend);
    const model = createTransformer({ vocabSize: 64, maxLength: 80, hiddenSize: 16, numLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, norm: 'rmsNorm', positions: 'rotary', mlp: 'swiglu', mtpHeads: 3, seed: 3 });
    const cached = new CachedTransformer(model);
    const prompt = [1, 5, 9];
    const fused = await expectNoLeak(async () => {
      const g = await greedyDecode(cached, prompt, { maxNewTokens: 40 });
      const s = await speculativeDecode(cached, prompt, { maxNewTokens: 40, draftLength: 2 });
      return [g.tokens, s.tokens];
    });
    setFusedKernels(false);
    const plain = [(await greedyDecode(cached, prompt, { maxNewTokens: 40 })).tokens, (await speculativeDecode(cached, prompt, { maxNewTokens: 40, draftLength: 2 })).tokens];
    setFusedKernels(true);
    expect(fused).toEqual(plain);
    expect(fused[1]).toEqual(fused[0]);
    cached.dispose();
    model.dispose();
  });
});

describe.each(BACKENDS)('parallel offset heads and greedy acceptance on %s', (backend) => {
  const kinds: OffsetHeadKind[] = ['identity', 'linear', 'residual', 'lowRank', 'mlp'];
  /** Every head kind × activation; biases and a draft vocabulary alternate, starting from `phase`. */
  const tipCases = (phase: 0 | 1) =>
    kinds.flatMap((kind) => (['swish', 'gelu', 'relu', 'tanh', 'sigmoid', 'linear'] as const).map((activation, i) => ({ kind, activation, useBias: i % 2 === phase, vocab: i % 3 === phase ? null : [0, 3, 5, 8, 13, 21, 26] })));
  /** A random tiny model with `c`'s heads (seeded), and `fn` with the head prepared (released after). */
  const tipModel = (c: ReturnType<typeof tipCases>[number], seed: number) => {
    const { model, head } = tinyModel({ numHeads: 4, vocabSize: 29, hidden: 16, headKind: c.kind, activation: c.activation, headHiddenSize: 12, rank: 5, useBias: c.useBias, seed, ...(c.vocab ? { draftVocab: c.vocab } : {}) });
    randomizeWeights(head, seed, 0.5);
    const prepared = <T extends tf.TensorContainer>(fn: () => T): T => {
      head.prepare();
      try {
        return tf.tidy(fn);
      } finally {
        head.release();
      }
    };
    return { model, head, prepared };
  };

  it('the one-kernel tip draft (and offset 0\'s argmax) equals the composite pass: every head kind and activation, with and without biases and a draft vocabulary, broken rows included', async () => {
    await use(backend);
    for (const c of tipCases(0)) {
      const { model, head, prepared } = tipModel(c, 4);
      const run = () =>
        prepared(() => {
          const states = tf.concat([tf.randomNormal([3, 16], 0, 1.5, 'float32', 2), tf.fill([1, 16], Number.NaN)]) as tf.Tensor2D; // the last row broken
          const roots = tf.tensor1d([1, 7, 9, 2], 'int32');
          return [head.draftArgmax(states, roots, 3), head.draftArgmax(states, roots, 1), head.headArgmax(states, 1)].map((t) => Array.from(t.dataSync()));
        });
      const kernels = tf.profile(run);
      const names = (await kernels).kernelNames;
      expect(names, `${c.kind} ${c.activation}`).toContain('MtpDraftArgmax');
      const fused = run();
      const plain = composite(run);
      expect(fused, `${c.kind} ${c.activation} bias ${c.useBias} vocab ${c.vocab !== null}`).toEqual(plain);
      expect(fused[0]!.slice(9)).toEqual([-1, -1, -1]); // the broken row's offsets, all of them
      expect(fused[2]![3]).toBe(-1); // and its verifier's argmax
      if (c.vocab !== null) fused[0]!.slice(0, 9).forEach((id) => expect(c.vocab).toContain(id));
      model.dispose();
    }
  });

  it('the one-kernel tip ranking (draftTopK) equals the composite pass: ids exactly, log-probabilities within 1e-5, every head kind and activation, tied and broken rows included, leaving no tensor', async () => {
    await use(backend);
    for (const c of tipCases(1)) {
      const { model, head, prepared } = tipModel(c, 6);
      const run = () =>
        prepared(() => {
          // two random rows; a zero row (through identity heads without biases its logits tie
          // throughout, ranked by the lower column on both paths); a broken row
          const states = tf.concat([tf.randomNormal([2, 16], 0, 1.5, 'float32', 7), tf.zeros([1, 16]), tf.fill([1, 16], Number.NaN)]) as tf.Tensor2D;
          const roots = tf.tensor1d([1, 7, 9, 2], 'int32');
          const out = [3, 1].flatMap((n) => {
            const top = head.draftTopK(states, roots, n, Math.min(4, c.vocab?.length ?? 29));
            return [top.ids, top.logProbs];
          });
          return out.map((t) => Array.from(t.dataSync()));
        });
      const names = [...(await tf.profile(run)).kernelNames];
      expect(names, `${c.kind} ${c.activation}`).toContain('MtpDraftTopK');
      expect(names, `${c.kind} ${c.activation}`).not.toContain('TopK');
      const before = tf.memory().numTensors;
      const fused = run();
      expect(tf.memory().numTensors).toBe(before);
      const plain = composite(run);
      const what = `${c.kind} ${c.activation} bias ${c.useBias} vocab ${c.vocab !== null}`;
      expect(fused[0], what).toEqual(plain[0]);
      expect(fused[2], what).toEqual(plain[2]);
      for (const i of [1, 3]) {
        // the broken row's log-probabilities are not defined (NaN on both paths, or whatever NaN ranks give)
        const rows = i === 1 ? 3 * 3 * 4 : 3 * 4;
        fused[i]!.slice(0, rows).forEach((v, j) => expect(Math.abs(v - plain[i]![j]!), what).toBeLessThan(1e-5 * Math.max(1, Math.abs(v))));
      }
      expect(fused[0]!.slice(36)).toEqual(Array<number>(12).fill(-1)); // the broken row, every offset and rank
      if (c.kind === 'identity' && !c.useBias) expect(fused[0]!.slice(24, 28), what).toEqual((c.vocab ?? Array.from({ length: 29 }, (_, i) => i)).slice(0, 4)); // zero states: logits all 0, ranked by column
      if (c.vocab !== null) fused[0]!.slice(0, 36).forEach((id) => expect(c.vocab).toContain(id));
      model.dispose();
    }
  });

  it('an activation the kernel lacks takes the composite pass, with the same drafts', async () => {
    await use(backend);
    const { model, head } = tinyModel({ numHeads: 3, vocabSize: 29, hidden: 16, headKind: 'mlp', activation: 'elu', headHiddenSize: 12, seed: 5 });
    randomizeWeights(head, 5, 0.5);
    head.prepare();
    try {
      const states = tf.randomNormal([2, 16], 0, 1.5, 'float32', 3) as tf.Tensor2D;
      const roots = tf.tensor1d([1, 2], 'int32');
      const profile = await tf.profile(() => tf.dispose(head.draftArgmax(states, roots, 2)));
      expect(profile.kernelNames).not.toContain('MtpDraftArgmax');
      const fused = Array.from(tf.tidy(() => head.draftArgmax(states, roots, 2)).dataSync());
      expect(fused).toEqual(composite(() => Array.from(tf.tidy(() => head.draftArgmax(states, roots, 2)).dataSync())));
      tf.dispose([states, roots]);
    } finally {
      head.release();
      model.dispose();
    }
  });

  it('the one-kernel greedy verdict equals the composite rule on random trees and chains, broken rows included', async () => {
    await use(backend);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: -1, max: 3 }), { minLength: 13, maxLength: 13 }), (nodes, bestAll) => {
        const parents = nodes.map(([p], i) => (i === 0 ? -1 : (p % (i + 1)) - 1)); // −1 or an earlier node
        const tree = draftTree(nodes.map(([, t]) => t), parents);
        const chain = draftTree(nodes.map(([, t]) => t), nodes.map((_, i) => i - 1));
        for (const t of [tree, chain]) {
          const s = treeShape(t);
          const best = bestAll.slice(0, s.N + 1);
          const decide = () => tf.tidy(() => {
            const v = greedyVerdict(s, tf.tensor1d(best, 'int32'));
            return [v.tip, v.next].map((x) => x.dataSync()[0]!);
          });
          const fused = decide();
          expect(fused).toEqual(composite(decide));
          expect(fused[0]).toBe(greedyTipRow(Int32Array.from(best), s.parentRow, s.tokens, s.depth));
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe.each(BACKENDS)('sequential draft modules on %s', (backend) => {
  it('the fused module step drafts what the composite folded step drafts (argmax, top-k, logits, a grown tree), with and without a draft vocabulary', async () => {
    await use(backend);
    for (const vocab of [null, [0, 3, 5, 8, 13, 21, 34, 37]]) {
      const base = createTransformer({ vocabSize: 40, hiddenSize: 16, numLayers: 1, numAttentionHeads: 2, maxLength: 32, mtpHeads: 1, positions: 'rotary', norm: 'rmsNorm', mlp: 'swiglu', seed: 4 });
      const model = withSequentialHeads(base, 4, 12, vocab, 9);
      const cached = new CachedTransformer(model);
      const run = () => {
        cached.beginDecode(); // prepared: the folded modules
        try {
          return tf.tidy(() => {
            const states = tf.randomNormal([3, 16], 0, 1.5, 'float32', 2) as tf.Tensor2D;
            const roots = tf.tensor1d([1, 7, 39], 'int32');
            const top = cached.draftTopK(states, roots, 3, 2);
            const tree = cached.headTree!(states, roots, 2, 2);
            return [cached.draftArgmax(states, roots, 3), top.ids, top.logProbs, cached.draftLogits(states, roots, 3), tree.ids, tree.scores, tree.parents, cached.headArgmax!(states, 1)].map((t) => Array.from(t.dataSync()));
          });
        } finally {
          cached.endDecode();
        }
      };
      const fused = run();
      const plain = composite(run);
      cached.beginDecode();
      try {
        const states = tf.concat([tf.randomNormal([2, 16], 0, 1.5, 'float32', 5), tf.fill([1, 16], Number.NaN)]) as tf.Tensor2D;
        const roots = tf.tensor1d([3, 7, 2], 'int32');
        const chain = async () => Array.from(tf.tidy(() => cached.draftArgmax(states, roots, 3)).dataSync());
        expect((await tf.profile(chain)).kernelNames).toContain('MtpSequentialChain'); // the whole chain in one kernel
        const [one, other] = [await chain(), composite(() => Array.from(tf.tidy(() => cached.draftArgmax(states, roots, 3)).dataSync()))];
        expect(one).toEqual(other);
        expect(one.slice(6)).toEqual([-1, -1, -1]); // the broken row, throughout
        tf.dispose([states, roots]);
      } finally {
        cached.endDecode();
      }
      // a column that breaks after a finite one: module 2's bias overflows, so every row is −1 throughout
      const b2 = (model.getLayer('mtp_head') as unknown as { modules: Array<Record<string, { read(): tf.Tensor; write(t: tf.Tensor): void }>> }).modules[1]!['b2']!;
      const saved = tf.clone(b2.read());
      b2.write(tf.fill(saved.shape, Infinity));
      cached.beginDecode();
      try {
        const states = tf.randomNormal([2, 16], 0, 1.5, 'float32', 6) as tf.Tensor2D;
        const roots = tf.tensor1d([3, 7], 'int32');
        const drafted = (n: number) => Array.from(tf.tidy(() => cached.draftArgmax(states, roots, n)).dataSync());
        expect(drafted(1).every((id) => id >= 0)).toBe(true); // column 1 alone is finite
        expect(drafted(3)).toEqual([-1, -1, -1, -1, -1, -1]);
        expect(composite(() => drafted(3))).toEqual([-1, -1, -1, -1, -1, -1]);
        tf.dispose([states, roots]);
      } finally {
        cached.endDecode();
        b2.write(saved);
        saved.dispose();
      }
      expect(fused[0]).toEqual(plain[0]); // argmax ids
      expect(fused[1]).toEqual(plain[1]); // top-k ids
      expect(fused[4]).toEqual(plain[4]); // tree ids
      expect(fused[6]).toEqual(plain[6]); // tree parents
      expect(fused[7]).toEqual(plain[7]); // the verifier's argmax
      for (const i of [2, 3, 5]) fused[i]!.forEach((v, j) => expect(Math.abs(v - plain[i]![j]!)).toBeLessThan(1e-4));
      cached.dispose();
      model.dispose();
    }
  });
});

describe.each(BACKENDS)('sequential tree drafting in one kernel on %s', (backend) => {
  /** A model with sequential modules: random sizes, a draft vocabulary or none. */
  const shapes = fc.record({
    vocabSize: fc.integer({ min: 12, max: 48 }),
    hiddenSize: fc.constantFrom(8, 12, 16),
    numHeads: fc.integer({ min: 2, max: 5 }),
    headHidden: fc.constantFrom(4, 8, 12),
    subset: fc.boolean(),
    rows: fc.integer({ min: 1, max: 3 }),
    k: fc.integer({ min: 1, max: 4 }),
    depth: fc.integer({ min: 1, max: 4 }),
    seed: fc.integer({ min: 0, max: 1000 }),
    ties: fc.boolean(),
  });

  it('grows the candidates the composite headTree grows (ids, parents exactly; scores within 1e-5), ties and broken rows included, for random shapes, in one kernel and leaving no tensor', async () => {
    await use(backend);
    fc.assert(
      fc.property(shapes, (c) => {
        const base = createTransformer({ vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, numLayers: 1, numAttentionHeads: 2, maxLength: 16, mtpHeads: 1, positions: 'rotary', norm: 'rmsNorm', mlp: 'swiglu', seed: c.seed });
        const vocab = c.subset ? Array.from({ length: c.vocabSize }, (_, i) => i).filter((i) => (i * 7 + c.seed) % 3 !== 0) : null;
        const model = withSequentialHeads(base, c.numHeads, c.headHidden, vocab, c.seed + 1);
        const cached = new CachedTransformer(model);
        const Vd = vocab?.length ?? c.vocabSize;
        const k = Math.min(c.k, Vd);
        const depth = Math.min(c.depth, c.numHeads - 1);
        const embedding = model.getLayer('transformer') as unknown as { weights: Array<{ name: string; read(): tf.Tensor; write(t: tf.Tensor): void }> };
        const table = embedding.weights.find((w) => w.name.includes('embedding'))!;
        const saved = tf.clone(table.read());
        try {
          if (c.ties) {
            // token 2's embedding (so its unembedding column) copied into 5, 6 and 7: equal logits, ranked by the lower column
            const rows = tf.tidy(() => tf.concat([tf.slice(saved, [0, 0], [5, -1]), tf.tile(tf.slice(saved, [2, 0], [1, -1]), [3, 1]), tf.slice(saved, [8, 0], [-1, -1])]));
            table.write(rows);
            rows.dispose();
          }
          const run = () => {
            cached.beginDecode(); // prepared: the folded modules
            try {
              return tf.tidy(() => {
                const finite = tf.randomNormal([c.rows, c.hiddenSize], 0, 1.5, 'float32', c.seed + 2);
                const states = (c.rows > 1 ? tf.concat([tf.slice(finite, [0, 0], [c.rows - 1, -1]), tf.fill([1, c.hiddenSize], Number.NaN)]) : finite) as tf.Tensor2D; // the last of several rows broken
                const roots = tf.tensor1d(Array.from({ length: c.rows }, (_, r) => (r * 5 + c.seed) % c.vocabSize), 'int32');
                const tree = cached.headTree!(states, roots, depth, k);
                return { ids: Array.from(tree.ids.dataSync()), parents: Array.from(tree.parents.dataSync()), scores: Array.from(tree.scores.dataSync()) };
              });
            } finally {
              cached.endDecode();
            }
          };
          const before = tf.memory().numTensors;
          const fused = run();
          expect(tf.memory().numTensors).toBe(before);
          const plain = composite(run);
          const G = k + (depth - 1) * k * k;
          expect(fused.ids).toHaveLength(c.rows * G);
          for (let r = 0; r < c.rows; r++) {
            const at = (a: number[]) => a.slice(r * G, (r + 1) * G);
            if (c.rows > 1 && r === c.rows - 1) {
              expect(at(fused.ids)).toEqual(Array<number>(G).fill(-1)); // the broken row, throughout
              expect(at(plain.ids)).toEqual(Array<number>(G).fill(-1));
              continue;
            }
            expect(at(fused.ids)).toEqual(at(plain.ids));
            expect(at(fused.parents)).toEqual(at(plain.parents));
            at(fused.scores).forEach((v, j) => expect(Math.abs(v - at(plain.scores)[j]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(v))));
          }
        } finally {
          table.write(saved);
          saved.dispose();
          cached.dispose();
          model.dispose();
        }
      }),
      { numRuns: 16 },
    );
  });

  it('is one kernel where the composite growth dispatches dozens', async () => {
    await use(backend);
    const base = createTransformer({ vocabSize: 40, hiddenSize: 16, numLayers: 1, numAttentionHeads: 2, maxLength: 32, mtpHeads: 1, positions: 'rotary', norm: 'rmsNorm', mlp: 'swiglu', seed: 4 });
    const model = withSequentialHeads(base, 4, 12, null, 9);
    const cached = new CachedTransformer(model);
    cached.beginDecode();
    try {
      const states = tf.randomNormal([1, 16], 0, 1.5, 'float32', 2) as tf.Tensor2D;
      const roots = tf.tensor1d([7], 'int32');
      const grow = async () => tf.dispose(Object.values(cached.headTree!(states, roots, 3, 4)));
      const fused = [...(await tf.profile(grow)).kernelNames]; // copied: tf.profile hands every call the same record
      const plain = [...(await composite(() => tf.profile(grow))).kernelNames];
      expect(fused).toEqual(['MtpSequentialTree']);
      expect(plain.length).toBeGreaterThan(20); // distinct kernel names alone
      tf.dispose([states, roots]);
    } finally {
      cached.endDecode();
      cached.dispose();
      model.dispose();
    }
  });
});

describe('WebAssembly SIMD loops (wasm backend)', () => {
  it('softmax: exp(s − max) in place within 1e-5 (relative) and their sum, −Infinity padding weighing nothing', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const loops = simdLoops(memory)!;
    const f = new Float32Array(memory.buffer);
    for (const n of [4, 8, 100, 128]) {
      const values = Array.from({ length: n }, (_, i) => Math.sin(i * 7.3) * 30);
      values[n - 1] = -Infinity; // padding
      f.set(values, 16);
      const sum = loops.softmax(64, n);
      const max = Math.max(...values);
      let want = 0;
      values.forEach((v, i) => {
        const e = Math.exp(v - max);
        want += e;
        if (e > 1e-30) expect(Math.abs(f[16 + i]! - e)).toBeLessThanOrEqual(1e-5 * e);
        else expect(f[16 + i]!).toBeLessThan(2e-38);
      });
      expect(Math.abs(sum - want)).toBeLessThanOrEqual(1e-6 * want);
    }
  });

  it('scores and weighted sums equal plain sums, over every tail length', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const loops = simdLoops(memory);
    expect(loops).not.toBeNull(); // Node has WebAssembly SIMD
    const f = new Float32Array(memory.buffer);
    for (const [hs, cap, n] of [[8, 37, 33], [3, 9, 4], [5, 12, 7], [1, 5, 1], [64, 20, 18]] as const) {
      const [q, k, out, p] = [0, 64, 64 + hs * cap, 128 + hs * cap];
      for (let i = 0; i < 128 + hs * cap + 128; i++) f[i] = Math.sin(i * 12.9898) * 2;
      loops!.scores(4 * q, 4 * k, 4 * out, n, hs, 4 * cap);
      for (let j = 0; j < n; j++) {
        let want = 0;
        for (let d = 0; d < hs; d++) want += f[q + d]! * f[k + d * cap + j]!;
        expect(Math.abs(f[out + j]! - want)).toBeLessThan(1e-4 * (1 + Math.abs(want)));
      }
      loops!.weighted(4 * p, 4 * k, 4 * out, n, hs, 4 * cap);
      for (let d = 0; d < hs; d++) {
        let want = 0;
        for (let j = 0; j < n; j++) want += f[p + j]! * f[k + d * cap + j]!;
        expect(Math.abs(f[out + d]! - want)).toBeLessThan(1e-4 * (1 + Math.abs(want)));
      }
    }
  });

  it('matmul: y = b + x·W for every row count (four-row passes and the rest) and output tail, with and without a bias', () => {
    const memory = new WebAssembly.Memory({ initial: 2 });
    const loops = simdLoops(memory)!;
    const f = new Float32Array(memory.buffer);
    for (const [rows, inDim, outDim] of [[1, 3, 1], [2, 5, 4], [3, 7, 9], [4, 8, 12], [5, 6, 17], [7, 9, 3], [9, 4, 20]] as const) {
      for (const withBias of [false, true]) {
        const [x, w, b, y] = [64, 64 + rows * inDim, 64 + rows * inDim + inDim * outDim, 128 + rows * inDim + inDim * outDim + outDim];
        for (let i = 0; i < y; i++) f[i] = Math.sin(i * 3.7) * 2;
        f.fill(Number.NaN, y, y + rows * outDim + 8); // every output written, nothing past it
        loops.matmul(4 * x, 4 * w, withBias ? 4 * b : 0, 4 * y, rows, inDim, outDim);
        for (let t = 0; t < rows; t++) {
          for (let o = 0; o < outDim; o++) {
            let want = withBias ? f[b + o]! : 0;
            for (let i = 0; i < inDim; i++) want += f[x + t * inDim + i]! * f[w + i * outDim + o]!;
            expect(Math.abs(f[y + t * outDim + o]! - want), `${rows}×${inDim}×${outDim} [${t}, ${o}]`).toBeLessThan(1e-5 * (1 + Math.abs(want)));
          }
        }
        expect(Number.isNaN(f[y + rows * outDim]!)).toBe(true);
      }
    }
  });

  it('swiglu: silu(gate) · up per row, to float32 precision, over large arguments of both signs', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const loops = simdLoops(memory)!;
    const f = new Float32Array(memory.buffer);
    const [rows, F] = [3, 8];
    const gu = Array.from({ length: rows * 2 * F }, (_, i) => Math.sin(i * 1.3) * (i % 5 === 0 ? 120 : 6));
    f.set(gu, 16);
    loops.swiglu(64, 4 * 200, rows, F);
    for (let t = 0; t < rows; t++) {
      for (let j = 0; j < F; j++) {
        const g = gu[t * 2 * F + j]!;
        const want = (g / (1 + Math.exp(-g))) * gu[t * 2 * F + F + j]!;
        expect(Math.abs(f[200 + t * F + j]! - want)).toBeLessThanOrEqual(1e-6 * Math.abs(want) + 1e-30);
      }
    }
  });

  it('attend: one head\'s softmax-weighted values over n positions, a mask over the last m hiding positions', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const loops = simdLoops(memory)!;
    const f = new Float32Array(memory.buffer);
    for (const [hs, cap, n, hidden] of [[8, 37, 33, [31]], [3, 9, 5, []], [5, 12, 7, [4, 5]], [1, 6, 1, []]] as const) {
      const [q, k, v, out, s, mask] = [0, 16, 16 + hs * cap, 32 + 2 * hs * cap, 48 + 2 * hs * cap, 96 + 2 * hs * cap + cap];
      for (let i = 0; i < mask; i++) f[i] = Math.sin(i * 12.9898) * 2;
      const m = hidden.length > 0 ? 3 : 0;
      for (let j = 0; j < m; j++) f[mask + j] = (hidden as readonly number[]).includes(n - m + j) ? -Infinity : 0;
      loops.attend(4 * q, 4 * k, 4 * v, 4 * out, 4 * s, n, hs, 4 * cap, m > 0 ? 4 * mask : 0, m);
      const seen = Array.from({ length: n }, (_, j) => j).filter((j) => !(hidden as readonly number[]).includes(j));
      const score = seen.map((j) => Array.from({ length: hs }, (_, d) => f[q + d]! * f[k + d * cap + j]!).reduce((a, c) => a + c, 0));
      const max = Math.max(...score);
      const p = score.map((x) => Math.exp(x - max));
      const total = p.reduce((a, c) => a + c, 0);
      for (let d = 0; d < hs; d++) {
        const want = seen.reduce((acc, j, i) => acc + (p[i]! / total) * f[v + d * cap + j]!, 0);
        expect(Math.abs(f[out + d]! - want), `hs ${hs} n ${n} d ${d}`).toBeLessThan(1e-5 * (1 + Math.abs(want)));
      }
    }
  });

  it('argmax: the first largest column, declining (−1) rows with NaN, ±Infinity or logits whose sum could overflow', () => {
    const memory = new WebAssembly.Memory({ initial: 2 });
    const loops = simdLoops(memory)!;
    const f = new Float32Array(memory.buffer);
    const plain = (row: number[]) => {
      const out = new Int32Array(1);
      checkedArgmaxRows(Float32Array.from(row), row.length, out);
      return out[0]!;
    };
    const rows: number[][] = [
      Array.from({ length: 4 }, (_, i) => -i), // the first lane
      Array.from({ length: 8 }, (_, i) => (i === 6 ? 3 : 1)), // a later lane
      Array.from({ length: 12 }, (_, i) => (i === 3 || i === 9 || i === 5 ? 2 : 0)), // ties across lanes and groups: the first
      Array.from({ length: 12 }, (_, i) => (i === 1 || i === 5 || i === 11 ? 2 : 0)), // ties within one lane: its first
      Array.from({ length: 4000 }, (_, i) => Math.sin(i * 7.77) * 30),
      Array.from({ length: 8 }, () => -Infinity).map((v, i) => (i === 2 ? -5 : v)), // −Infinity: declined
      [1, Number.NaN, 3, 0], // NaN: declined
      [1, 2, Infinity, 0], // +Infinity: declined
      [1e38, 1, 2, 1e38], // large (the bound for 4 columns is 8.5e37): declined, the exact loop decides
    ];
    rows.forEach((row, n) => {
      f.set(row, 16);
      const got = loops.argmax(64, row.length, finiteRowBound(row.length));
      if (n >= 5) expect(got, `row ${n}`).toBe(-1);
      else expect(got, `row ${n}`).toBe(plain(row));
    });
  });

  it('whole forwards through the SIMD loops equal those through the JS loops', async () => {
    await use('wasm');
    fc.assert(
      fc.property(architectures, (config) => {
        const model = createTransformer(config);
        try {
          const simd = runScript(model, config.seed!);
          setSimdAttention(false);
          const js = runScript(model, config.seed!);
          setSimdAttention(true);
          simd.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - js[i]![j]!)).toBeLessThan(2e-4)));
        } finally {
          setSimdAttention(true);
          model.dispose();
        }
      }),
      { numRuns: 6 },
    );
  });
});

describe('dispatches and memory', () => {
  it('a greedy token of a stories260K-shaped model takes at most a third of the composite path’s kernels', async () => {
    await use('wasm');
    // stories260K's shape (D 64, 5 layers, 8 heads, 4 key/value heads, F 172, V 512), seeded random weights
    const model = createTransformer({ vocabSize: 512, maxLength: 512, hiddenSize: 64, numLayers: 5, numAttentionHeads: 8, numKeyValueHeads: 4, intermediateSize: 172, norm: 'rmsNorm', positions: 'rotary', mlp: 'swiglu', useBias: false, mtpHeads: 1, seed: 1 });
    const cached = new CachedTransformer(model);
    const kernelsPerToken = async (): Promise<number> => {
      const tokens = 60;
      const engine = tf.engine() as unknown as { runKernelFunc: (p: unknown) => unknown };
      const original = engine.runKernelFunc;
      let count = 0;
      engine.runKernelFunc = function (this: unknown, p: unknown) {
        count++;
        return original.call(this, p);
      };
      try {
        await greedyDecode(cached, [1, 2], { maxNewTokens: tokens, stopTokens: [] });
      } finally {
        engine.runKernelFunc = original;
      }
      return count / tokens;
    };
    const fused = await kernelsPerToken();
    setFusedKernels(false);
    const plain = await kernelsPerToken();
    setFusedKernels(true);
    expect(fused).toBeLessThanOrEqual(plain / 3);
    expect(fused).toBeLessThan(60);
    cached.dispose();
    model.dispose();
  });

  it('2,000 tokens: the tensor count stays flat from step to step (the static cache grows in place, by doubling)', async () => {
    await use('wasm');
    const model = createTransformer({ vocabSize: 50, maxLength: 2100, hiddenSize: 8, numLayers: 1, numAttentionHeads: 2, norm: 'rmsNorm', positions: 'rotary', mlp: 'swiglu', mtpHeads: 2, seed: 5 });
    const cached = new CachedTransformer(model);
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    await greedyDecode(cached, [1], { maxNewTokens: 2000, stopTokens: [], onToken: () => void counts.push(tf.memory().numTensors) });
    expect(counts.length).toBe(2000);
    expect(new Set(counts.slice(1)).size).toBe(1); // after the first step (which makes the cache and weight views), flat
    expect(tf.memory().numTensors).toBe(before);
    cached.dispose();
    model.dispose();
  });

  it('a cache made by the fused kernels refuses a forward on another backend, naming both, until truncated to 0', async () => {
    await use('wasm');
    const model = createTransformer({ vocabSize: 20, maxLength: 16, hiddenSize: 8, numLayers: 1, numAttentionHeads: 2, positions: 'rotary', norm: 'rmsNorm', mtpHeads: 1, seed: 2 });
    const cached = new CachedTransformer(model);
    tf.dispose(cached.forward([1, 2, 3]));
    await use('cpu');
    await expectThrowNoLeak(() => cached.forward([4]), "CachedTransformer.forward: the backend changed from 'wasm' to 'cpu' while 3 positions were cached by the fused kernels; call truncate(0) first to decode on another backend.");
    cached.truncate(0);
    tf.dispose(cached.forward([1, 2, 3])); // starts over on cpu
    expect(cached.length).toBe(3);
    cached.dispose();
    model.dispose();
  });

  it('the softmax exp is within 1e-8 of Math.exp (relative) on x ≤ 0, and 0 below float32', () => {
    for (let i = 0; i <= 20000; i++) {
      const x = -i / 200; // 0 … −100
      const want = Math.exp(x);
      expect(Math.abs(expNonPositive(x) - want)).toBeLessThanOrEqual(1e-8 * want);
    }
    expect(expNonPositive(-104)).toBe(0);
    expect(expNonPositive(0)).toBe(1);
  });

  it('setFusedKernels checks its argument, and neither switching nor refusing leaves a tensor', async () => {
    await expectNoLeak(() => {
      setFusedKernels(false);
      setFusedKernels(true);
    });
    await expectThrowNoLeak(() => setFusedKernels('no' as unknown as boolean), 'setFusedKernels: on must be a boolean, but got "no".');
    expect(fusedKernelsAvailable()).toBe(tf.getBackend() === 'cpu' || tf.getBackend() === 'wasm'); // a refused call changes nothing
  });

  it('StaticKVCache doubles its capacity, keeps its rows, and frees everything at 0', async () => {
    await use('cpu');
    const before = tf.memory().numTensors;
    const cache = new StaticKVCache(2, 3, 1000);
    cache.reserve(5);
    expect(cache.rows).toBe(128);
    const view = () => Array.from(cache.block(1).keys.dataSync());
    tf.tidy(() => {
      const keys = cache.block(1).keys;
      (tf.backend() as unknown as { data: { get(id: unknown): { values: Float32Array } } }).data.get(keys.dataId).values.set([1, 2, 3], 0); // lane 0, positions 0…2
    });
    cache.commit(5);
    cache.reserve(300);
    expect(cache.rows).toBe(512);
    expect(view().slice(0, 3)).toEqual([1, 2, 3]);
    cache.keepLast(5, [0, 2]); // position 2 moves to 1
    expect(cache.length).toBe(2);
    expect(view().slice(0, 2)).toEqual([1, 3]);
    expect(tf.memory().numTensors).toBe(before + 4);
    cache.truncate(0);
    expect(tf.memory().numTensors).toBe(before);
  });
});
