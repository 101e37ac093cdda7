/**
 * `npm run bench:adapt` — online adaptation of draft heads on a domain shift. stories260K with
 * its committed story-trained heads decodes repeated templates ("The cat. The dog. The cat. The
 * dog.", tools/heads/domains.ts), a kind of text those heads draft poorly. After every decode a
 * `createHeadAdapter` learns from the committed text; every `--every` decodes, τ is measured on
 * held-out templates (noun pairs it never adapted on), chain drafting with 3 drafts, each output
 * checked against greedy. Prints one markdown table per run: τ before and after N adapted
 * decodes, the adaptation's time as a share of the decodes' time, and whether every output
 * was identical to greedy.
 *
 *     npm run bench:adapt -- [--heads a.bin,b.bin] [--shares 0,1,0.25] [--decodes 96] [--every 32] [--json file]
 *
 * `--shares`: the adapter's `maxShare` per run (0: unbounded, every learn takes `--steps` steps).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { greedyDecode, speculativeDecode } from '../src/index.js';
import { createHeadAdapter } from '../src/models/adapter.js';
import { CachedTransformer, loadLlama2c, type Llama2cTokenizer } from '../src/models/index.js';
import { registerWasmTrainingKernels } from '../src/training/index.js';
import { parseCommandLine } from '../tools/args.js';
import { NODE_BACKENDS, useBackend, type NodeBackend } from '../tools/backend.js';
import { adaptationPrompts, heldOutTemplatePrompts } from '../tools/heads/domains.js';

const COMMAND = {
  name: 'bench:adapt',
  usage: 'npm run bench:adapt -- [options]',
  summary: 'τ of story-trained draft heads on held-out repeated templates, before and after online adaptation (createHeadAdapter) on other templates.',
  options: {
    model: { type: 'string', default: '../shared/models/stories260K', help: 'folder with stories260K.bin and tok512.bin' },
    heads: { type: 'strings', default: ['fixtures/stories260k-heads/mlp-k4.bin', 'fixtures/stories260k-heads/sequential-k4.bin'], help: 'draft-heads files (trained on stories)' },
    shares: { type: 'numbers', default: [0, 1, 0.25], help: "the adapter's maxShare per run (0: unbounded)" },
    decodes: { type: 'number', default: 96, integer: true, min: 1, help: 'adapted decodes per run (at most 200)' },
    every: { type: 'number', default: 32, integer: true, min: 1, help: 'measure held-out τ after every this many decodes' },
    heldOut: { type: 'number', default: 8, integer: true, min: 1, help: 'held-out templates (at most 40)' },
    tokens: { type: 'number', default: 48, integer: true, min: 4, help: 'new tokens per decode' },
    steps: { type: 'number', default: 8, integer: true, min: 1, help: "the adapter's stepsPerUpdate" },
    batch: { type: 'number', default: 128, integer: true, min: 1, help: "the adapter's batchSize" },
    learningRate: { type: 'number', default: 1e-3, min: 0, help: "the adapter's learningRate" },
    backend: { type: 'string', default: 'wasm', choices: NODE_BACKENDS, help: 'tfjs backend (wasm: with registerWasmTrainingKernels)' },
    json: { type: 'string', default: '', help: 'also write the rows to this JSON file' },
  },
} as const;

interface Row {
  heads: string;
  maxShare: number;
  tau: Array<{ decodes: number; tau: number }>;
  adaptMs: number;
  decodeMs: number;
  steps: number;
  identical: boolean;
}

/** τ of chain drafting over `prompts` and whether each output equals greedy's. */
async function heldOutTau(cached: CachedTransformer, tokenizer: Llama2cTokenizer, prompts: string[], tokens: number): Promise<{ tau: number; identical: boolean }> {
  let committed = 0;
  let forwards = 0;
  let identical = true;
  for (const p of prompts) {
    const ids = tokenizer.encode(p);
    const fast = await speculativeDecode(cached, ids, { maxNewTokens: tokens, draftLength: 3 });
    const greedy = await greedyDecode(cached, ids, { maxNewTokens: tokens });
    identical &&= fast.tokens.join() === greedy.tokens.join();
    committed += fast.stats.tokens;
    forwards += fast.stats.forwards;
  }
  return { tau: committed / forwards, identical };
}

