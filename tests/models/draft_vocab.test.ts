/**
 * The draft vocabulary through the models: `createTransformer`'s `draftVocab` (checked like every
 * field), `CachedTransformer`'s `draftVocab` and tip passes (delegated, checked live), and the
 * draft-heads file: version 2 carries the draft vocabulary and round-trips; version 1 files (the
 * committed fixtures) still read, attach and decode as before; `attachDraftHeads` and
 * `loadLlama2c({ draftHeads })` apply a file's draft vocabulary, conflicting options are refused,
 * a failed attach writes nothing; `withSequentialHeads` and `loadHfLlama` take one too. No leaks.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import type { MultiTokenHead } from '../../src/layers/index.js';
import type { SequentialMtpHead } from '../../src/layers/sequential_mtp.js';
import { attachDraftHeads, exportDraftHeads, readDraftHeads, withSequentialHeads } from '../../src/models/draft_heads.js';
import { CachedTransformer, createTransformer, loadHfLlama } from '../../src/models/index.js';
import { parseLlama2c } from '../../src/models/llama2c.js';
import { loadLlama2c } from '../../src/models/llama2c.js';
import { useCpu } from '../helpers/backend.js';
import { readManifest, withManifest } from '../helpers/heads_file.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { randomizeWeights } from '../helpers/layers.js';
import { readStories, storiesAvailable, storiesReference, toHfLayout, writeSafetensors } from '../helpers/stories.js';

const V = 40;
const D = 16;
const SUBSET = [30, 2, 7, 11, 19, 25];
const SORTED = [2, 7, 11, 19, 25, 30];

type Head = MultiTokenHead | SequentialMtpHead;
const headOf = (model: LayersModel) => model.getLayer('mtp_head') as unknown as Head;

/** Reads a tensor back and disposes it. */
function read<T>(t: tf.Tensor): T {
  const v = t.arraySync() as T;
  t.dispose();
  return v;
}

describe('createTransformer and CachedTransformer', () => {
  beforeAll(useCpu);

  it('config.draftVocab reaches the head (stored increasing); CachedTransformer exposes it and delegates the tip passes', async () => {
    const model = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 16, headKind: 'mlp', headHiddenSize: 8, draftVocab: SUBSET });
    const head = headOf(model);
    randomizeWeights({ weights: head.weights }, 3, 0.5);
    expect(head.draftVocab).toEqual(SORTED);
    const cached = new CachedTransformer(model);
    expect(cached.draftVocab).toEqual(SORTED);
    const states = cached.forward([1, 5, 9]);
    const roots = tf.tensor1d([3, 4, 5], 'int32');
    await expectNoLeak(() => {
      cached.beginDecode();
      try {
        expect(read(cached.draftArgmax(states, roots, 3))).toEqual(read(head.draftArgmax(states, roots, 3)));
        const [a, b] = [cached.draftTopK(states, roots, 2, 4), head.draftTopK(states, roots, 2, 4)];
        expect(read(a.ids)).toEqual(read(b.ids));
        expect(read(a.logProbs)).toEqual(read(b.logProbs));
        expect(read(cached.draftLogits(states, roots, 3))).toEqual(read(head.draftLogits(states, roots, 3)));
        for (const row of read<number[][]>(cached.headArgmax(states, 4))) for (const t of row.slice(1)) expect(SORTED).toContain(t);
      } finally {
        cached.endDecode();
      }
    });
    cached.dispose();
    for (const method of ['draftArgmax', 'draftTopK', 'draftLogits'] as const) {
      await expectThrowNoLeak(() => (cached[method] as (...a: unknown[]) => unknown)(states, roots, 1, 1), `CachedTransformer.${method}: this model was disposed; create a new CachedTransformer.`);
    }
    tf.dispose([states, roots]);
    const plain = new CachedTransformer(createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 16 }));
    expect(plain.draftVocab).toBeNull();
    plain.model.dispose();
    model.dispose();
  });

  it('config.draftVocab is checked like every field, before anything is allocated', async () => {
    const base = { vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2 };
    await expectThrowNoLeak(() => createTransformer({ ...base, draftVocab: [40] }), 'createTransformer: config.draftVocab[0] must be a token id, an integer in [0, 40), but got 40.');
    await expectThrowNoLeak(() => createTransformer({ ...base, draftVocab: 7 as never }), 'createTransformer: config.draftVocab must be an array of token ids, but got 7.');
    const model = createTransformer({ ...base, draftVocab: null });
    expect(headOf(model).draftVocab).toBeNull();
    model.dispose();
  });

  it('the headTopK fallback (sequential modules) ranks drafts within the draft vocabulary: k above its size is refused', async () => {
    const base = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 16, mtpHeads: 1 });
    const model = withSequentialHeads(base, 3, 8, SUBSET);
    expect(headOf(model).draftVocab).toEqual(SORTED);
    const cached = new CachedTransformer(model);
    const states = cached.forward([1, 2]);
    await expectThrowNoLeak(() => cached.headTopK(states, 2, 7), "CachedTransformer.headTopK: k must be an integer in [1, 6] (at most the draft vocabulary's size), but got 7.");
    const top = await expectNoLeak(() => {
      const r = cached.headTopK(states, 3, 6);
      return { ids: read<number[][][]>(r.ids), logProbs: read<number[][][]>(r.logProbs) };
    });
    for (const row of top.ids) for (const column of row.slice(1)) for (const t of column) expect(SORTED).toContain(t);
    states.dispose();
    cached.dispose();
    model.dispose();
  });
});

