/**
 * The tip passes of the heads (`draftArgmax`, `draftTopK`, `draftLogits`) for every head kind
 * (identity, linear, residual, lowRank, mlp parallel heads; sequential modules), prepared and
 * unprepared, with and without a draft vocabulary: argmax of `draftLogits` = `draftArgmax` =
 * `draftTopK`'s rank 0, values equal a plain reference from the layer's own weights (host float64
 * for parallel heads, the chain step by step with `moduleState` for sequential modules), ids
 * always inside the draft vocabulary (a property over random subsets, some excluding the most
 * likely tokens), masked entries exactly `MASKED_LOGIT`, roots used by sequential modules only,
 * the −1 rule, a kernel spy for which rows and offsets are computed, and no leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MASKED_LOGIT } from '../../src/internal/draft_vocab.js';
import type { MultiTokenHead, OffsetHeadKind } from '../../src/layers/index.js';
import type { InferenceHead } from '../../src/layers/inference_head.js';
import type { LightweightOffsetHead } from '../../src/layers/offset_head.js';
import type { SequentialMtpHead } from '../../src/layers/sequential_mtp.js';
import { withSequentialHeads } from '../../src/models/draft_heads.js';
import { createTransformer } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { randomizeWeights, tinyModel } from '../helpers/layers.js';
import { expectNoLeak } from '../helpers/leak.js';

const V = 29;
const D = 16;
const M = 5;
const K = 4;
/** A draft vocabulary of 9 ids, given out of order (stored increasing). */
const SUBSET = [27, 3, 0, 11, 14, 8, 20, 21, 5];

type Head = (MultiTokenHead | SequentialMtpHead) & InferenceHead;

interface Subject {
  title: string;
  head: Head;
  model: LayersModel;
  sequential: boolean;
}

/** A parallel head of `kind` (offset 0 linear, so it has weights a spy can recognise) on a tiny model, random weights. */
function parallelSubject(kind: OffsetHeadKind, useBias: boolean, seed: number, activation?: 'relu'): Subject {
  const { model, head } = tinyModel({ numHeads: K, vocabSize: V, hidden: D, headKind: kind, offset0Kind: 'linear', rank: 3, headHiddenSize: 12, useBias, seed, ...(activation ? { activation } : {}) });
  randomizeWeights(head, seed, 0.5);
  return { title: `${kind}${useBias ? ', bias' : ''}${activation ? `, ${activation}` : ''}`, head: head as Head, model, sequential: false };
}

/** Sequential modules on a one-block transformer, random module weights and embedding. */
function sequentialSubject(seed: number): Subject {
  const base = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 16, mtpHeads: 1, seed });
  const model = withSequentialHeads(base, K, 8);
  const head = model.getLayer('mtp_head') as unknown as SequentialMtpHead;
  randomizeWeights({ weights: head.weights }, seed, 0.4);
  randomizeWeights({ weights: [model.getLayer('transformer').weights[0]!] }, seed + 40, 0.5); // the tied embedding
  return { title: 'sequential', head: head as Head, model, sequential: true };
}

function subjects(): Subject[] {
  return [
    ...(['identity', 'linear', 'residual', 'lowRank', 'mlp'] as OffsetHeadKind[]).map((kind, i) => parallelSubject(kind, i % 2 === 1, 3 + i)),
    parallelSubject('mlp', true, 11, 'relu'),
    sequentialSubject(7),
  ];
}

/** Host float64 helpers. */
const swish = (x: number) => x / (1 + Math.exp(-x));
const relu = (x: number) => Math.max(0, x);
function matmul(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0]!.map((_, c) => row.reduce((s, x, i) => s + x * b[i]![c]!, 0)));
}
const addRow = (a: number[][], b: number[]) => a.map((row) => row.map((x, i) => x + b[i]!));
const addAll = (a: number[][], b: number[][]) => a.map((row, r) => row.map((x, i) => x + b[r]![i]!));
const map = (a: number[][], f: (x: number) => number) => a.map((row) => row.map(f));

/** An offset head's state, from its own weights: the table of offset_head.ts. */
function refState(h: LightweightOffsetHead, x: number[][]): number[][] {
  const w = (name: string) => h.weightValue(name).arraySync() as number[][] & number[];
  const act = (a: number[][]) => map(a, h.activation === 'relu' ? relu : swish);
  if (h.kind === 'identity') return x;
  if (h.kind === 'linear') return addRow(matmul(x, w('kernel')), w('bias'));
  if (h.kind === 'residual') return addAll(x, act(addRow(matmul(x, w('kernel')), w('bias'))));
  if (h.kind === 'lowRank') return addAll(x, matmul(act(matmul(x, w('down'))), w('up')));
  return addAll(x, addRow(matmul(act(addRow(matmul(x, w('w1')), w('b1'))), w('w2')), w('b2')));
}

