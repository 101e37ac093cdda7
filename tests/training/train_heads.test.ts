/**
 * `trainDraftHeads` on stories260K (cpu): every option guard fires with its message and leaves no
 * tensor behind; the trunk and offset 0 stay bit-identical (fingerprint and logits) while the
 * drafts move; the returned heads are what the model holds (`attach`), or the model is untouched
 * (`attach: false`); a timer's abort mid-training resolves with the best evaluated heads; the same
 * seed and steps give the same heads; sequential modules train; `draftVocab` N is the N most
 * frequent tokens and the drafts come from it; given texts train too.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findDraftHead } from '../../src/layers/draft_head.js';
import { CachedTransformer, loadLlama2c, trainDraftHeads, withSequentialHeads, writeDraftHeads } from '../../src/models/index.js';
import { baseFingerprint, readDraftHeads } from '../../src/models/draft_heads.js';
import { type TrainDraftHeadsOptions, type TrainDraftHeadsProgress } from '../../src/models/train_heads/options.js';
import type { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';
import { frequentTokens, tokenCounts } from '../../src/models/train_heads/data.js';
import { stepAcceptance, walkSteps } from '../../src/models/train_heads/evaluate.js';
import { crossEntropy } from '../../src/models/train_heads/loss.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { readStories, storiesAvailable, storiesReference } from '../helpers/stories.js';

const available = storiesAvailable('training/train_heads.test.ts');
const H = 16; // a small width keeps cpu training fast
/** A tiny self-distillation run: one batch of 8 sequences × 32 tokens (the last held out), a few steps. */
const TINY: TrainDraftHeadsOptions = { corpusTokens: 256, sequenceTokens: 32, batchSize: 64, steps: 3, evaluateEvery: 1000 };

/** The draft weights' values, by heads-file name. */
function draftValues(model: LayersModel): Map<string, Float32Array> {
  return new Map(findDraftHead('test', model).draftWeights().map((w) => [w.name, w.variable.read().dataSync() as Float32Array]));
}

/** stories260K (`checkpoint`) with `numHeads` sequential modules of width H, `body` run on it, the model disposed after. */
async function withSequentialModel(checkpoint: Uint8Array, numHeads: number, body: (model: LayersModel) => Promise<void>): Promise<void> {
  const { model: base } = await loadLlama2c(checkpoint, { mtpHeads: 1 });
  const sequential = withSequentialHeads(base, numHeads, H);
  try {
    await body(sequential);
  } finally {
    sequential.dispose();
  }
}

/** Offset-0 logits of every prompt position, read back. */
function offset0(model: LayersModel, ids: number[]): Float32Array {
  const cached = new CachedTransformer(model);
  try {
    return tf.tidy(() => {
      const states = cached.forward(ids);
      return cached.headLogits(states, [0]).dataSync() as Float32Array;
    });
  } finally {
    cached.dispose();
  }
}

describe('the decoder walk of the held-out τ estimate', () => {
  it('accepts the leading agreeing drafts and steps past them, as greedy speculative decoding does', () => {
    // counts per row; the walk visits rows 0, 3 (0 + 2 + 1), 4, 8 and ends at 10 tokens
    expect(walkSteps([2, 0, 0, 0, 3, 1, 1, 1, 3, 3], 10)).toEqual([2, 0, 3, 1]);
    expect(walkSteps([3, 3, 3], 3)).toEqual([2]); // never past the tokens left
    expect(stepAcceptance([2, 0, 3, 1], 3)).toEqual({ acceptancePerOffset: [0.75, 0.5, 0.25], tau: 2.5 });
  });

  it('ranks the draft vocabulary by frequency, ties by the lower id', () => {
    const sequences = [{ ids: [5, 5, 2, 7, 7, 7] }, { ids: [2, 9, 5, 1] }];
    expect(Array.from(tokenCounts(sequences, 10))).toEqual([0, 1, 2, 0, 0, 3, 0, 3, 0, 1]);
    expect(frequentTokens(sequences, 2, 10)).toEqual({ ids: [5, 7], coverage: 0.6 });
    expect(frequentTokens(sequences, 4, 10).ids).toEqual([1, 2, 5, 7]);
    expect(frequentTokens(sequences, 6, 10).ids).toEqual([0, 1, 2, 5, 7, 9]);
  });
});

