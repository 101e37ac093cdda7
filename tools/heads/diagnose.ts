/**
 * `npx tsx tools/heads/diagnose.ts --heads <file>`: where held-out τ goes. Decodes the held-out
 * prompts greedily and speculatively (tools/heads/measure.ts), then runs the frozen trunk over
 * the greedy text and scores the same heads teacher-forced on exactly that text: per position
 * (what training's held-out "chain" reports) and along the decoder's own steps
 * (tools/heads/simulate.ts). If the step walk equals the decoded acceptance, training and
 * decoding compute the same drafts, and any gap to the per-position number is where the decoder
 * steps. Prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { greedyDecode } from '../../src/decoding/index.js';
import { CachedTransformer } from '../../src/models/cached.js';
import { loadLlama2c } from '../../src/models/llama2c.js';
import type { MultiTokenHead } from '../../src/layers/index.js';
import { SequentialMtpHead } from '../../src/layers/sequential_mtp.js';
import { parseCommandLine } from '../args.js';
import { NODE_BACKENDS, useBackend } from '../backend.js';
import { hiddenStates, type CorpusSequence } from './corpus.js';
import { heldOutPrompts, measureTau } from './measure.js';
import { sequentialParams } from './sequential.js';
import { leadingAgreement, perPositionAcceptance, stepAcceptance, walkSteps } from './simulate.js';
import { type DraftParams, mlpParams, prepareData } from './train.js';

const options = parseCommandLine({
  name: 'heads:diagnose',
  usage: 'npx tsx tools/heads/diagnose.ts --heads <file> [options]',
  summary: 'Teacher-forced acceptance of draft heads on the held-out prompts’ greedy text vs their decoded acceptance.',
  options: {
    model: { type: 'string', default: '../shared/models/stories260K', help: 'folder with stories260K.bin and tok512.bin' },
    heads: { type: 'string', default: 'fixtures/stories260k-heads/sequential-k4.bin', help: 'the draft-heads file' },
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
const decoded = await measureTau(model, tokenizer!, options.tokens);

const cached = new CachedTransformer(model);
const sequences: CorpusSequence[] = [];
const promptLengths: number[] = [];
for (const prompt of heldOutPrompts()) {
  const ids = tokenizer!.encode(prompt);
  const greedy = await greedyDecode(cached, ids, { maxNewTokens: options.tokens });
  sequences.push({ ids: [...ids, ...greedy.tokens], mode: 'greedy' });
  promptLengths.push(ids.length);
}
cached.dispose();

const head = model.getLayer('mtp_head') as unknown as MultiTokenHead | SequentialMtpHead;
const k = head.numHeads;
const embedding = head.unembedding.matrix(); // [V, D]
const unembeddingT = tf.keep(tf.transpose(embedding)) as tf.Tensor2D; // [D, V]
const d = embedding.shape[1];
const vocab = head.draftVocab ?? undefined; // the heads file's draft vocabulary, applied by loadLlama2c
const data = prepareData(sequences, hiddenStates(model, sequences, d), d, unembeddingT, k, 0, vocab);
let params: DraftParams;
if (head instanceof SequentialMtpHead) params = sequentialParams(head);
else {
  const names = ['w1', 'b1', 'w2', 'b2'];
  const initial = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (let j = 1; j < k; j++) head.offsetHeads[j]!.weights.forEach((w, n) => (initial.set(`offset${j}/${names[n]}`, w.read().dataSync() as Float32Array), shapes.set(`offset${j}/${names[n]}`, w.shape as number[])));
  params = mlpParams(initial, shapes, k, data.draftIds === null ? unembeddingT : (tf.keep(tf.gather(unembeddingT, data.draftIds, 1)) as tf.Tensor2D)); // [D, Vd]
}
// decoded positions: from the prompt's last token on, while p + k − 1 stays inside the text
const rowsAll: number[] = [];
const perSequence: number[][] = [];
let start = 0;
sequences.forEach((q, s) => {
  const first = start + promptLengths[s]! - 1;
  const rows: number[] = [];
  for (let p = first; p + k - 1 < start + q.ids.length; p++) rows.push(p);
  perSequence.push(rows);
  rowsAll.push(...rows);
  start += q.ids.length;
});
const leading = await leadingAgreement(params, data, Int32Array.from(rowsAll));
const steps: number[] = [];
let at = 0;
perSequence.forEach((rows) => {
  const counts = leading.subarray(at, at + rows.length);
  at += rows.length;
  steps.push(...walkSteps(counts, options.tokens));
});
const report = {
  heads: options.heads,
  decoded: { tau: decoded.tau, acceptancePerOffset: decoded.acceptancePerOffset, identical: decoded.identical },
  teacherForcedSteps: stepAcceptance(steps, k - 1),
  teacherForcedPerPosition: perPositionAcceptance(leading, k - 1),
};
console.log(JSON.stringify(report));
model.dispose();
