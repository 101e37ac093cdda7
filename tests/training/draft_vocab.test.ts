/**
 * `npm run train:heads -- --draftVocab N`: the draft vocabulary is the N most frequent corpus
 * tokens (ties by the lower id); the hard loss leaves out rows whose target is outside it (no
 * draft can be right there) and the held-out agreement counts them as misses; a short real run on
 * stories260K writes a heads file with those N ids whose heads decode exactly as greedy.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { readDraftHeads } from '../../src/models/draft_heads.js';
import { CachedTransformer } from '../../src/models/index.js';
import { loadLlama2c } from '../../src/models/llama2c.js';
import type { CorpusSequence } from '../../tools/heads/corpus.js';
import { frequentTokens, tokenCounts } from '../../tools/heads/draft_vocab.js';
import { batchLoss, type DraftParams, evaluate, prepareData } from '../../tools/heads/train.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';
import { readStories, STORIES_DIR, storiesAvailable, storiesReference } from '../helpers/stories.js';

const run = promisify(execFile);
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

describe('the draft vocabulary of train:heads', () => {
  beforeAll(useCpu);

  it('is the N most frequent corpus tokens, ties (unseen tokens included) by the lower id, increasing', () => {
    const sequences: CorpusSequence[] = [
      { ids: [5, 5, 2, 7, 7, 7], mode: 'greedy' },
      { ids: [2, 9, 5, 1], mode: 'sampled' },
    ];
    expect(Array.from(tokenCounts(sequences, 10))).toEqual([0, 1, 2, 0, 0, 3, 0, 3, 0, 1]);
    expect(frequentTokens(sequences, 2, 10)).toEqual({ ids: [5, 7], coverage: 0.6 }); // 5 and 7 tie at 3: both
    expect(frequentTokens(sequences, 3, 10).ids).toEqual([2, 5, 7]);
    expect(frequentTokens(sequences, 4, 10).ids).toEqual([1, 2, 5, 7]); // 1 and 9 tie at 1: the lower id
    expect(frequentTokens(sequences, 6, 10).ids).toEqual([0, 1, 2, 5, 7, 9]); // then the lowest unseen id
    expect(() => frequentTokens(sequences, 11, 10)).toThrow('train:heads: --draftVocab must be an integer in [1, 10] (at most the vocabulary), but got 11.');
  });

  it('the hard loss averages over the rows whose target is in the draft vocabulary; held-out agreement counts the others as misses', async () => {
    const V = 6;
    // hidden states one-hot at the teacher's argmax under an identity unembedding: the teacher is known
    const teacher = [0, 1, 2, 3, 4, 5, 1, 2];
    const d = V;
    const hidden = new Float32Array(teacher.flatMap((t) => Array.from({ length: V }, (_, i) => (i === t ? 2 : 0))));
    const sequences: CorpusSequence[] = [{ ids: teacher, mode: 'greedy' }];
    const unembeddingT = tf.eye(V) as tf.Tensor2D; // [D, V]
    const vocab = [1, 2, 4];
    await expectNoLeak(async () => {
      const whole = prepareData(sequences, hidden, d, unembeddingT, 2, 0);
      const teacherIds = Array.from(whole.teacherIds);
      tf.dispose([whole.hidden, whole.tokens, whole.teacher]);
      const data = prepareData(sequences, hidden, d, unembeddingT, 2, 0, vocab);
      expect(Array.from(data.target.dataSync())).toEqual(teacherIds.map((t) => vocab.indexOf(t)));
      // draft logits over the subset: fixed values per row
      const z = tf.tensor2d(Array.from({ length: 8 }, (_, r) => [r * 0.1, 1 - r * 0.2, 0.3])); // [8, 3]
      const params: DraftParams = { variables: new Map(), logits: (_, rows) => [tf.gather(z, rows) as tf.Tensor2D] };
      const rows = tf.tensor1d([0, 1, 2, 3, 4, 5, 6], 'int32');
      const loss = tf.tidy(() => batchLoss(params, data, rows, unembeddingT, { hardWeight: 1 }).loss); // training runs it inside variableGrads
      // by hand: rows p whose target (teacher at p + 1) is in the vocabulary
      const zs = z.arraySync() as number[][];
      const terms: number[] = [];
      for (let p = 0; p < 7; p++) {
        const c = vocab.indexOf(teacherIds[p + 1]!);
        if (c < 0) continue;
        const lse = Math.log(zs[p]!.reduce((a, x) => a + Math.exp(x), 0));
        terms.push(lse - zs[p]![c]!);
      }
      expect(terms.length).toBeGreaterThan(0);
      expect(terms.length).toBeLessThan(7);
      expect((await loss.data())[0]).toBeCloseTo(terms.reduce((a, b) => a + b, 0) / terms.length, 5);
      // held out: every row; agreement counts a target outside the vocabulary as a miss
      const held = { ...data, heldRows: Int32Array.from([0, 1, 2, 3, 4, 5, 6]), heldGreedy: new Uint8Array(7).fill(1) };
      const metrics = await evaluate(params, held, unembeddingT, 100);
      const hits = Array.from({ length: 7 }, (_, p) => vocab[zs[p]!.indexOf(Math.max(...zs[p]!))] === teacherIds[p + 1]).filter(Boolean).length;
      expect(metrics.agreement[0]).toBeCloseTo(hits / 7, 6);
      expect(metrics.targetCoverage).toBeCloseTo(terms.length / 7, 6);
      expect(metrics.hardLoss[0]).toBeCloseTo(terms.reduce((a, b) => a + b, 0) / terms.length, 4);
      tf.dispose([z, rows, loss, data.hidden, data.tokens, data.teacher, data.target, data.draftIds!]);
    });
    unembeddingT.dispose();
  });
});

const available = storiesAvailable('training/draft_vocab.test.ts');

describe.skipIf(!available)('npm run train:heads -- --draftVocab (stories260K, a short run)', () => {
  it('--help documents the option', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/train_heads.ts', '--help'], { cwd: ROOT, timeout: 60_000 });
    expect(stdout).toMatch(/--draft-vocab <number>\s+draft vocabulary: the N most frequent corpus tokens/);
    expect(stdout).toMatch(/--steps <number>\s+stop training after this many Adam steps/);
  });

  for (const kind of ['mlp', 'sequential'] as const) {
    it(`${kind}: writes a heads file whose draftVocab is the N most frequent corpus tokens, and its heads decode as greedy`, async () => {
      const out = mkdtempSync(join(tmpdir(), 'train-heads-'));
      const N = 48;
      try {
        const args = ['--model', STORIES_DIR, '--out', out, '--kind', kind, '--draftVocab', String(N), '--hidden', '16', '--corpusTokens', '1000', '--sequenceTokens', '100', '--minutes', '2', '--reserveSeconds', '0', '--steps', '3', '--batch', '64', '--evalRows', '200', '--tauTokens', '16', '--backend', 'cpu'];
        await run(process.execPath, ['--import', 'tsx', 'scripts/train_heads.ts', ...args], { cwd: ROOT, timeout: 240_000 });
        const heads = new Uint8Array(readFileSync(join(out, 'heads.bin')));
        const { manifest } = readDraftHeads(heads);
        expect(manifest).toMatchObject({ version: 2, kind, numHeads: 4 });
        const vocab = manifest.draftVocab!;
        expect(vocab).toHaveLength(N);
        // the N most frequent tokens of the corpus the run wrote
        const corpus = JSON.parse(readFileSync(join(out, 'corpus.json'), 'utf8')) as { sequences: CorpusSequence[] };
        const counts = tokenCounts(corpus.sequences, 512);
        const least = Math.min(...vocab.map((t) => counts[t]!));
        for (let t = 0; t < 512; t++) if (!vocab.includes(t)) expect(counts[t]!).toBeLessThanOrEqual(least);
        expect(least).toBeGreaterThan(0);
        const facts = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8')) as { draftVocab: { size: number }; tau: { identical: boolean }; training: { steps: number } };
        expect(facts.draftVocab.size).toBe(N);
        expect(facts.training.steps).toBe(3);
        expect(facts.tau.identical).toBe(true);
        // attached by loadLlama2c: drafts come from the vocabulary, decoding equals greedy
        await useCpu();
        const { model } = await loadLlama2c(readStories('checkpoint'), { draftHeads: heads });
        const cached = new CachedTransformer(model);
        try {
          expect(cached.draftVocab).toEqual(vocab);
          const prompt = storiesReference().promptIds;
          const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 30 });
          const fast = await speculativeDecode(cached, prompt, { maxNewTokens: 30 });
          expect(fast.tokens).toEqual(greedy.tokens);
          const ids = tf.tidy(() => {
            const states = cached.forward(prompt);
            return cached.draftArgmax(states, tf.fill([prompt.length], 1, 'int32') as tf.Tensor1D, 3).arraySync() as number[][];
          });
          for (const row of ids) for (const t of row) expect(vocab).toContain(t);
        } finally {
          cached.dispose();
          model.dispose();
        }
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });
  }
});