describe('the cross-entropy of the loss', () => {
  beforeAll(useCpu);

  it('equals −Σ q·logSoftmax(z) and its gradient, for one-hot, empty (no target) and soft rows', () => {
    const z = tf.randomNormal([3, 2, 7], 0, 2, 'float32', 1);
    const hot = tf.cast(tf.oneHot(tf.tensor2d([[0, 6], [3, -1]], [2, 2], 'int32'), 7), 'float32'); // −1: a zero row
    const q = tf.concat([hot, tf.expandDims(tf.softmax(tf.randomNormal([2, 7], 0, 1, 'float32', 2)), 0)]); // [3, 2, 7]
    const w = tf.randomNormal([3, 2], 0, 1, 'float32', 3);
    const ours = (x: tf.Tensor) => tf.sum(tf.mul(crossEntropy(x, q), w));
    const reference = (x: tf.Tensor) => tf.sum(tf.mul(tf.neg(tf.sum(tf.mul(q, tf.logSoftmax(x)), -1)), w));
    expect(ours(z).dataSync()[0]).toBeCloseTo(reference(z).dataSync()[0]!, 5);
    const worst = tf.max(tf.abs(tf.sub(tf.grad(ours)(z), tf.grad(reference)(z)))).dataSync()[0]!;
    expect(worst).toBeLessThan(1e-5);
    expect(crossEntropy(z, q).arraySync()).toMatchObject([[expect.any(Number), expect.any(Number)], [expect.any(Number), 0], [expect.any(Number), expect.any(Number)]]);
    tf.dispose([z, hot, q, w]);
  });
});