const storiesOk = storiesAvailable('models/draft_vocab.test.ts');
const H = 16;

describe.skipIf(!storiesOk)('draft-heads files with a draft vocabulary (stories260K)', () => {
  let file: Uint8Array;
  let prompt: number[];
  let trained: LayersModel;
  /** The 64 ids of the draft vocabulary: every 8th id. */
  const vocab = Array.from({ length: 64 }, (_, i) => 8 * i + 3);
  beforeAll(async () => {
    await useCpu();
    file = readStories('checkpoint');
    prompt = storiesReference().promptIds;
    ({ model: trained } = await loadLlama2c(file, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: H }));
    for (const h of (headOf(trained) as MultiTokenHead).offsetHeads.slice(1)) randomizeWeights(h, 5, 0.05); // "trained" heads
  });
  afterAll(() => trained.dispose());

  /** Draft tokens of offsets 1…3 at the prompt's last position, and the model's draft vocabulary. */
  function drafts(model: LayersModel): { ids: number[]; vocab: readonly number[] | null } {
    const cached = new CachedTransformer(model);
    try {
      const ids = tf.tidy(() => {
        const states = cached.forward(prompt);
        const tip = tf.slice(states, [prompt.length - 1, 0], [1, -1]) as tf.Tensor2D;
        return (cached.draftArgmax(tip, tf.tensor1d([0], 'int32'), 3).arraySync() as number[][])[0]!;
      });
      return { ids, vocab: cached.draftVocab };
    } finally {
      cached.dispose();
    }
  }

  it('version 2: exportDraftHeads writes the head’s draft vocabulary; readDraftHeads, attachDraftHeads and loadLlama2c({ draftHeads }) apply it', async () => {
    const head = headOf(trained);
    head.setDraftVocab(vocab);
    const expected = drafts(trained);
    expect(expected.vocab).toEqual(vocab);
    for (const t of expected.ids) expect(vocab).toContain(t);
    const bytes = await expectNoLeak(() => exportDraftHeads(trained));
    head.setDraftVocab(null);
    const parsed = readDraftHeads(bytes);
    expect(parsed.manifest.version).toBe(2);
    expect(parsed.manifest.draftVocab).toEqual(vocab);

    const before = tf.memory().numTensors;
    const { model: loaded } = await loadLlama2c(file, { draftHeads: bytes });
    expect(drafts(loaded)).toEqual(expected);
    loaded.dispose();
    // the same set given as an option, in another order: accepted
    const { model: agreed } = await loadLlama2c(file, { draftHeads: bytes, draftVocab: [...vocab].reverse() });
    expect(drafts(agreed)).toEqual(expected);
    agreed.dispose();
    expect(tf.memory().numTensors).toBe(before);

    const { model: fresh } = await loadLlama2c(file, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: H });
    expect(headOf(fresh).draftVocab).toBeNull();
    const manifest = await expectNoLeak(() => attachDraftHeads(fresh, bytes));
    expect(manifest.draftVocab).toEqual(vocab);
    expect(drafts(fresh)).toEqual(expected);
    // a file without a draft vocabulary leaves the head's as it is
    headOf(trained).setDraftVocab(null);
    await attachDraftHeads(fresh, await exportDraftHeads(trained));
    expect(headOf(fresh).draftVocab).toEqual(vocab);
    fresh.dispose();
  });

  it('conflicting draft vocabularies and bad ones are refused, naming the option and the value, with no leak', async () => {
    headOf(trained).setDraftVocab(vocab);
    const bytes = await exportDraftHeads(trained);
    headOf(trained).setDraftVocab(null);
    await expectThrowNoLeak(() => loadLlama2c(file, { draftHeads: bytes, draftVocab: [1, 2, 3] }), "loadLlama2c: options.draftVocab must be the same set of ids as options.draftHeads' draftVocab (64 ids) or be omitted, but got [1, 2, 3].");
    await expectThrowNoLeak(() => loadLlama2c(file, { draftVocab: [512] }), 'loadLlama2c: options.draftVocab[0] must be a token id, an integer in [0, 512), but got 512.');
    await expectThrowNoLeak(() => loadLlama2c(file, { draftVocab: [] }), 'loadLlama2c: options.draftVocab.length must be in [1, 512] (at most the vocabulary), but got 0.');
    // manifest fields
    const { manifest } = readManifest(bytes);
    const rewrite = (m: Record<string, unknown>): Uint8Array => withManifest(bytes, m);
    const where = 'loadLlama2c: options.draftHeads';
    await expectThrowNoLeak(() => loadLlama2c(file, { draftHeads: rewrite({ ...manifest, draftVocab: [3, 3] }) }), `${where}: manifest.draftVocab must not repeat a token id, but manifest.draftVocab[1] repeats 3.`);
    await expectThrowNoLeak(() => loadLlama2c(file, { draftHeads: rewrite({ ...manifest, draftVocab: [0, 600] }) }), `${where}: manifest.draftVocab[1] must be a token id, an integer in [0, 512), but got 600.`);
    await expectThrowNoLeak(() => loadLlama2c(file, { draftHeads: rewrite({ ...manifest, draftVocab: {} }) }), `${where}: manifest.draftVocab must be an array of token ids, but got an object (Object).`);
    await expectThrowNoLeak(() => loadLlama2c(file, { draftHeads: rewrite({ ...manifest, version: 1 }) }), `${where}: manifest.draftVocab needs manifest.version 2 (version 1 has no draft vocabulary), but got version 1.`);
    await expectThrowNoLeak(() => loadLlama2c(file, { draftHeads: rewrite({ ...manifest, version: 3 }) }), `${where}: manifest.version must be one of 1, 2, but got 3.`);
    // a version-1 manifest without a draft vocabulary reads
    const { draftVocab: _omitted, ...v1 } = manifest;
    const read1 = readDraftHeads(rewrite({ ...v1, version: 1 }));
    expect(read1.manifest.version).toBe(1);
    expect(read1.manifest.draftVocab).toBeUndefined();
  });

  it('a failed attach writes nothing: not while prepared for a decode, not with a malformed parsed file', async () => {
    headOf(trained).setDraftVocab(vocab);
    const bytes = await exportDraftHeads(trained);
    headOf(trained).setDraftVocab(null);
    const { model } = await loadLlama2c(file, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: H });
    const head = headOf(model) as MultiTokenHead;
    const weightsOf = () => head.offsetHeads.slice(1).flatMap((h) => h.weights.map((w) => Array.from(w.read().dataSync())));
    const before = weightsOf();
    const cached = new CachedTransformer(model);
    cached.beginDecode();
    await expectThrowNoLeak(
      () => attachDraftHeads(model, bytes),
      'attachDraftHeads: the heads\' draftVocab cannot be set (MultiTokenHead.setDraftVocab: the draft vocabulary must not change while the head is prepared for a decode, but it is prepared; call it before prepare or after the last release.)',
    );
    cached.endDecode();
    expect(weightsOf()).toEqual(before);
    expect(head.draftVocab).toBeNull();
    const parsed = readDraftHeads(bytes);
    const broken = { manifest: parsed.manifest, values: new Map(parsed.values) };
    broken.values.set('offset3/w1', new Float32Array(3));
    await expectThrowNoLeak(() => attachDraftHeads(model, broken), `attachDraftHeads: heads weight offset3/w1 must be a Float32Array of ${64 * H} values, but got a Float32Array of length 3.`);
    expect(weightsOf()).toEqual(before);
    expect(head.draftVocab).toBeNull();
    cached.dispose();
    model.dispose();
  });

  it.each(['mlp-k4', 'sequential-k4'])('the committed version-1 fixtures/stories260k-heads/%s.bin reads, attaches with no draft vocabulary and decodes as greedy', async (name) => {
    const heads = new Uint8Array(readFileSync(fileURLToPath(new URL(`../../fixtures/stories260k-heads/${name}.bin`, import.meta.url))));
    const parsed = readDraftHeads(heads);
    expect(parsed.manifest.version).toBe(1);
    expect(parsed.manifest.draftVocab).toBeUndefined();
    const before = tf.memory().numTensors;
    const { model } = await loadLlama2c(file, { draftHeads: heads });
    const cached = new CachedTransformer(model);
    try {
      expect(cached.draftVocab).toBeNull();
      const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 40 });
      const fast = await speculativeDecode(cached, prompt, { maxNewTokens: 40 });
      expect(fast.tokens).toEqual(greedy.tokens);
      // re-exported: version 2 with no draft vocabulary, the same weights
      const again = readDraftHeads(await exportDraftHeads(model));
      expect(again.manifest.version).toBe(2);
      expect(again.manifest.draftVocab).toBeUndefined();
      expect([...again.values.keys()]).toEqual([...parsed.values.keys()]);
      for (const [key, value] of parsed.values) expect(again.values.get(key)).toEqual(value);
    } finally {
      cached.dispose();
      model.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('sequential heads: loadLlama2c({ headKind: "sequential", draftVocab }) and a round trip of their file', async () => {
    const { model } = await loadLlama2c(file, { mtpHeads: 4, headKind: 'sequential', headHiddenSize: H, draftVocab: vocab });
    expect(headOf(model).draftVocab).toEqual(vocab);
    const bytes = await exportDraftHeads(model);
    expect(readDraftHeads(bytes).manifest).toMatchObject({ version: 2, kind: 'sequential', draftVocab: vocab });
    const expected = drafts(model);
    model.dispose();
    const { model: loaded } = await loadLlama2c(file, { draftHeads: bytes });
    expect(drafts(loaded)).toEqual(expected);
    const cached = new CachedTransformer(loaded);
    const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 30 });
    const fast = await speculativeDecode(cached, prompt, { maxNewTokens: 30 });
    expect(fast.tokens).toEqual(greedy.tokens);
    cached.dispose();
    loaded.dispose();
  });

  it('loadHfLlama takes a draft vocabulary, checked against the checkpoint', async () => {
    const parsed = parseLlama2c(file);
    const layout = toHfLayout(parsed, 'F32');
    const safetensors = writeSafetensors(layout.tensors, { format: 'pt' });
    const { model } = await loadHfLlama({ config: layout.config, safetensors }, { mtpHeads: 3, draftVocab: vocab });
    expect(headOf(model).draftVocab).toEqual(vocab);
    model.dispose();
    await expectThrowNoLeak(() => loadHfLlama({ config: layout.config, safetensors }, { draftVocab: [512] }), 'loadHfLlama: options.draftVocab[0] must be a token id, an integer in [0, 512), but got 512.');
    await expectThrowNoLeak(() => loadHfLlama({ config: layout.config, safetensors }, { mtpHead: 2 } as never), 'loadHfLlama: options may only have the keys mtpHeads, headKind, headHiddenSize, mlpHiddenSize, rank, draftVocab, draftHeads, onProgress, but got "mtpHead".');
  });
});
