/**
 * `npm run train:heads -- --model <dir> --kind mlp|sequential --heads 4 --minutes N …`: draft
 * heads for a frozen pretrained model by self-distillation: a llama2.c model (e.g. stories260K)
 * or a tfjs-mtp checkpoint (e.g. fixtures/tslib-k4; sequential modules), see tools/heads/base.ts.
 *
 *   1. corpus: the model's own text, seeded, generated in batches (tools/heads/corpus.ts), saved
 *      as corpus.json, with the frozen trunk's final hidden states of every position;
 *   2. (reusing a corpus.json: the hidden states are recomputed once);
 *   3. --draftVocab N: the N most frequent corpus tokens become the heads' draft vocabulary
 *      (tools/heads/draft_vocab.ts); the drafts are trained, measured and saved with it;
 *   4. Adam on the draft heads only, in large batches of cached states, until --minutes of wall
 *      time (counted from the start, corpus included) minus --reserve-seconds, or --steps steps
 *      (a progress bar with per-offset loss and ETA; a checkpoint every --checkpoint-seconds;
 *      --resume continues from it);
 *   5. heads.bin (an `exportDraftHeads` file, with the draft vocabulary: attach with
 *      `loadLlama2c(ckpt, { draftHeads })`, or `attachDraftHeads(withSequentialHeads(model, k, H),
 *      bytes)`) and training.json (settings, seed, corpus size, draft vocabulary size and coverage,
 *      held-out per-offset loss and agreement, τ on held-out prompts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { SingleBar } from 'cli-progress';
import { type LayersModel } from '@tensorflow/tfjs-layers';
import type { MultiTokenHead } from '../src/layers/index.js';
import { exportDraftHeads } from '../src/models/draft_heads.js';
import { parseCommandLine } from '../tools/args.js';
import { NODE_BACKENDS, useBackend } from '../tools/backend.js';
import { registerWasmTrainingKernels } from '../tools/wasm/index.js';
import { uniformStream } from '../src/decoding/random.js';
import { buildCorpus, type CorpusSequence, hiddenStates } from '../tools/heads/corpus.js';
import { loadHeadsBase } from '../tools/heads/base.js';
import { batchLoss, type DraftParams, evaluate, mlpParams, prepareData } from '../tools/heads/train.js';
import { sequentialParams } from '../tools/heads/sequential.js';
import { measureTauOn } from '../tools/heads/measure.js';
import { frequentTokens } from '../tools/heads/draft_vocab.js';
import type { SequentialMtpHead } from '../src/layers/sequential_mtp.js';

const COMMAND = {
  name: 'train:heads',
  usage: 'npm run train:heads -- --model <dir> [options]',
  summary: 'Trains draft heads on a frozen model (a llama2.c .bin + tokenizer, or a tfjs-mtp checkpoint folder, in --model) by self-distillation, and writes heads.bin + training.json.',
  options: {
    model: { type: 'string', default: '../shared/models/stories260K', help: 'folder with a llama2.c checkpoint (.bin) and its tokenizer (tok*.bin), or a tfjs-mtp checkpoint (model.json + weights.bin; sequential heads)' },
    out: { type: 'string', default: 'test-output/heads', help: 'output folder (corpus.json, checkpoint.*, heads.bin, training.json)' },
    kind: { type: 'string', default: 'mlp', choices: ['mlp', 'sequential'], help: 'parallel mlp offset heads, or sequential MTP modules' },
    heads: { type: 'number', default: 4, integer: true, min: 2, help: 'k: offsets including offset 0 (the model’s own head)' },
    draftVocab: { type: 'number', default: 0, integer: true, min: 0, help: 'draft vocabulary: the N most frequent corpus tokens (ties by lower id); the heads are trained, measured and saved drafting from them only (0: the whole vocabulary)' },
    hidden: { type: 'number', default: 256, integer: true, min: 1, help: 'MLP width H of each head/module' },
    minutes: { type: 'number', default: 5, min: 0, help: 'wall time of the whole run: corpus, training, evaluation and τ (training gets what the corpus leaves, minus --reserve-seconds)' },
    reserveSeconds: { type: 'number', default: 90, min: 0, help: 'seconds of --minutes kept for the held-out evaluation and τ after training' },
    corpusTokens: { type: 'number', default: 100_000, integer: true, min: 1000, help: 'corpus size in tokens' },
    greedyShare: { type: 'number', default: 0.8, min: 0, help: 'share of greedy sequences (the rest are temperature/top-p samples)' },
    sequenceTokens: { type: 'number', default: 200, integer: true, min: 8, help: 'tokens per corpus sequence (its opening included)' },
    maxPrefix: { type: 'number', default: 16, integer: true, min: 0, help: 'greedy sequences: up to this many sampled tokens after the opening, then greedy' },
    corpusFrom: { type: 'string', default: '', help: 'a folder of an earlier run whose corpus (corpus.json + corpus.hidden.bin) to reuse when its settings match' },
    corpusBatch: { type: 'number', default: 128, integer: true, min: 1, help: 'sequences generated together (batched trunk forward)' },
    temperature: { type: 'number', default: 0.8, min: 0, help: 'temperature of the sampled sequences' },
    topP: { type: 'number', default: 0.9, min: 0, help: 'top-p of the sampled sequences' },
    targets: { type: 'string', default: 'hard', choices: ['hard', 'soft', 'mix'], help: "the frozen model's argmax (hard), its distribution (soft), or half each" },
    batch: { type: 'number', default: 2048, integer: true, min: 1, help: 'rows per Adam step' },
    learningRate: { type: 'number', default: 3e-3, min: 0, help: 'Adam learning rate (decays linearly to 10% over the training time)' },
    heldOut: { type: 'number', default: 0.1, min: 0, help: 'share of corpus sequences held out for the metrics' },
    evalRows: { type: 'number', default: 10_000, integer: true, min: 1, help: 'held-out rows evaluated' },
    checkpointSeconds: { type: 'number', default: 60, min: 1, help: 'seconds between checkpoints' },
    steps: { type: 'number', default: 0, integer: true, min: 0, help: 'stop training after this many Adam steps (0: only the time budget stops it)' },
    seed: { type: 'number', default: 1, integer: true, min: 0, help: 'seed of the corpus, the initial weights and the batches' },
    backend: { type: 'string', default: 'wasm', choices: NODE_BACKENDS, help: 'tfjs backend' },
    resume: { type: 'boolean', help: 'continue from out/checkpoint.* (same settings)' },
    tauTokens: { type: 'number', default: -1, integer: true, min: -1, help: "new tokens per held-out prompt when measuring τ with speculativeDecode (0: skip; -1: the model's default, 200 for llama2.c, the context minus the prompt for a tfjs-mtp checkpoint)" },
  },
} as const;

type Settings = ReturnType<typeof parseCommandLine<typeof COMMAND.options>>;

const HARD_WEIGHT = { hard: 1, soft: 0, mix: 0.5 } as const;

/**
 * The corpus and its hidden states: reused from corpus.json + corpus.hidden.bin in --corpus-from
 * (or --out) when made with the same settings and model, else generated and saved in --out.
 */
