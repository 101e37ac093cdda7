/**
 * `npm run train:heads -- --model <dir> --kind mlp|sequential --heads 4 --seconds N …`: draft heads
 * for a frozen model with the library's `trainDraftHeads`, then τ measured as a user gets it. The
 * model is a llama2.c folder (e.g. stories260K: corpus openings are the hand-written story
 * openings and vocabulary words of tools/heads/openings.ts, τ prompts the held-out ones), a
 * tfjs-mtp checkpoint folder (e.g. fixtures/tslib-k4: sequential modules, openings from its
 * training text) or a Hugging Face folder (config.json + model.safetensors or its shards +
 * tokenizer.json, e.g. SmolLM2-135M: generic openings through its tokenizer); see tools/heads/base.ts.
 *
 *   1. `trainDraftHeads(model, { openings, seconds, … })`: self-distillation, the whole budget
 *      (corpus, training, held-out evaluation) within --seconds;
 *   2. heads.bin (`writeDraftHeads`: attach with `loadLlama2c(ckpt, { draftHeads })`,
 *      `loadHfLlama(folder, { draftHeads })`, or `attachDraftHeads(withSequentialHeads(model, k, H), bytes)`);
 *   3. τ: the written file attached to a fresh load of the base model, `speculativeDecode`
 *      (greedy acceptance) against `greedyDecode` on the held-out prompts (tools/heads/measure.ts);
 *   4. training.json: the settings, the library's training facts and τ.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { trainDraftHeads, writeDraftHeads } from '../src/models/index.js';
import { type TrainDraftHeadsProgress } from '../src/models/train_heads/options.js';
import { parseCommandLine } from '../tools/args.js';
import { NODE_BACKENDS, useBackend } from '../tools/backend.js';
import { loadHeadsBase } from '../tools/heads/base.js';
import { measureTauOn } from '../tools/heads/measure.js';
import { registerWasmTrainingKernels } from '../tools/wasm/index.js';

const COMMAND = {
  name: 'train:heads',
  usage: 'npm run train:heads -- --model <dir> [options]',
  summary: 'Trains draft heads on a frozen model (a llama2.c .bin + tokenizer, a tfjs-mtp checkpoint folder or a Hugging Face folder, in --model) by self-distillation with trainDraftHeads, and writes heads.bin + training.json with τ on held-out prompts.',
  options: {
    model: { type: 'string', default: '../shared/models/stories260K', help: 'folder with a llama2.c checkpoint (.bin) and its tokenizer (tok*.bin), a tfjs-mtp checkpoint (model.json + weights.bin; sequential heads), or a Hugging Face checkpoint (config.json, model.safetensors or its index and shards, tokenizer.json)' },
    out: { type: 'string', default: 'test-output/heads', help: 'output folder (heads.bin, training.json)' },
    kind: { type: 'string', default: 'mlp', choices: ['mlp', 'sequential'], help: 'parallel mlp offset heads, or sequential MTP modules' },
    heads: { type: 'number', default: 4, integer: true, min: 2, help: 'k: offsets including offset 0 (the model’s own head)' },
    hidden: { type: 'number', default: 256, integer: true, min: 1, help: 'MLP width H of each head/module' },
    draftVocab: { type: 'number', default: 0, integer: true, min: 0, help: 'draft vocabulary: the N most frequent corpus tokens (0: the whole vocabulary)' },
    seconds: { type: 'number', default: 120, min: 1, help: 'wall time of training: corpus, Adam steps and the held-out evaluation (τ is measured after)' },
    steps: { type: 'number', default: 0, integer: true, min: 0, help: 'stop training after this many Adam steps (0: only --seconds stops it)' },
    corpusTokens: { type: 'number', default: 0, integer: true, min: 0, help: "corpus size in tokens (0: the library's default)" },
    sequenceTokens: { type: 'number', default: 0, integer: true, min: 0, help: "tokens per corpus sequence, its opening included (0: the library's default, at most the context)" },
    greedyShare: { type: 'number', default: -1, min: -1, help: "share of greedy sequences (the rest are top-p samples; -1: the library's default)" },
    batch: { type: 'number', default: 0, integer: true, min: 0, help: "rows per Adam step (0: the library's default)" },
    learningRate: { type: 'number', default: 0, min: 0, help: "Adam learning rate, decaying linearly to 10% (0: the library's default)" },
    targets: { type: 'string', default: 'hard', choices: ['hard', 'soft', 'mix'], help: "the frozen model's argmax (hard), its distribution (soft), or half each" },
    topK: { type: 'number', default: 0, integer: true, min: 0, help: "HASS's ranking term over the frozen model's K most likely tokens, added to the loss (0: none)" },
    feed: { type: 'string', default: 'truth', choices: ['truth', 'drafts'], help: 'what sequential modules are fed in training: the true tokens, or their own drafts as a decode feeds them' },
    heldOut: { type: 'number', default: 0.1, min: 0, help: 'share of corpus openings held out for the metrics' },
    seed: { type: 'number', default: 1, integer: true, min: 0, help: 'seed of the corpus and the batches' },
    openings: { type: 'string', default: 'model', choices: ['model', 'self'], help: "corpus openings: the model's (story openings and vocabulary words, windows of a checkpoint's training text, or short generic texts for a Hugging Face model), or the library's own (its start token and sampled tokens)" },
    backend: { type: 'string', default: 'wasm', choices: NODE_BACKENDS, help: 'tfjs backend' },
    tauTokens: { type: 'number', default: -1, integer: true, min: -1, help: "new tokens per held-out prompt when measuring τ (0: skip; -1: the model's default, 200 for llama2.c, 100 for Hugging Face)" },
  },
} as const;

/** One progress line (every evaluation, and every 10 s). */
function logProgress(p: TrainDraftHeadsProgress, state: { last: number }): void {
  if (p.phase !== 'evaluating' && performance.now() - state.last < 10_000) return;
  state.last = performance.now();
  const what = p.phase === 'corpus' ? `${p.corpusTokens} tokens, ${p.tokensPerSecond.toFixed(0)} tokens/s` : `step ${p.step}, loss per offset ${p.lossPerOffset.map((l) => l.toFixed(3)).join(' ')}${p.heldOutTau !== undefined ? `, held-out τ estimate ${p.heldOutTau.toFixed(2)}` : ''}`;
  console.log(`${p.phase.padEnd(10)} ${what} (${p.seconds.toFixed(0)} s)`);
}