/** Host argmax over `ids` of `row` (the lowest id among equal maxima). */
function argmaxOver(row: ArrayLike<number>, ids: readonly number[]): number {
  let best = ids[0]!;
  for (const t of ids) if (row[t]! > row[best]!) best = t;
  return best;
}

const ALL = Array.from({ length: V }, (_, t) => t);

/**
 * The reference draft logits `[m][n][V]` (whole-vocabulary values; the caller compares the ids of
 * the draft vocabulary) of offsets 1…n at `x`: parallel heads from the weights on the host, the
 * sequential chain from `roots` step by step (each module fed the previous column's argmax within `vocab`).
 */
function reference(s: Subject, x: tf.Tensor2D, roots: number[], n: number, vocab: readonly number[]): number[][][] {
  const out: number[][][] = Array.from({ length: x.shape[0] }, () => []);
  if (!s.sequential) {
    const head = s.head as MultiTokenHead;
    const e = head.unembedding.matrix().arraySync() as number[][]; // [V, D]
    const bias = head.unembedding.biasValue()?.arraySync() as number[] | undefined;
    const xs = x.arraySync() as number[][];
    for (let j = 1; j <= n; j++) {
      const logits = matmul(refState(head.offsetHeads[j]!, xs), e[0]!.map((_, c) => e.map((r) => r[c]!))); // [m, V]
      logits.forEach((row, r) => out[r]!.push(bias ? row.map((v, i) => v + bias[i]!) : row));
    }
    return out;
  }
  const head = s.head as SequentialMtpHead;
  tf.tidy(() => {
    const e = head.unembedding.matrix(); // [V, D]
    let state = x;
    let tokens = roots;
    for (let c = 1; c <= n; c++) {
      state = head.moduleState(c, state, tf.gather(e, tf.tensor1d(tokens, 'int32')) as tf.Tensor2D);
      const logits = tf.matMul(state, e, false, true).arraySync() as number[][]; // [m, V]
      logits.forEach((row, r) => out[r]!.push(row));
      tokens = logits.map((row) => argmaxOver(row, vocab));
    }
  });
  return out;
}

/** Runs `fn` with the head prepared (released after, also on a throw) or not. */
function withPrepared<T>(head: Head, prepared: boolean, fn: () => T): T {
  if (prepared) head.prepare();
  try {
    return fn();
  } finally {
    if (prepared) head.release();
  }
}

/** Reads a tensor back and disposes it. */
function read<T>(t: tf.Tensor): T {
  const v = t.arraySync() as T;
  t.dispose();
  return v;
}

/** Checks the three passes against each other and the reference; returns the argmax table. */
async function checkPasses(s: Subject, x: tf.Tensor2D, rootIds: number[], n: number, prepared: boolean, vocab: readonly number[]): Promise<number[][]> {
  const head = s.head;
  const roots = tf.tensor1d(rootIds, 'int32');
  const kTop = Math.min(3, vocab.length);
  const inVocab = new Set(vocab);
  const { ids, top, logits } = await expectNoLeak(() =>
    withPrepared(head, prepared, () => ({
      ids: read<number[][]>(head.draftArgmax(x, roots, n)),
      top: ((r) => ({ ids: read<number[][][]>(r.ids), logProbs: read<number[][][]>(r.logProbs) }))(head.draftTopK(x, roots, n, kTop)),
      logits: read<number[][][]>(head.draftLogits(x, roots, n)),
    })),
  );
  const want = reference(s, x, rootIds, n, vocab);
  roots.dispose();
  for (let r = 0; r < x.shape[0]; r++) {
    for (let c = 0; c < n; c++) {
      const row = logits[r]![c]!;
      expect(ids[r]![c]).toBe(argmaxOver(row, ALL)); // argmax of draftLogits, whole vocabulary
      expect(inVocab.has(ids[r]![c]!)).toBe(true);
      expect(top.ids[r]![c]![0]).toBe(ids[r]![c]); // rank 0 is draftArgmax
      for (const t of top.ids[r]![c]!) expect(inVocab.has(t)).toBe(true);
      const lse = Math.log(vocab.reduce((a, t) => a + Math.exp(row[t]! - row[ids[r]![c]!]!), 0)) + row[ids[r]![c]!]!;
      top.ids[r]![c]!.forEach((t, i) => {
        expect(top.logProbs[r]![c]![i]).toBeCloseTo(row[t]! - lse, 4);
        if (i > 0) expect(top.logProbs[r]![c]![i]!).toBeLessThanOrEqual(top.logProbs[r]![c]![i - 1]!);
      });
      for (let t = 0; t < V; t++) {
        if (inVocab.has(t)) expect(Math.abs(row[t]! - want[r]![c]![t]!)).toBeLessThan(1e-4 * (1 + Math.abs(want[r]![c]![t]!)));
        else expect(row[t]).toBe(MASKED_LOGIT);
      }
    }
  }
  return ids;
}