async function corpusFor(s: Settings, modelFile: string, model: LayersModel, unembeddingT: tf.Tensor2D, openings: number[][]): Promise<{ sequences: CorpusSequence[]; hidden: Float32Array; seconds: number; reused?: string }> {
  const settings = { model: modelFile, tokens: s.corpusTokens, greedyShare: s.greedyShare, sequenceTokens: s.sequenceTokens, temperature: s.temperature, topP: s.topP, maxPrefix: s.maxPrefix, batch: s.corpusBatch, seed: s.seed };
  for (const dir of [s.corpusFrom ? resolve(s.corpusFrom) : '', s.out].filter(Boolean)) {
    const file = join(dir, 'corpus.json');
    if (!existsSync(file)) continue;
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { settings: typeof settings; sequences: CorpusSequence[]; seconds: number };
    if (JSON.stringify(saved.settings) !== JSON.stringify(settings)) continue;
    const bin = join(dir, 'corpus.hidden.bin');
    const bytes = existsSync(bin) ? readFileSync(bin) : null;
    const hidden = bytes ? new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) : hiddenStates(model, saved.sequences, unembeddingT.shape[0]);
    console.log(`corpus: reusing ${file} (${saved.sequences.length} sequences, generated in ${saved.seconds.toFixed(0)} s by an earlier run)`);
    return { ...saved, hidden, reused: file };
  }
  const bar = new SingleBar({ format: 'corpus   [{bar}] {value}/{total} tokens | {eta_formatted} left', etaBuffer: 50, noTTYOutput: true, notTTYSchedule: 15_000 });
  bar.start(s.corpusTokens, 0);
  const t0 = performance.now();
  const { sequences, hidden } = await buildCorpus(model, unembeddingT, openings, settings, (n) => bar.update(Math.min(n, s.corpusTokens)));
  bar.stop();
  const seconds = (performance.now() - t0) / 1000;
  writeFileSync(join(s.out, 'corpus.json'), JSON.stringify({ settings, seconds, sequences }));
  writeFileSync(join(s.out, 'corpus.hidden.bin'), new Uint8Array(hidden.buffer, hidden.byteOffset, hidden.byteLength));
  return { sequences, hidden, seconds };
}