async function main(): Promise<void> {
  const s = parseCommandLine(COMMAND);
  const out = resolve(s.out);
  mkdirSync(out, { recursive: true });
  if (s.backend === 'wasm') registerWasmTrainingKernels();
  await useBackend(s.backend as 'wasm' | 'cpu');
  const base = await loadHeadsBase(resolve(s.model), s.kind as 'mlp' | 'sequential', s.heads, s.hidden, s.seed);
  console.log(`model: ${s.model} (${base.modelFile}), kind ${s.kind}, k = ${s.heads}, H = ${s.hidden}, backend ${s.backend}; ${s.openings === 'model' ? `${base.openings.length} openings` : "the library's own openings"}`);
  const state = { last: 0 };
  const heads = await trainDraftHeads(base.model, {
    seconds: s.seconds,
    ...(s.steps > 0 ? { steps: s.steps } : {}),
    ...(s.openings === 'model' ? { openings: base.openings } : {}),
    ...(s.corpusTokens > 0 ? { corpusTokens: s.corpusTokens } : {}),
    ...(s.sequenceTokens > 0 ? { sequenceTokens: Math.min(s.sequenceTokens, base.maxLength) } : {}),
    ...(s.greedyShare >= 0 ? { greedyShare: s.greedyShare } : {}),
    ...(s.batch > 0 ? { batchSize: s.batch } : {}),
    ...(s.learningRate > 0 ? { learningRate: s.learningRate } : {}),
    ...(s.draftVocab > 0 ? { draftVocab: s.draftVocab } : {}),
    targets: s.targets as 'hard' | 'soft' | 'mix',
    topK: s.topK,
    feed: s.feed as 'truth' | 'drafts',
    heldOut: s.heldOut,
    seed: s.seed,
    onProgress: (p) => logProgress(p, state),
  });
  const bytes = writeDraftHeads(heads);
  writeFileSync(join(out, 'heads.bin'), bytes);
  base.model.dispose();
  const facts: Record<string, unknown> = { command: `npm run train:heads -- ${process.argv.slice(2).join(' ')}`, settings: { ...s, out: undefined, model: undefined }, modelFile: base.modelFile, ...heads.manifest.training };
  const held = (heads.manifest.training as { heldOut: { tau: number; acceptancePerOffset: number[] } | null }).heldOut;
  const pct = (xs: number[]) => xs.map((x) => `${(100 * x).toFixed(1)}%`).join(' ');
  if (held !== null) console.log(`held out: τ estimate along the decoder's steps ${held.tau.toFixed(2)} (acceptance per offset ${pct(held.acceptancePerOffset)})`);
  const tauTokens = s.tauTokens < 0 ? base.tauTokens : s.tauTokens;
  if (tauTokens > 0) {
    const fresh = await base.withHeads(bytes); // the written file on a fresh load of the base model: what a user gets
    const tau = await measureTauOn(fresh, base.prompts, tauTokens);
    fresh.dispose();
    facts['tau'] = tau;
    console.log(`speculativeDecode on ${tau.perPrompt.length} held-out prompts × ${tauTokens} tokens: τ = ${tau.tau.toFixed(2)}, acceptance per offset ${pct(tau.acceptancePerOffset)}, output ${tau.identical ? 'identical to' : 'DIFFERENT from'} greedy`);
  }
  writeFileSync(join(out, 'training.json'), `${JSON.stringify(facts, null, 2)}\n`);
  console.log(`wrote ${join(out, 'heads.bin')} (${bytes.length} bytes) and training.json`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
