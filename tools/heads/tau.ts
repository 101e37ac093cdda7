/**
 * `npx tsx tools/heads/tau.ts --heads <file> [--model <dir>] [--tree topK,maxNodes]`: τ of a draft-heads file on the base
 * model's held-out prompts (speculativeDecode, greedy acceptance, vs greedyDecode: identical
 * output checked), as `npm run train:heads` measures at its end: stories260K's 8 held-out story
 * openings × 200 tokens, or a tfjs-mtp checkpoint's held-out lib prompts × the rest of its
 * context (tools/heads/base.ts). Prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { DynamicTree } from '../../src/decoding/tree.js';
import { readDraftHeads } from '../../src/models/draft_heads.js';
import { parseCommandLine } from '../args.js';
import { NODE_BACKENDS, useBackend } from '../backend.js';
import { loadHeadsBase } from './base.js';
import { measureTauOn } from './measure.js';

const options = parseCommandLine({
  name: 'heads:tau',
  usage: 'npx tsx tools/heads/tau.ts --heads <file> [options]',
  summary: 'Measures τ of trained draft heads on held-out prompts (output identical to greedy is checked).',
  options: {
    model: { type: 'string', default: '../shared/models/stories260K', help: 'the base model folder (llama2.c .bin + tok*.bin, or model.json + weights.bin)' },
    heads: { type: 'string', default: 'fixtures/stories260k-heads/mlp-k4.bin', help: 'the draft-heads file' },
    tokens: { type: 'number', default: 0, integer: true, min: 0, help: "new tokens per prompt (0: the model's default, 200 for llama2.c)" },
    backend: { type: 'string', default: 'wasm', choices: NODE_BACKENDS, help: 'tfjs backend' },
    tree: { type: 'string', default: '', help: 'draft a dynamic tree instead of a chain: "topK,maxNodes" (e.g. 4,16; sequential modules grow it node by node)' },
  },
} as const);

function parseTree(text: string): DynamicTree | undefined {
  if (text === '') return undefined;
  const match = /^(\d+),(\d+)$/.exec(text);
  if (match === null) throw new Error(`heads:tau: --tree must be "topK,maxNodes" (two positive integers), but got ${JSON.stringify(text)}.`);
  return { topK: Number(match[1]), maxNodes: Number(match[2]) };
}
const tree = parseTree(options.tree);

await useBackend(options.backend as 'wasm' | 'cpu');
const bytes = new Uint8Array(readFileSync(options.heads));
const { manifest } = readDraftHeads(bytes, options.heads);
const kind = manifest.kind === 'sequential' ? 'sequential' : 'mlp';
const base = await loadHeadsBase(resolve(options.model), kind, manifest.numHeads, manifest.headHiddenSize ?? 1, 1);
base.model.dispose();
const model = await base.withHeads(bytes);
const report = await measureTauOn(model, base.prompts, options.tokens || base.tauTokens, tree);
model.dispose();
console.log(JSON.stringify({ heads: options.heads, model: base.modelFile, backend: options.backend, ...(tree ? { tree } : {}), ...report }));