describe('tip passes: draftArgmax, draftTopK, draftLogits (cpu)', () => {
  let all: Subject[];
  let x: tf.Tensor2D;
  beforeAll(async () => {
    await useCpu();
    all = subjects();
    x = tf.randomNormal([M, D], 0, 1, 'float32', 5) as tf.Tensor2D;
  });
  afterAll(() => {
    x.dispose();
    for (const s of all) s.model.dispose();
  });

  for (const vocabName of ['whole vocabulary', 'a draft vocabulary'] as const) {
    for (const prepared of [false, true]) {
      it(`every head kind, ${prepared ? 'prepared' : 'unprepared'}, ${vocabName}: the three passes agree and equal the reference; ids in the vocabulary`, async () => {
        for (const s of all) {
          s.head.setDraftVocab(vocabName === 'whole vocabulary' ? null : SUBSET);
          const vocab = s.head.draftVocab ?? ALL;
          if (vocabName !== 'whole vocabulary') expect(vocab).toEqual([...SUBSET].sort((a, b) => a - b));
          for (const n of [1, K - 1]) await checkPasses(s, x, [1, 4, 9, 16, 25], n, prepared, vocab);
          s.head.setDraftVocab(null);
        }
      });
    }
  }

  it('prepared and unprepared passes give the same tokens', async () => {
    for (const s of all) {
      s.head.setDraftVocab(SUBSET);
      const roots = tf.tensor1d([2, 7, 12, 17, 22], 'int32');
      const [a, b] = [false, true].map((p) => withPrepared(s.head, p, () => read<number[][]>(s.head.draftArgmax(x, roots, K - 1))));
      expect(b, s.title).toEqual(a);
      roots.dispose();
      s.head.setDraftVocab(null);
    }
  });

  it('roots condition the sequential chain and are ignored by parallel heads', async () => {
    for (const s of all) {
      const a = [0, 1, 2, 3, 4];
      const b = [28, 27, 26, 25, 24];
      const run = (rootIds: number[]) => {
        const roots = tf.tensor1d(rootIds, 'int32');
        const out = { ids: read<number[][]>(s.head.draftArgmax(x, roots, K - 1)), logits: read<number[][][]>(s.head.draftLogits(x, roots, K - 1)) };
        roots.dispose();
        return out;
      };
      const [ra, rb] = [run(a), run(b)];
      if (s.sequential) {
        expect(ra.logits).not.toEqual(rb.logits);
        expect(ra.ids).not.toEqual(rb.ids);
      } else {
        expect(rb, s.title).toEqual(ra);
      }
    }
  });

  it('headArgmax’s draft columns are draftArgmax at the same rows (sequential: rooted at offset 0’s token), with a draft vocabulary', async () => {
    for (const s of all) {
      s.head.setDraftVocab(SUBSET);
      for (const prepared of [false, true]) {
        await expectNoLeak(() =>
          withPrepared(s.head, prepared, () => {
            const chain = read<number[][]>(s.head.headArgmax(x, K)); // [m, K]
            const roots = tf.tensor1d(chain.map((r) => r[0]!), 'int32');
            const tip = read<number[][]>(s.head.draftArgmax(x, roots, K - 1));
            roots.dispose();
            expect(tip, s.title).toEqual(chain.map((r) => r.slice(1)));
          }),
        );
      }
      s.head.setDraftVocab(null);
    }
  });

  it('property: over random draft vocabularies (some without the most likely tokens) every id is inside, argmax = rank 0 = argmax of draftLogits, masks exact', async () => {
    const picked = [all.find((s) => s.title === 'mlp')!, all.find((s) => s.sequential)!];
    // the most likely tokens of the draft offsets over the whole vocabulary, to exclude
    const likely = picked.map((s) => new Set(read<number[][]>(s.head.headArgmax(x, K)).flatMap((r) => r.slice(1))));
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: picked.length - 1 }),
        fc.uniqueArray(fc.integer({ min: 0, max: V - 1 }), { minLength: 1, maxLength: V }),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: M, maxLength: M }),
        async (which, ids, withoutLikely, prepared, rootIds) => {
          const s = picked[which]!;
          let vocab = withoutLikely ? ids.filter((t) => !likely[which]!.has(t)) : ids;
          if (vocab.length === 0) vocab = [ALL.find((t) => !likely[which]!.has(t))!];
          s.head.setDraftVocab(vocab);
          try {
            const table = await checkPasses(s, x, rootIds, K - 1, prepared, s.head.draftVocab!);
            if (withoutLikely) for (const row of table) for (const t of row) expect(likely[which]!.has(t)).toBe(false);
          } finally {
            s.head.setDraftVocab(null);
          }
        },
      ),
      { numRuns: 30, seed: 42 },
    );
  });

  it('a row whose draft logits hold NaN or ±Infinity is −1 throughout; the other rows are drafted', async () => {
    for (const s of all) {
      s.head.setDraftVocab(SUBSET);
      for (const value of [NaN, Infinity, -Infinity]) {
        const bad = tf.tidy(() => tf.concat([tf.slice(x, [0, 0], [2, D]), tf.fill([1, D], value), tf.slice(x, [3, 0], [2, D])]) as tf.Tensor2D); // row 2 broken
        const roots = tf.tensor1d([1, 2, 3, 4, 5], 'int32');
        for (const prepared of [false, true]) {
          const { ids, top } = await expectNoLeak(() =>
            withPrepared(s.head, prepared, () => {
              const ranked = s.head.draftTopK(bad, roots, K - 1, 2);
              ranked.logProbs.dispose();
              return { ids: read<number[][]>(s.head.draftArgmax(bad, roots, K - 1)), top: read<number[][][]>(ranked.ids) };
            }),
          );
          expect(ids[2], `${s.title} ${value}`).toEqual([-1, -1, -1]);
          expect(top[2]).toEqual([[-1, -1], [-1, -1], [-1, -1]]);
          for (const r of [0, 1, 3, 4]) for (const t of ids[r]!) expect(SUBSET).toContain(t);
        }
        tf.dispose([bad, roots]);
      }
      s.head.setDraftVocab(null);
    }
  });

  it('parallel heads: one broken draft offset makes draftArgmax −1 across the row, headArgmax −1 in that column only', async () => {
    const { model, head } = tinyModel({ numHeads: K, vocabSize: V, hidden: D, headKind: 'residual', seed: 5 });
    randomizeWeights(head, 5, 0.5);
    const kernel = head.offsetHeads[2]!.weights[0]!; // offset 2's kernel [D, D]
    const poisoned = tf.tidy(() => tf.where(tf.equal(tf.reshape(tf.range(0, D * D), [D, D]), 5), tf.fill([D, D], NaN), kernel.read()));
    kernel.write(poisoned);
    poisoned.dispose();
    const roots = tf.zeros([M], 'int32') as tf.Tensor1D;
    for (const prepared of [false, true]) {
      const { tip, chain } = withPrepared(head as Head, prepared, () => ({ tip: read<number[][]>(head.draftArgmax(x, roots, K - 1)), chain: read<number[][]>(head.headArgmax(x, K)) }));
      for (const row of tip) expect(row).toEqual([-1, -1, -1]);
      for (const row of chain) {
        expect(row[2]).toBe(-1);
        expect(row[1]).toBeGreaterThanOrEqual(0);
      }
    }
    roots.dispose();
    model.dispose();
  });
});

