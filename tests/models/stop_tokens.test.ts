/**
 * A llama2.c model ends a story with BOS (id 1), and run.c stops there: `loadLlama2c` records BOS
 * and EOS as the model's stop tokens, and the decoders stop at them when the caller gives none —
 * greedy and speculative decoding of stories260K from "Once upon a time" end exactly where
 * run.c's greedy loop ends (its `if (next == 1) break`), the BOS included as the stop token.
 */
import '@tensorflow/tfjs-backend-wasm';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/index.js';
import { CachedTransformer, loadLlama2c } from '../../src/models/index.js';

// wasm: the stop rule is backend-neutral, and wasm decodes the ~600 tokens here several times faster than cpu
beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  expect(tf.getBackend()).toBe('wasm');
});

it('stories260K from "Once upon a time" stops at the BOS that ends the story, as run.c does', async () => {
  const dir = new URL('../../../shared/models/stories260K/', import.meta.url);
  const { model, tokenizer, stopTokens } = await loadLlama2c(new Uint8Array(readFileSync(new URL('stories260K.bin', dir))), {
    tokenizer: new Uint8Array(readFileSync(new URL('tok512.bin', dir))),
  });
  expect(stopTokens).toEqual([1, 2]);
  const cached = new CachedTransformer(model);
  const prompt = tokenizer!.encode('Once upon a time', { bos: true });
  const free = await greedyDecode(cached, prompt, { maxNewTokens: 500, stopTokens: [] }); // past the story's end
  const end = free.tokens.findIndex((t) => t === 1 || t === 2); // run.c stops at the first BOS (EOS would end a text too)
  expect(end).toBeGreaterThan(20);
  const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 500 });
  expect(greedy.finishReason).toBe('stop');
  expect(greedy.tokens).toEqual(free.tokens.slice(0, end + 1));
  expect(tokenizer!.decode([...prompt, ...greedy.tokens.slice(0, -1)])).toMatch(/^Once upon a time, there was a little girl named Lily\./);
  const fast = await speculativeDecode(cached, prompt, { maxNewTokens: 500, draftLength: 3 });
  expect(fast.tokens).toEqual(greedy.tokens);
  cached.dispose();
  model.dispose();
});
