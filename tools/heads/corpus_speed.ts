/**
 * `npx tsx tools/heads/corpus_speed.ts [--batches 1,32,128] [--tokens 25600]`: how fast the
 * self-distillation corpus of `npm run train:heads` is generated (tools/heads/corpus.ts
 * `buildCorpus`, stories260K, wasm) per generation batch size; batch 1 is one sequence at a
 * time, as the corpus was made before batching. Prints a markdown table.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadLlama2c } from '../../src/models/llama2c.js';
import type { MultiTokenHead } from '../../src/layers/index.js';
import { parseCommandLine } from '../args.js';
import { NODE_BACKENDS, useBackend } from '../backend.js';
import { buildCorpus, storyOpenings } from './corpus.js';

const options = parseCommandLine({
  name: 'heads:corpus-speed',
  usage: 'npx tsx tools/heads/corpus_speed.ts [options]',
  summary: 'Tokens per second of the batched self-distillation corpus, per batch size.',
  options: {
    model: { type: 'string', default: '../shared/models/stories260K', help: 'folder with stories260K.bin and tok512.bin' },
    batches: { type: 'strings', default: ['1', '32', '128'], help: 'generation batch sizes' },
    tokens: { type: 'number', default: 25_600, integer: true, min: 200, help: 'tokens per batch size (200 per sequence)' },
    backend: { type: 'string', default: 'wasm', choices: NODE_BACKENDS, help: 'tfjs backend' },
  },
} as const);

await useBackend(options.backend as 'wasm' | 'cpu');
const dir = resolve(options.model);
const { model, tokenizer } = await loadLlama2c(new Uint8Array(readFileSync(join(dir, 'stories260K.bin'))), { tokenizer: new Uint8Array(readFileSync(join(dir, 'tok512.bin'))), mtpHeads: 1 });
const unembeddingT = tf.transpose((model.getLayer('mtp_head') as unknown as MultiTokenHead).unembedding.matrix()) as tf.Tensor2D; // [D, V]
console.log(`| backend | batch | tokens | seconds | tokens/s |\n|---|---:|---:|---:|---:|`);
for (const batch of options.batches.map(Number)) {
  const tokens = batch === 1 ? Math.min(options.tokens, 2000) : options.tokens; // one at a time is slow: a shorter sample
  const t0 = performance.now();
  const { sequences } = await buildCorpus(model, unembeddingT, storyOpenings(tokenizer!), { tokens, greedyShare: 0.8, sequenceTokens: 200, temperature: 0.8, topP: 0.9, maxPrefix: 16, batch, seed: 1 });
  const seconds = (performance.now() - t0) / 1000;
  const made = sequences.reduce((a, q) => a + q.ids.length, 0);
  console.log(`| ${options.backend} | ${batch} | ${made} | ${seconds.toFixed(1)} | ${(made / seconds).toFixed(0)} |`);
}
unembeddingT.dispose();
model.dispose();