async function main(): Promise<void> {
  const o = parseCommandLine(COMMAND, process.argv.slice(2));
  if (o.backend === 'wasm') registerWasmTrainingKernels();
  await useBackend(o.backend as NodeBackend);
  const checkpoint = new Uint8Array(readFileSync(`${o.model}/stories260K.bin`));
  const tokenizerFile = new Uint8Array(readFileSync(`${o.model}/tok512.bin`));
  const train = adaptationPrompts(o.decodes);
  const held = heldOutTemplatePrompts(o.heldOut);
  const rows: Row[] = [];
  for (const headsFile of o.heads) {
    for (const share of o.shares) {
      const { model, tokenizer } = await loadLlama2c(checkpoint, { tokenizer: tokenizerFile, draftHeads: new Uint8Array(readFileSync(headsFile)) });
      const cached = new CachedTransformer(model);
      const first = await heldOutTau(cached, tokenizer!, held, o.tokens);
      const row: Row = { heads: basename(headsFile), maxShare: share, tau: [{ decodes: 0, tau: first.tau }], adaptMs: 0, decodeMs: 0, steps: 0, identical: first.identical };
      const adapter = createHeadAdapter(model, { stepsPerUpdate: o.steps, batchSize: o.batch, learningRate: o.learningRate, ...(share > 0 ? { maxShare: share } : {}) });
      for (let i = 0; i < train.length; i++) {
        const ids = tokenizer!.encode(train[i]!);
        const out = await speculativeDecode(cached, ids, { maxNewTokens: o.tokens, draftLength: 3 });
        const report = await adapter.learn(ids, share > 0 ? out : out.tokens); // the new ids alone: no time bound
        row.decodeMs += out.stats.wallTimeMs;
        row.adaptMs += report.ms;
        row.steps += report.steps;
        if ((i + 1) % o.every === 0 || i + 1 === train.length) {
          const now = await heldOutTau(cached, tokenizer!, held, o.tokens);
          row.tau.push({ decodes: i + 1, tau: now.tau });
          row.identical &&= now.identical;
          process.stderr.write(`  ${row.heads} maxShare ${share || '∞'}: ${i + 1} decodes, τ ${now.tau.toFixed(2)}, ${row.steps} steps\n`);
        }
      }
      adapter.dispose();
      cached.dispose();
      model.dispose();
      rows.push(row);
    }
  }
  const marks = rows[0]!.tau.map((t) => t.decodes);
  const lines = [
    `| heads | maxShare | ${marks.map((n) => (n === 0 ? 'τ before' : `τ after ${n}`)).join(' | ')} | steps | adaptation ÷ decode time | identical to greedy |`,
    `|---|---:|${marks.map(() => '---:').join('|')}|---:|---:|---|`,
    ...rows.map((r) => `| ${r.heads} | ${r.maxShare || '∞'} | ${r.tau.map((t) => t.tau.toFixed(2)).join(' | ')} | ${r.steps} | ${(r.adaptMs / r.decodeMs).toFixed(2)} | ${r.identical ? 'yes' : 'NO'} |`),
  ];
  const command = `npm run bench:adapt -- ${process.argv.slice(2).join(' ')}`.trim();
  console.log(`Online adaptation on a domain shift: stories260K, ${o.backend}, ${train.length} adapted decodes of ${o.tokens} tokens on repeated templates, held-out τ on ${held.length} templates of unseen noun pairs (chain, 3 drafts); adapter: ${o.steps} steps × ${o.batch} rows per decode, learning rate ${o.learningRate}. ${new Date().toISOString()}, Node ${process.version}, tfjs ${tf.version_core}. Command: \`${command}\`.\n`);
  console.log(lines.join('\n'));
  if (o.json) {
    writeFileSync(o.json, JSON.stringify({ date: new Date().toISOString(), command, settings: o, rows }, null, 2));
    console.log(`\nwrote ${o.json}`);
  }
  if (rows.some((r) => !r.identical)) process.exitCode = 1; // exactness is never traded for speed
}

await main();
