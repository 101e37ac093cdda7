/**
 * `npx tsx tools/heads/tau.ts --heads <file>`: τ of a draft-heads file on stories260K's held-out
 * prompts (speculativeDecode, greedy acceptance, vs greedyDecode: identical output checked), as
 * `npm run train:heads` measures at its end. Prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadLlama2c } from '../../src/models/llama2c.js';
import { parseCommandLine } from '../args.js';
import { NODE_BACKENDS, useBackend } from '../backend.js';
import { measureTau } from './measure.js';

const options = parseCommandLine({
  name: 'heads:tau',
  usage: 'npx tsx tools/heads/tau.ts --heads <file> [options]',
  summary: 'Measures τ of trained draft heads on held-out prompts (output identical to greedy is checked).',
  options: {
    model: { type: 'string', default: '../shared/models/stories260K', help: 'folder with stories260K.bin and tok512.bin' },
    heads: { type: 'string', default: 'fixtures/stories260k-heads/mlp-k4.bin', help: 'the draft-heads file' },
    tokens: { type: 'number', default: 200, integer: true, min: 1, help: 'new tokens per prompt' },
    backend: { type: 'string', default: 'wasm', choices: NODE_BACKENDS, help: 'tfjs backend' },
  },
} as const);

await useBackend(options.backend as 'wasm' | 'cpu');
const dir = resolve(options.model);
const { model, tokenizer } = await loadLlama2c(new Uint8Array(readFileSync(join(dir, 'stories260K.bin'))), {
  tokenizer: new Uint8Array(readFileSync(join(dir, 'tok512.bin'))),
  draftHeads: new Uint8Array(readFileSync(options.heads)),
});
const report = await measureTau(model, tokenizer!, options.tokens);
model.dispose();
console.log(JSON.stringify({ heads: options.heads, backend: options.backend, ...report }));