/** Saves the variables, the optimizer's state and the loop's position. */
async function saveCheckpoint(s: Settings, params: DraftParams, optimizer: tf.AdamOptimizer, state: { step: number; seconds: number; rngDraws: number }): Promise<void> {
  const named: Array<{ name: string; tensor: tf.Tensor }> = [...[...params.variables].map(([name, v]) => ({ name, tensor: v as tf.Tensor })), ...((await optimizer.getWeights()) as unknown as Array<{ name: string; tensor: tf.Tensor }>)];
  const arrays = await Promise.all(named.map((n) => n.tensor.data()));
  const total = arrays.reduce((a, x) => a + x.length, 0);
  const flat = new Float32Array(total);
  let at = 0;
  arrays.forEach((x) => (flat.set(x as Float32Array, at), (at += x.length)));
  writeFileSync(join(s.out, 'checkpoint.bin'), new Uint8Array(flat.buffer));
  writeFileSync(join(s.out, 'checkpoint.json'), JSON.stringify({ settings: s, ...state, tensors: named.map((n) => ({ name: n.name, shape: n.tensor.shape })) }));
}

/** Restores {@link saveCheckpoint}'s state, or returns null when there is none. */
async function loadCheckpoint(s: Settings, params: DraftParams, optimizer: tf.AdamOptimizer): Promise<{ step: number; seconds: number; rngDraws: number } | null> {
  const file = join(s.out, 'checkpoint.json');
  if (!existsSync(file)) return null;
  const meta = JSON.parse(readFileSync(file, 'utf8')) as { settings: Settings; step: number; seconds: number; rngDraws: number; tensors: Array<{ name: string; shape: number[] }> };
  for (const key of ['kind', 'heads', 'hidden', 'seed', 'corpusTokens', 'targets', 'draftVocab'] as const) {
    const saved = meta.settings[key] ?? (key === 'draftVocab' ? 0 : undefined); // checkpoints without the option drafted from the whole vocabulary
    if (saved !== s[key]) throw new Error(`train:heads: --resume: the checkpoint was made with --${key} ${saved}, but this run has ${s[key]}.`);
  }
  const bytes = readFileSync(join(s.out, 'checkpoint.bin'));
  const flat = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  let at = 0;
  const optimizerWeights: Array<{ name: string; tensor: tf.Tensor }> = [];
  for (const t of meta.tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    const value = tf.tensor(flat.subarray(at, (at += size)), t.shape);
    const variable = params.variables.get(t.name);
    if (variable) {
      variable.assign(value);
      value.dispose();
    } else optimizerWeights.push({ name: t.name, tensor: value });
  }
  await optimizer.setWeights(optimizerWeights as unknown as Parameters<tf.AdamOptimizer['setWeights']>[0]);
  optimizerWeights.forEach((w) => w.tensor.dispose());
  return { step: meta.step, seconds: meta.seconds, rngDraws: meta.rngDraws };
}

