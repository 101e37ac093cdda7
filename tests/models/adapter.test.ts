/**
 * `createHeadAdapter`: heads that learn from what the model commits (stories260K with the
 * committed story-trained `mlp` heads) on wasm, as an app would adapt. Adapted on the texts of a few repeated templates — a kind
 * of text the story-trained heads draft poorly — the heads draft those texts better (τ rises)
 * while every speculative output stays equal to greedy and the base (trunk, offset 0) keeps its
 * fingerprint; the time bound, the options, the abort and the leak rules hold. The gain on
 * templates never adapted on is `npm run bench:adapt`'s table.
 */
import '@tensorflow/tfjs-backend-wasm';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/index.js';
import { createHeadAdapter } from '../../src/models/adapter.js';
import { baseFingerprint, withSequentialHeads } from '../../src/models/draft_heads.js';
import { CachedTransformer, type Llama2cTokenizer, loadLlama2c } from '../../src/models/index.js';
import { adaptationPrompts } from '../../tools/heads/domains.js';
import { registerWasmTrainingKernels } from '../../src/training/index.js';
import { expectThrowNoLeak } from '../helpers/leak.js';
import { readStories, storiesAvailable } from '../helpers/stories.js';

const HEADS = join(import.meta.dirname, '../../fixtures/stories260k-heads/mlp-k4.bin');
const TOKENS = 48;

async function load(): Promise<{ model: LayersModel; tokenizer: Llama2cTokenizer }> {
  const { model, tokenizer } = await loadLlama2c(readStories('checkpoint'), { tokenizer: readStories('tokenizer'), draftHeads: new Uint8Array(readFileSync(HEADS)) });
  return { model, tokenizer: tokenizer! };
}

/** τ of chain drafting (3 drafts) over `prompts`, and whether every output equals greedy's. */
async function tauOn(cached: CachedTransformer, tokenizer: Llama2cTokenizer, prompts: string[]): Promise<{ tau: number; identical: boolean }> {
  let tokens = 0;
  let forwards = 0;
  let identical = true;
  for (const p of prompts) {
    const ids = tokenizer.encode(p);
    const fast = await speculativeDecode(cached, ids, { maxNewTokens: TOKENS, draftLength: 3 });
    const greedy = await greedyDecode(cached, ids, { maxNewTokens: TOKENS });
    identical &&= fast.tokens.join() === greedy.tokens.join();
    tokens += fast.stats.tokens;
    forwards += fast.stats.forwards;
  }
  return { tau: tokens / forwards, identical };
}