/** Wraps the cpu `BatchMatMul` kernel to record every call's shapes and right-hand values; `restore` puts it back. */
function spyMatMul(): { calls: Array<{ a: number[]; b: number[]; bValues: Float32Array }>; restore(): void } {
  // every matMul on cpu: the op's BatchMatMul, and _FusedMatMul, which the fused kernels call (with a batch axis of 1)
  const configs = ['BatchMatMul', '_FusedMatMul'].map((name) => tf.getKernel(name, 'cpu')!);
  const calls: Array<{ a: number[]; b: number[]; bValues: Float32Array }> = [];
  const matrix = (shape: readonly number[]) => (shape.length === 3 && shape[0] === 1 ? shape.slice(1) : [...shape]);
  for (const config of configs) {
    tf.unregisterKernel(config.kernelName, 'cpu');
    tf.registerKernel({
      ...config,
      kernelFunc: (args) => {
        const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
        const backend = args.backend as unknown as { readSync(id: unknown): Float32Array };
        calls.push({ a: matrix(a.shape), b: matrix(b.shape), bValues: backend.readSync(b.dataId) });
        return config.kernelFunc(args);
      },
    });
  }
  return {
    calls,
    restore() {
      for (const config of configs) {
        tf.unregisterKernel(config.kernelName, 'cpu');
        tf.registerKernel(config);
      }
    },
  };
}