async function main(): Promise<void> {
  const runStart = performance.now();
  const s = parseCommandLine(COMMAND);
  s.out = resolve(s.out);
  mkdirSync(s.out, { recursive: true });
  if (s.backend === 'wasm') registerWasmTrainingKernels();
  await useBackend(s.backend as 'wasm' | 'cpu');
  const sequential = s.kind === 'sequential';
  const base = await loadHeadsBase(resolve(s.model), s.kind as 'mlp' | 'sequential', s.heads, s.hidden, s.seed);
  if (s.sequenceTokens > base.maxLength) throw new RangeError(`train:heads: --sequence-tokens must be at most the model's context (${base.maxLength}), but got ${s.sequenceTokens}.`);
  const model = base.model;
  const head = model.getLayer('mtp_head') as unknown as MultiTokenHead | SequentialMtpHead;
  const embedding = head.unembedding.matrix(); // [V, D] frozen
  const unembeddingT = tf.keep(tf.transpose(embedding)) as tf.Tensor2D; // [D, V]: wasm's matMul(a, b, false, true) is slow
  const [vocab, d] = embedding.shape;
  if (s.draftVocab > vocab) throw new RangeError(`train:heads: --draftVocab must be at most the vocabulary size (${vocab}), but got ${s.draftVocab}.`);
  console.log(`model: ${s.model} (${base.modelFile}, D = ${d}, V = ${vocab}), kind ${s.kind}, k = ${s.heads}, H = ${s.hidden}, backend ${s.backend}; ${base.openings.length} openings`);

  const corpus = await corpusFor(s, base.modelFile, model, unembeddingT, base.openings);
  const tokens = corpus.sequences.reduce((a, q) => a + q.ids.length, 0);
  const draftVocab = s.draftVocab > 0 ? frequentTokens(corpus.sequences, s.draftVocab, vocab) : null;
  if (draftVocab !== null) {
    head.setDraftVocab(draftVocab.ids); // the heads draft from it: trained, measured and exported with it
    console.log(`draft vocabulary: the ${draftVocab.ids.length} most frequent corpus tokens of ${vocab}, ${(100 * draftVocab.coverage).toFixed(1)}% of the corpus`);
  }
  const data = prepareData(corpus.sequences, corpus.hidden, d, unembeddingT, s.heads, s.heldOut, draftVocab?.ids);
  console.log(`corpus: ${corpus.sequences.length} sequences, ${tokens} tokens with their hidden states (${corpus.seconds.toFixed(0)} s); ${data.trainRows.length} training rows, ${data.heldRows.length} held out`);

  const draftT = data.draftIds === null ? unembeddingT : (tf.keep(tf.gather(unembeddingT, data.draftIds, 1)) as tf.Tensor2D); // [D, Vd]: the draft logits' columns
  const params: DraftParams = sequential ? sequentialParams(head as SequentialMtpHead) : mlpFromModel(head as MultiTokenHead, s.heads, draftT);
  const optimizer = tf.train.adam(s.learningRate, 0.9, 0.99, 1e-8);
  const varList = [...params.variables.values()];
  let state = { step: 0, seconds: 0, rngDraws: 0 };
  if (s.resume) {
    const loaded = await loadCheckpoint(s, params, optimizer);
    if (loaded) state = loaded;
    console.log(loaded ? `resumed at step ${loaded.step} (${loaded.seconds.toFixed(0)} s trained)` : 'no checkpoint: starting fresh');
  }
  const random = uniformStream(s.seed ^ 0x5eed);
  for (let i = 0; i < state.rngDraws; i++) random();

  const budget = state.seconds + Math.max(0, s.minutes * 60 - (performance.now() - runStart) / 1000 - s.reserveSeconds); // training seconds: the whole run fits --minutes
  const bar = new SingleBar({ format: 'training [{bar}] {percentage}% | step {step} | loss per offset {losses} | {eta_formatted} left', etaBuffer: 20, noTTYOutput: true, notTTYSchedule: 15_000 }); // a log line every 15 s when not on a terminal
  bar.start(Math.max(1, Math.round(budget)), Math.round(state.seconds), { step: state.step, losses: '-' });
  let lastSave = state.seconds;
  let start = performance.now() - state.seconds * 1000;
  const rows = new Int32Array(s.batch);
  while ((performance.now() - start) / 1000 < budget && (s.steps === 0 || state.step < s.steps)) {
    for (let r = 0; r < s.batch; r++) rows[r] = data.trainRows[Math.floor(random() * data.trainRows.length)]!;
    state.rngDraws += s.batch;
    const progress = (performance.now() - start) / 1000 / Math.max(budget, 1e-9);
    (optimizer as unknown as { learningRate: number }).learningRate = s.learningRate * (1 - 0.9 * Math.min(1, progress));
    let perOffset: tf.Tensor1D | null = null;
    const rowsTensor = tf.tensor1d(rows, 'int32');
    const { value, grads } = tf.variableGrads(() => {
      const out = batchLoss(params, data, rowsTensor, unembeddingT, { hardWeight: HARD_WEIGHT[s.targets as keyof typeof HARD_WEIGHT] });
      perOffset = tf.keep(out.perOffset);
      return out.loss;
    }, varList);
    optimizer.applyGradients(grads as unknown as Parameters<tf.AdamOptimizer['applyGradients']>[0]);
    tf.dispose([value, rowsTensor, ...Object.values(grads)]);
    state.step += 1;
    const losses = Array.from(await perOffset!.data()); // one small readback per step keeps the queue short
    (perOffset as tf.Tensor1D | null)?.dispose();
    state.seconds = (performance.now() - start) / 1000;
    bar.update(Math.min(Math.round(budget), Math.round(state.seconds)), { step: state.step, losses: losses.map((l) => l.toFixed(3)).join(' ') });
    if (state.seconds - lastSave >= s.checkpointSeconds) {
      const pause = performance.now();
      await saveCheckpoint(s, params, optimizer, state);
      start += performance.now() - pause; // saving does not count as training time
      lastSave = state.seconds;
    }
  }
  bar.stop();
  await saveCheckpoint(s, params, optimizer, state);

  const metrics = await evaluate(params, data, unembeddingT, s.evalRows);
  const facts = {
    command: `npm run train:heads -- ${process.argv.slice(2).join(' ')}`,
    settings: { ...s, out: undefined, model: undefined },
    modelFile: base.modelFile,
    seed: s.seed,
    corpus: { sequences: corpus.sequences.length, tokens, greedySequences: corpus.sequences.filter((q) => q.mode === 'greedy').length, generationSeconds: Math.round(corpus.seconds), reusedFrom: corpus.reused, trainRows: data.trainRows.length, heldOutRows: data.heldRows.length },
    draftVocab: draftVocab === null ? null : { size: draftVocab.ids.length, corpusCoverage: draftVocab.coverage },
    training: { steps: state.step, seconds: Math.round(state.seconds), backend: s.backend, parameters: varList.reduce((a, v) => a + v.size, 0) },
    wallSeconds: 0, // set below: the whole run, corpus and τ included
    cpuSeconds: 0, // set below: CPU time this process got in that wall time (the machine is shared)
    heldOut: metrics,
  };
  let bytes: Uint8Array;
  if (!sequential) writeBack(head as MultiTokenHead, params); // sequential: the layer's own variables were trained
  bytes = await exportDraftHeads(model, { heldOut: metrics, corpusTokens: tokens, seed: s.seed }); // with the head's draft vocabulary, if any
  writeFileSync(join(s.out, 'heads.bin'), bytes);
  const pct = (xs: number[]) => xs.map((x) => `${(100 * x).toFixed(1)}%`).join(' ');
  console.log(`held out (${metrics.rows} rows): agreement per offset ${pct(metrics.agreement)}; greedy chain ${pct(metrics.chain)}; τ estimate per position ${metrics.tauEstimate.toFixed(2)}, along decoder steps ${metrics.steps.tau.toFixed(2)}`);
  const tauTokens = s.tauTokens < 0 ? base.tauTokens : s.tauTokens;
  if (tauTokens > 0) {
    // the written file, attached to a fresh load of the base model: what a user gets
    const fresh = await base.withHeads(bytes);
    const tau = await measureTauOn(fresh, base.prompts, tauTokens);
    fresh.dispose();
    Object.assign(facts, { tau });
    console.log(`speculativeDecode on ${tau.perPrompt.length} held-out prompts × ${tauTokens} tokens: τ = ${tau.tau.toFixed(2)}, acceptance per offset ${pct(tau.acceptancePerOffset)}, output ${tau.identical ? 'identical to' : 'DIFFERENT from'} greedy`);
  }
  facts.wallSeconds = Math.round((performance.now() - runStart) / 1000);
  const cpu = process.cpuUsage();
  facts.cpuSeconds = Math.round((cpu.user + cpu.system) / 1e6);
  writeFileSync(join(s.out, 'training.json'), `${JSON.stringify(facts, null, 2)}\n`);
  console.log(`wrote ${join(s.out, 'heads.bin')} (${bytes.length} bytes) and training.json`);
}

/** Parallel mlp parameters starting from the model's freshly initialised offset heads, projected with `draftT` (`[D, V]`, or the draft vocabulary's `[D, Vd]`). */
function mlpFromModel(head: MultiTokenHead, k: number, draftT: tf.Tensor2D): DraftParams {
  const initial = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const names = ['w1', 'b1', 'w2', 'b2'];
  for (let j = 1; j < k; j++) {
    head.offsetHeads[j]!.weights.forEach((w, n) => {
      initial.set(`offset${j}/${names[n]}`, w.read().dataSync() as Float32Array); // setup only
      shapes.set(`offset${j}/${names[n]}`, w.shape as number[]);
    });
  }
  return mlpParams(initial, shapes, k, draftT);
}

/** Copies trained parallel-head variables into the model's offset heads. */
function writeBack(head: MultiTokenHead, params: DraftParams): void {
  const names = ['w1', 'b1', 'w2', 'b2'];
  for (let j = 1; j < head.numHeads; j++) head.offsetHeads[j]!.weights.forEach((w, n) => w.write(params.variables.get(`offset${j}/${names[n]}`)!));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