describe.skipIf(!available)('trainDraftHeads on stories260K (cpu)', () => {
  let checkpoint: Uint8Array;
  let model: LayersModel;
  let tokenizer: Llama2cTokenizer;
  let prompt: number[];
  beforeAll(async () => {
    await useCpu();
    checkpoint = readStories('checkpoint');
    ({ model, tokenizer } = (await loadLlama2c(checkpoint, { tokenizer: readStories('tokenizer'), mtpHeads: 4, headKind: 'mlp', headHiddenSize: H })) as { model: LayersModel; tokenizer: Llama2cTokenizer });
    prompt = storiesReference().promptIds;
  });
  afterAll(() => model.dispose());

  describe('refuses bad options before any work, naming the option, the rule and the value', () => {
    const cases: Array<[string, unknown, string]> = [
      ['a misspelled key', { step: 5 }, 'trainDraftHeads: options has no option "step" (did you mean "steps"?); its options are sequences, texts'],
      ['steps 0', { steps: 0 }, 'trainDraftHeads: options.steps must be a positive integer, but got 0.'],
      ['seconds −1', { seconds: -1 }, 'trainDraftHeads: options.seconds must be a finite number > 0, but got -1.'],
      ['seconds Infinity', { seconds: Infinity }, 'trainDraftHeads: options.seconds must be a finite number > 0, but got Infinity.'],
      ['batchSize 2.5', { batchSize: 2.5 }, 'trainDraftHeads: options.batchSize must be a positive integer at most 1048576, but got 2.5.'],
      ['learningRate 0', { learningRate: 0 }, 'trainDraftHeads: options.learningRate must be a number in (0, 1], but got 0.'],
      ['targets', { targets: 'argmax' }, "trainDraftHeads: options.targets must be one of 'hard', 'soft', 'mix', but got \"argmax\"."],
      ['topK 1.5', { topK: 1.5 }, 'trainDraftHeads: options.topK must be an integer in [0, 64], but got 1.5.'],
      ['topK above 64', { topK: 65 }, 'trainDraftHeads: options.topK must be an integer in [0, 64], but got 65.'],
      ['feed', { feed: 'own' }, "trainDraftHeads: options.feed must be one of 'truth', 'drafts', but got \"own\"."],
      ['feed drafts for parallel heads', { feed: 'drafts' }, "trainDraftHeads: options.feed must be 'truth' for parallel 'mlp' heads (they are fed no tokens; 'drafts' is for sequential modules), but got \"drafts\"."],
      ['heldOut 0.9', { heldOut: 0.9 }, 'trainDraftHeads: options.heldOut must be a number in [0, 0.5], but got 0.9.'],
      ['draftVocab above V', { draftVocab: 513 }, 'trainDraftHeads: options.draftVocab must be a positive integer at most 512, but got 513.'],
      ['sequenceTokens above the context', { sequenceTokens: 513 }, 'trainDraftHeads: options.sequenceTokens must be an integer in [4, 512], but got 513.'],
      ['texts without a tokenizer', { texts: ['Once'] }, 'trainDraftHeads: options.tokenizer must be given with options.texts (an object with encode(text): number[]), but got undefined.'],
      ['sequences and texts', { sequences: [[1, 2]], texts: ['a'] }, 'trainDraftHeads: options.texts must not be given with options.sequences (give one of them), but got ["a"].'],
      ['a token outside the vocabulary', { sequences: [[1, 2, 512]] }, 'trainDraftHeads: options.sequences[0][2] must be a token id, an integer in [0, 512), but got 512.'],
      ['openings with given text', { sequences: [[1, 2, 3, 4, 5]], openings: [[1]] }, 'trainDraftHeads: options.openings applies to self-distillation only (not with options.sequences), but got [[1]].'],
      ['an empty opening', { openings: [[]] }, 'trainDraftHeads: options.openings[0] must be a non-empty array of token ids, but got [].'],
      ['a signal that is not one', { signal: {} }, 'trainDraftHeads: options.signal must be an AbortSignal, but got an object (Object).'],
      ['onProgress', { onProgress: 1 }, 'trainDraftHeads: options.onProgress must be a function, but got 1.'],
      ['attach "no"', { attach: 'no' }, 'trainDraftHeads: options.attach must be a boolean, but got "no".'],
    ];
    it.each(cases)('%s', async (_, options, message) => {
      await expectThrowNoLeak(() => trainDraftHeads(model, options as TrainDraftHeadsOptions), message);
    });

    it('an already aborted signal rejects with its reason', async () => {
      const reason = new Error('stopped by the user');
      await expectThrowNoLeak(() => trainDraftHeads(model, { signal: AbortSignal.abort(reason) }), 'stopped by the user');
    });

    it('a model without draft offsets, naming the fix', async () => {
      const { model: plain } = await loadLlama2c(checkpoint, { mtpHeads: 1 });
      try {
        await expectThrowNoLeak(() => trainDraftHeads(plain), "trainDraftHeads: model must have draft offsets (numHeads at least 2), but its head has numHeads 1; load it with draft heads, e.g. loadLlama2c(checkpoint, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: 256 }), or give it sequential modules with withSequentialHeads(model, 4, 256).");
      } finally {
        plain.dispose();
      }
    });
  });

  it('trains the drafts only: trunk and offset 0 bit-identical, the returned heads are the attached ones, nothing leaked', async () => {
    const fingerprint = await baseFingerprint(model);
    const logits = offset0(model, prompt);
    const before = draftValues(model);
    const phases = new Set<string>();
    const heads = await expectNoLeak(() => trainDraftHeads(model, { ...TINY, onProgress: (p) => phases.add(p.phase) }));
    expect(await baseFingerprint(model)).toBe(fingerprint);
    expect(offset0(model, prompt)).toEqual(logits);
    expect(heads.manifest.base.fingerprint).toBe(fingerprint);
    expect(heads.manifest).toMatchObject({ kind: 'mlp', numHeads: 4, headHiddenSize: H, training: { steps: 3, stoppedBy: 'steps', seed: 1, corpusSource: 'self-distillation' } });
    expect(phases).toEqual(new Set(['corpus', 'evaluating', 'training']));
    const after = draftValues(model);
    for (const [name, values] of heads.values) {
      expect(after.get(name)).toEqual(values); // attached: the model holds what was returned
      if (name.endsWith('w2')) expect(values).not.toEqual(before.get(name)); // and it moved
    }
    // the file round-trips into a fresh load of the checkpoint
    const { model: loaded } = await loadLlama2c(checkpoint, { draftHeads: writeDraftHeads(heads) });
    try {
      expect(draftValues(loaded)).toEqual(after);
      expect(readDraftHeads(writeDraftHeads(heads)).manifest.training).toEqual(JSON.parse(JSON.stringify(heads.manifest.training)));
    } finally {
      loaded.dispose();
    }
  });

  it('attach: false leaves the model as it was', async () => {
    const before = draftValues(model);
    const heads = await expectNoLeak(() => trainDraftHeads(model, { ...TINY, draftVocab: 100, attach: false }));
    expect(draftValues(model)).toEqual(before);
    expect(findDraftHead('test', model).draftVocab).toBeNull();
    expect(heads.manifest.draftVocab).toHaveLength(100);
    expect(heads.values.get('offset1/w2')).not.toEqual(before.get('offset1/w2'));
  });

  it('the same seed and steps give the same heads; another seed other heads', async () => {
    const initial = draftValues(model);
    const reset = () => {
      for (const w of findDraftHead('test', model).draftWeights()) {
        const value = tf.tensor(initial.get(w.name)!, w.shape);
        w.variable.write(value);
        value.dispose();
      }
    };
    const run = async (seed: number) => {
      reset();
      return (await trainDraftHeads(model, { ...TINY, seed, attach: false })).values;
    };
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    expect(b).toEqual(a);
    expect(c.get('offset1/w1')).not.toEqual(a.get('offset1/w1'));
  });

  it('a timer that aborts mid-training stops it within a step or two and resolves with the best evaluated heads, nothing leaked', async () => {
    const controller = new AbortController();
    let steps = 0;
    const heads = await expectNoLeak(() =>
      trainDraftHeads(model, {
        ...TINY,
        steps: 100_000,
        evaluateEvery: 0.2,
        signal: controller.signal,
        onProgress: (p: TrainDraftHeadsProgress) => {
          if (p.phase === 'training' && ++steps === 1) setTimeout(() => controller.abort(), 600); // a timer: it fires only if training yields
        },
      }),
    );
    const training = heads.manifest.training as { stoppedBy: string; steps: number; heldOut: { tau: number } };
    expect(training.stoppedBy).toBe('signal');
    expect(training.steps).toBeLessThan(100_000);
    expect(training.steps).toBeGreaterThan(0);
    expect(draftValues(model)).toEqual(heads.values);
  });

  it('an abort while the model writes its corpus rejects with the reason (nothing trained), leaving the model as it was', async () => {
    const before = draftValues(model);
    const controller = new AbortController();
    await expectThrowNoLeak(
      () => trainDraftHeads(model, { ...TINY, corpusTokens: 256 * 12, signal: controller.signal, onProgress: (p) => p.phase === 'corpus' && controller.abort(new Error('stop during the corpus')) }),
      'stop during the corpus',
    );
    expect(draftValues(model)).toEqual(before);
  });

  it('draftVocab N: the N most frequent corpus tokens, set on the head, and the drafts come from them', async () => {
    const N = 48;
    const heads = await expectNoLeak(() => trainDraftHeads(model, { ...TINY, draftVocab: N }));
    const vocab = heads.manifest.draftVocab!;
    expect(vocab).toHaveLength(N);
    expect(findDraftHead('test', model).draftVocab).toEqual(vocab);
    expect(heads.manifest.training).toMatchObject({ draftVocab: { size: N } });
    const cached = new CachedTransformer(model);
    try {
      const ids = tf.tidy(() => cached.draftArgmax(cached.forward(prompt), tf.fill([prompt.length], 1, 'int32') as tf.Tensor1D, 3).arraySync() as number[][]);
      for (const row of ids) for (const t of row) expect(vocab).toContain(t);
    } finally {
      cached.dispose();
      findDraftHead('test', model).setDraftVocab(null);
    }
  });

  it('trains on given texts (texts + tokenizer), cut into pieces of sequenceTokens', async () => {
    const texts = ['Once upon a time, there was a little dog named Max. Max liked to run in the park with his friend Tim.', 'The sun was hot. Lily went to the sea to swim with her mom and dad.'];
    const heads = await expectNoLeak(() => trainDraftHeads(model, { texts, tokenizer, sequenceTokens: 16, steps: 2, batchSize: 32, heldOut: 0, attach: false }));
    expect(heads.manifest.training).toMatchObject({ corpusSource: 'given', steps: 2, heldOut: null });
    const kept = (n: number) => n - (n % 16 < 4 ? n % 16 : 0); // a last piece shorter than k holds no row: dropped
    expect((heads.manifest.training as { corpusTokens: number }).corpusTokens).toBe(texts.reduce((a, t) => a + kept(tokenizer.encode(t).length), 0));
  });

  it('sequential modules train through the same call (withSequentialHeads), offset 0 untouched', async () => {
    await withSequentialModel(checkpoint, 3, async (sequential) => {
      const logits = offset0(sequential, prompt);
      const before = draftValues(sequential);
      const heads = await expectNoLeak(() => trainDraftHeads(sequential, { ...TINY, steps: 2 }));
      expect(heads.manifest).toMatchObject({ kind: 'sequential', numHeads: 3, headHiddenSize: H });
      expect(offset0(sequential, prompt)).toEqual(logits);
      expect(draftValues(sequential).get('module1/w1')).not.toEqual(before.get('module1/w1'));
    });
  });

  it('sequential modules train on their own drafts (feed: drafts) with the top-K ranking term; the facts say so; offset 0 untouched; another run than teacher forcing; an abort leaks nothing', async () => {
    await withSequentialModel(checkpoint, 4, async (sequential) => {
      const logits = offset0(sequential, prompt);
      const initial = draftValues(sequential);
      const forced = await trainDraftHeads(sequential, { ...TINY, steps: 2, attach: false });
      const heads = await expectNoLeak(() => trainDraftHeads(sequential, { ...TINY, steps: 2, feed: 'drafts', topK: 8 }));
      expect(heads.manifest.training).toMatchObject({ feed: 'drafts', topK: 8, steps: 2 });
      expect(forced.manifest.training).not.toHaveProperty('feed');
      expect(offset0(sequential, prompt)).toEqual(logits);
      expect(draftValues(sequential).get('module3/w1')).not.toEqual(initial.get('module3/w1'));
      expect(Array.from(heads.values.get('module3/w1')!)).not.toEqual(Array.from(forced.values.get('module3/w1')!)); // module 3 saw other tokens and another loss
      // aborted mid-training with both: stopped by the signal, the precomputed top-K targets freed with the rest
      const controller = new AbortController();
      const stopped = await expectNoLeak(() =>
        trainDraftHeads(sequential, {
          ...TINY,
          steps: 100_000,
          feed: 'drafts',
          topK: 8,
          signal: controller.signal,
          onProgress: (p: TrainDraftHeadsProgress) => {
            if (p.phase === 'training' && p.step === 1) setTimeout(() => controller.abort(), 100);
          },
        }),
      );
      expect(stopped.manifest.training).toMatchObject({ stoppedBy: 'signal', feed: 'drafts', topK: 8 });
    });
  });
});