describe.skipIf(!storiesAvailable('adapter'))('createHeadAdapter', () => {
  beforeAll(async () => {
    registerWasmTrainingKernels(); // the fast backward kernels (the adapter needs no missing one); this process only
    await tf.setBackend('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('adapting on a kind of text raises τ on it; outputs stay greedy’s, the base unchanged, nothing leaked', async () => {
    const { model, tokenizer } = await load();
    const cached = new CachedTransformer(model);
    const prompts = adaptationPrompts(4);
    const fingerprint = await baseFingerprint(model);
    const before = await tauOn(cached, tokenizer, prompts);
    const tensors = tf.memory().numTensors;
    const adapter = createHeadAdapter(model, { stepsPerUpdate: 16, batchSize: 64, learningRate: 3e-3 });
    for (let round = 0; round < 2; round++) {
      for (const p of prompts) {
        const ids = tokenizer.encode(p);
        const out = await speculativeDecode(cached, ids, { maxNewTokens: TOKENS, draftLength: 3 });
        const report = await adapter.learn(ids, out.tokens); // new ids only: no time bound
        expect(report.steps).toBe(16);
        expect(report.positions).toBe(ids.length + TOKENS - 4);
      }
    }
    expect(adapter.steps).toBe(8 * 16);
    adapter.dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    const after = await tauOn(cached, tokenizer, prompts);
    expect(before.identical && after.identical).toBe(true);
    expect(after.tau).toBeGreaterThan(before.tau + 0.3);
    expect(await baseFingerprint(model)).toBe(fingerprint);
    cached.dispose();
    model.dispose();
  });

  it('DecodeResults bound the time: adaptation stays within maxShare of the decoding time; abort and bad calls leave nothing behind', async () => {
    const { model, tokenizer } = await load();
    const cached = new CachedTransformer(model);
    const ids = tokenizer.encode(adaptationPrompts(1)[0]!);
    const out = await speculativeDecode(cached, ids, { maxNewTokens: TOKENS, draftLength: 3 });
    const tensors = tf.memory().numTensors;
    const adapter = createHeadAdapter(model, { stepsPerUpdate: 50, batchSize: 32, maxShare: 0.5 });
    const free = await adapter.learn(ids, out.tokens); // bare ids: unbounded; it also measures the trunk pass and a step
    expect(free.steps).toBe(50);
    const instant = await adapter.learn(ids, { ...out, stats: { ...out.stats, wallTimeMs: 0 } }); // a decode that took no time pays for nothing
    expect(instant).toMatchObject({ steps: 0, positions: 0, skipped: true });
    let decodeMs = 0;
    let adaptMs = 0;
    let taken = 0;
    for (let i = 0; i < 12; i++) {
      const decoded = await speculativeDecode(cached, ids, { maxNewTokens: TOKENS, draftLength: 3 });
      const report = await adapter.learn(ids, decoded);
      decodeMs += decoded.stats.wallTimeMs;
      adaptMs += report.ms;
      taken += report.steps;
    }
    expect(taken).toBeGreaterThan(0);
    expect(taken).toBeLessThan(12 * 50);
    expect(adaptMs).toBeLessThanOrEqual(0.5 * decodeMs + free.ms / 10 + 20); // the share, plus at most about one step and one trunk pass past it

    const controller = new AbortController();
    const pending = adapter.learn(ids, out.tokens, { signal: controller.signal });
    controller.abort(new Error('user stopped'));
    await expect(pending).rejects.toThrow('user stopped');
    await expect(adapter.learn(ids, out.tokens, { signal: AbortSignal.abort(new Error('already')) })).rejects.toThrow('already');
    await expectThrowNoLeak(() => adapter.learn(ids, [3, 512]), 'HeadAdapter.learn: result[1] must be an integer in [0, 511], but got 512.');
    await expectThrowNoLeak(() => adapter.learn(ids, 'text' as never), 'HeadAdapter.learn: result must be an array of token ids (or a DecodeResult), but got "text".');
    await expectThrowNoLeak(() => adapter.learn(ids, [3], { sigal: undefined } as never), 'HeadAdapter.learn: options has no option "sigal"');
    const first = adapter.learn(ids, out.tokens);
    await expect(adapter.learn(ids, out.tokens)).rejects.toThrow('HeadAdapter.learn: one learn at a time per adapter, but another is still running; await it first.');
    await first;
    adapter.dispose();
    await expect(adapter.learn(ids, out.tokens)).rejects.toThrow('HeadAdapter.learn: the adapter must not be used after dispose(), but it was disposed.');
    expect(tf.memory().numTensors).toBe(tensors);
    cached.dispose();
    model.dispose();
  });

  it('options are checked by name; a head without draft weights is refused naming the fix; sequential modules adapt too', async () => {
    const { model, tokenizer } = await load();
    expect(() => createHeadAdapter(model, { learningRat: 1 } as never)).toThrow('createHeadAdapter: options has no option "learningRat"');
    expect(() => createHeadAdapter(model, { maxShare: 0 })).toThrow('createHeadAdapter: options.maxShare must be a number in (0, 10], but got 0.');
    expect(() => createHeadAdapter(model, { bufferSize: 8 })).toThrow('createHeadAdapter: options.bufferSize must be an integer in [16, 1048576], but got 8.');
    const plain = (await loadLlama2c(readStories('checkpoint'), { mtpHeads: 1 })).model;
    expect(() => createHeadAdapter(plain, {})).toThrow("createHeadAdapter: model's head must have draft offsets with weights to adapt (numHeads ≥ 2, not identity offsets), but it has numHeads 1 and 0 draft weights");
    const sequential = withSequentialHeads(plain, 4, 32);
    const adapter = createHeadAdapter(sequential, { stepsPerUpdate: 20, batchSize: 32, learningRate: 1e-2, bufferSize: 64 });
    const ids = tokenizer.encode(adaptationPrompts(1)[0]!);
    const text = [...ids, ...(await greedyDecode(new CachedTransformer(sequential), ids, { maxNewTokens: 80 })).tokens];
    const first = await adapter.learn(text, []);
    const second = await adapter.learn(text, []);
    expect(first.buffered).toBe(64); // the newest positions only
    expect(second.loss).toBeLessThan(first.loss);
    adapter.dispose();
    sequential.dispose();
    model.dispose();
  });
});