describe('tip passes compute offsets 1…n at the given rows only, never offset 0 (kernel spy, cpu)', () => {
  beforeAll(useCpu);
  const MARK = 7.75; // offset 0's kernel, a value no other weight has

  for (const vocab of [null, SUBSET]) {
    for (const prepared of [false, true]) {
      it(`parallel heads, ${prepared ? 'prepared' : 'unprepared'}, ${vocab ? 'a draft vocabulary' : 'whole vocabulary'}`, async () => {
        const s = parallelSubject('linear', true, 9);
        s.head.setDraftVocab(vocab);
        const w0 = (s.head as MultiTokenHead).offsetHeads[0]!.weights[0]!; // offset 0's kernel [D, D]
        const marked = tf.fill([D, D], MARK);
        w0.write(marked);
        marked.dispose();
        const Vd = vocab?.length ?? V;
        const x = tf.randomNormal([2, D], 0, 1, 'float32', 1) as tf.Tensor2D; // the tip rows: 2
        const roots = tf.tensor1d([3, 4], 'int32');
        withPrepared(s.head, prepared, () => {
          for (const n of [1, 2, 3]) {
            for (const pass of ['argmax', 'topK', 'logits'] as const) {
              const spy = spyMatMul();
              try {
                const out = pass === 'argmax' ? s.head.draftArgmax(x, roots, n) : pass === 'topK' ? s.head.draftTopK(x, roots, n, 2) : s.head.draftLogits(x, roots, n);
                tf.dispose(out as unknown as tf.TensorContainer);
              } finally {
                spy.restore();
              }
              const unembed = spy.calls.filter((c) => c.b.includes(Vd) || c.b.includes(V));
              expect(unembed).toHaveLength(1); // one projection of every offset
              expect(unembed[0]!.a).toEqual([2 * n, D]); // n offsets × the 2 rows given
              expect(unembed[0]!.b).toEqual(prepared ? [D, Vd] : [Vd, D]); // the draft matrix, never the whole one
              const kernels = spy.calls.filter((c) => !unembed.includes(c));
              expect(kernels.map((c) => c.a)).toEqual(prepared ? [[2, D]] : Array.from({ length: n }, () => [2, D])); // offsets 1…n at the 2 rows: one stacked matMul, or one per head
              expect(kernels.reduce((cols, c) => cols + c.b[1]!, 0)).toBe(n * D); // n offsets' kernels
              for (const c of spy.calls) expect(c.bValues.includes(MARK)).toBe(false); // offset 0's kernel never
            }
          }
        });
        tf.dispose([x, roots]);
        s.model.dispose();
      });
    }
  }

  for (const vocab of [null, SUBSET]) {
    for (const prepared of [false, true]) {
      it(`sequential modules, ${prepared ? 'prepared' : 'unprepared'}, ${vocab ? 'a draft vocabulary' : 'whole vocabulary'}`, async () => {
        const s = sequentialSubject(3);
        s.head.setDraftVocab(vocab);
        const Vd = vocab?.length ?? V;
        const x = tf.randomNormal([2, D], 0, 1, 'float32', 1) as tf.Tensor2D;
        const roots = tf.tensor1d([3, 4], 'int32');
        withPrepared(s.head, prepared, () => {
          for (const n of [1, 3]) {
            for (const pass of ['argmax', 'topK', 'logits'] as const) {
              const spy = spyMatMul();
              try {
                const out = pass === 'argmax' ? s.head.draftArgmax(x, roots, n) : pass === 'topK' ? s.head.draftTopK(x, roots, n, 2) : s.head.draftLogits(x, roots, n);
                tf.dispose(out as unknown as tf.TensorContainer);
              } finally {
                spy.restore();
              }
              for (const c of spy.calls) expect(c.a[0]).toBe(2); // the 2 rows given, never more
              const unembed = spy.calls.filter((c) => c.b.includes(Vd) || c.b.includes(V));
              expect(unembed).toHaveLength(n); // modules 1…n, no offset-0 projection of the states
              for (const c of unembed) expect(c.b).toEqual(prepared ? [D, Vd] : [Vd, D]);
              // per module: the projection (prepared: its state and token halves, the norms folded in), w1, w2, and the unembedding
              expect(spy.calls).toHaveLength((prepared ? 5 : 4) * n);
            }
          }
        });
        tf.dispose([x, roots]);
        s.model.dispose();
      });
    }
  }
});
