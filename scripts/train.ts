/**
 * `npm run train` — trains the reference transformer (`tfjs-mtp/models`) with k = 4 multi-token
 * heads on TypeScript's lib.*.d.ts files, byte-level, and writes the checkpoint the demo, the
 * bench and the golden test load: fixtures/<name>/{model.json, weights.bin, training.json}.
 *
 * Stage 1 (`--stage joint`): trunk + heads together, one multiTokenLoss over all offsets, as in
 * Gloeckle et al. 2024 §2: trained from scratch, the trunk then learns states that carry the next
 * k tokens, which the lightweight residual heads alone could not add afterwards; offset 0 keeps
 * the largest weight so next-token quality (what the verifier accepts against) comes first.
 * Stage 2 (`--stage heads`): self-distillation of the draft heads against the frozen verifier
 * (tools/distill.ts). Both run the same budgeted loop (`trainLoop`).
 *
 * Speed: the wasm backend, with training-only kernel registrations (tools/wasm): a JS
 * `UnsortedSegmentSum` (the embedding gradient; wasm has none), matMul wrappers that avoid
 * wasm's slow transposed/batched paths, and JS `SplitV` / bias-gradient `Sum`. See
 * docs/models.md for the measured tokens/s of each.
 *
 *     npm run train -- [--minutes 32] [--name tslib-k4] [--backend wasm|cpu] [--seed 1234] ...
 *     npm run train -- --stage heads --minutes 10 --learningRate 1e-3
 *     npm run train -- --help
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { multiTokenLoss, multiTokenTargets, parameterReport, formatParameterReport } from '../src/index.js';
import { uniformStream } from '../src/decoding/random.js';
import { createTransformer } from '../src/models/transformer.js';
import { resolveTransformerConfig, type TransformerConfig } from '../src/models/config.js';
import { parseCommandLine, type OptionValues } from '../tools/args.js';
import { NODE_BACKENDS, useBackend } from '../tools/backend.js';
import { loadCheckpoint, saveCheckpoint } from '../tools/checkpoint.js';
import { loadCorpus, sampleWindows, strideWindows, type Corpus } from '../tools/corpus.js';
import { distillLoss, distillParts, teacherBatch, type DistillParts } from '../tools/distill.js';
import { registerWasmTrainingKernels } from '../tools/wasm/index.js';

// ---- settings (every one is recorded in training.json) --------------------------------------
const COMMAND = {
  name: 'train',
  usage: 'npm run train -- [options]',
  summary: 'Trains the reference transformer with multi-token heads on TypeScript lib files and writes <dir>/<name>/.',
  options: {
    stage: { type: 'string', default: 'joint', choices: ['joint', 'heads'], help: "'joint': stage 1 from scratch; 'heads': stage 2, distil the draft heads of <dir>/<name>" },
    name: { type: 'string', default: 'tslib-k4', help: 'checkpoint folder under --dir' },
    dir: { type: 'string', default: 'fixtures', help: 'folder holding the checkpoint folders' },
    backend: { type: 'string', default: NODE_BACKENDS[0], choices: NODE_BACKENDS, help: 'tfjs backend' },
    minutes: { type: 'number', default: 32, min: 0, help: "wall-clock budget; the lr schedule runs on elapsed time (32: a 30–40 min budget on a shared 2-core machine)" },
    maxSteps: { type: 'number', default: 0, integer: true, min: 0, help: 'stop after this many steps even within the budget (0: no limit)' },
    seed: { type: 'number', default: 1234, integer: true, help: 'seed of the initial weights and of the batch sampler' },
    batchSize: { type: 'number', default: 16, integer: true, min: 1, help: 'windows per step (16 × 128 = 2048 tokens: stable Adam steps at this model size)' },
    learningRate: { type: 'number', default: 2e-3, min: 0, help: "peak Adam lr (small models tolerate a high lr; nanoGPT's shakespeare-char uses 1e-3)" },
    minLearningRate: { type: 'number', default: 2e-4, min: 0, help: 'cosine floor' },
    warmupSteps: { type: 'number', default: 100, integer: true, min: 1, help: 'linear warm-up steps' },
    clipNorm: { type: 'number', default: 1, min: 0, help: 'global gradient-norm clip (stage 1)' },
    offsetWeights: { type: 'numbers', default: [1, 0.8, 0.8, 0.8], help: 'multiTokenLoss weight per offset 0…k-1: offset 0 first, drafts almost as much (τ is the goal)' },
    evalEvery: { type: 'number', default: 250, integer: true, min: 1, help: 'steps between held-out evaluations' },
    evalWindows: { type: 'number', default: 32, integer: true, min: 1, help: 'held-out windows per evaluation during training' },
    finalEvalWindows: { type: 'number', default: 256, integer: true, min: 1, help: 'windows of the final train / held-out evaluation' },
    saveEveryMinutes: { type: 'number', default: 5, min: 0, help: 'minutes between checkpoints during training' },
    logEvery: { type: 'number', default: 25, integer: true, min: 1, help: 'steps between log lines' },
    // the model (stage 1; stage 2 keeps the checkpoint's); seqLength = maxLength, so every position embedding is trained
    vocabSize: { type: 'number', default: 256, integer: true, min: 1, help: 'model: vocabulary (bytes)' },
    maxLength: { type: 'number', default: 128, integer: true, min: 1, help: 'model: context, and the training window length' },
    hiddenSize: { type: 'number', default: 128, integer: true, min: 1, help: 'model: width D' },
    numLayers: { type: 'number', default: 4, integer: true, min: 1, help: 'model: blocks' },
    numAttentionHeads: { type: 'number', default: 4, integer: true, min: 1, help: 'model: attention heads' },
    mlpRatio: { type: 'number', default: 4, integer: true, min: 1, help: 'model: MLP width / D' },
    mtpHeads: { type: 'number', default: 4, integer: true, min: 1, help: 'model: k, the multi-token heads' },
    headKind: { type: 'string', default: 'residual', help: 'model: kind of the offset heads 1…k-1' },
  },
} as const;

type Options = OptionValues<typeof COMMAND.options>;
const MODEL_KEYS = ['vocabSize', 'maxLength', 'hiddenSize', 'numLayers', 'numAttentionHeads', 'mlpRatio', 'mtpHeads', 'headKind'] as const;

/** The training settings, as recorded: the options minus the model's, plus the model config and window length. */
type Settings = Omit<Options, (typeof MODEL_KEYS)[number]> & { seqLength: number; model: TransformerConfig };

function settingsOf(options: Options): Settings {
  const model = Object.fromEntries(MODEL_KEYS.map((key) => [key, options[key]])) as TransformerConfig;
  const rest = Object.fromEntries(Object.entries(options).filter(([key]) => !(MODEL_KEYS as readonly string[]).includes(key)));
  return { ...(rest as Omit<Options, (typeof MODEL_KEYS)[number]>), seqLength: options.maxLength, model: { ...model, seed: options.seed } };
}

// ---- stage 1: one step, one evaluation ------------------------------------------------------
/** Model input `[B, T]` and multi-token target ids `[B, T, k]` from windows of T + k bytes. */
function batchTensors(windows: Int32Array, count: number, s: Settings, k: number) {
  return tf.tidy(() => {
    const tokens = tf.tensor2d(windows, [count, s.seqLength + k], 'int32'); // [B, T+k]
    const targets = tf.slice(multiTokenTargets(tokens, k), [0, 0, 0], [count, s.seqLength, k]); // [B, T, k], none masked
    const inputs = tf.slice(tokens, [0, 0], [count, s.seqLength]); // [B, T]
    return { inputs, targets };
  });
}

function lossOf(model: LayersModel, inputs: tf.Tensor, targets: tf.Tensor, s: Settings) {
  const logits = model.apply(inputs) as tf.Tensor; // [B, T, k, V]
  return multiTokenLoss(targets, logits, { offsetWeights: s.offsetWeights }); // id targets: one-hot inside the loss
}

function trainStep(model: LayersModel, optimizer: tf.AdamOptimizer, windows: Int32Array, s: Settings, k: number): tf.Tensor1D {
  return tf.tidy(() => {
    const { inputs, targets } = batchTensors(windows, s.batchSize, s, k);
    let perOffset: tf.Tensor1D | null = null;
    const { grads } = tf.variableGrads(() => {
      const out = lossOf(model, inputs, targets, s);
      perOffset = tf.keep(out.perOffset);
      return out.loss;
    }, model.trainableWeights.map((w) => (w as unknown as { read(): tf.Variable }).read()));
    const names = Object.keys(grads);
    const norm = tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n]!))))); // scalar
    const scale = tf.minimum(1, tf.div(s.clipNorm, tf.add(norm, 1e-6)));
    optimizer.applyGradients(Object.fromEntries(names.map((n) => [n, tf.mul(grads[n]!, scale)])));
    return perOffset!;
  });
}

/**
 * The mean over `count` evenly spaced windows of `length` bytes of a per-window vector metric,
 * computed a batch at a time by `metric(windows, n)` (a `[m]` mean over its `n` windows).
 */
async function averageOver(data: Uint8Array, count: number, length: number, batchSize: number, metric: (windows: Int32Array, n: number) => tf.Tensor1D): Promise<number[]> {
  const windows = strideWindows(data, count, length);
  let sums: number[] = [];
  for (let i = 0; i < count; i += batchSize) {
    const n = Math.min(batchSize, count - i);
    const values = tf.tidy(() => metric(windows.subarray(i * length, (i + n) * length), n));
    const means = Array.from(await values.data());
    values.dispose();
    sums = means.map((v, j) => (sums[j] ?? 0) + v * n);
  }
  return sums.map((v) => v / count);
}

/** Held-out (or train) loss per offset, nats/byte. */
function evaluate(model: LayersModel, data: Uint8Array, count: number, s: Settings, k: number): Promise<number[]> {
  return averageOver(data, count, s.seqLength + k, s.batchSize, (windows, n) => {
    const { inputs, targets } = batchTensors(windows, n, s, k);
    return lossOf(model, inputs, targets, s).perOffset;
  });
}

// ---- stage 2: distil the draft heads (tools/distill.ts) ---------------------------------------
/** Teacher-forced acceptance per offset 1…k-1. */
function agreementOn(parts: DistillParts, data: Uint8Array, count: number, s: Settings): Promise<number[]> {
  return averageOver(data, count, s.seqLength, s.batchSize, (windows, n) => {
    const { hidden, teacher } = teacherBatch(parts, tf.tensor2d(windows, [n, s.seqLength], 'int32'));
    return distillLoss(parts, hidden, teacher).agreement; // [k-1]
  });
}

function distillStep(parts: DistillParts, optimizer: tf.AdamOptimizer, windows: Int32Array, s: Settings): tf.Tensor1D {
  return tf.tidy(() => {
    const { hidden, teacher } = teacherBatch(parts, tf.tensor2d(windows, [s.batchSize, s.seqLength], 'int32'));
    let kept: tf.Tensor1D | null = null;
    optimizer.minimize(() => {
      const out = distillLoss(parts, hidden, teacher);
      kept = tf.keep(out.agreement);
      return out.loss;
    }, false, parts.trainable);
    return kept!;
  });
}

// ---- the loop ---------------------------------------------------------------------------------
function learningRate(s: Settings, step: number, progress: number): number {
  if (step < s.warmupSteps) return (s.learningRate * (step + 1)) / s.warmupSteps;
  const cosine = 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
  return s.minLearningRate + (s.learningRate - s.minLearningRate) * cosine;
}

const fmt = (xs: number[]) => xs.map((x) => x.toFixed(3)).join(' ');

function bar(progress: number, width = 20): string {
  const full = Math.round(Math.min(1, progress) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/** What a stage plugs into {@link trainLoop}. */
interface Stage {
  /** What the per-step vector is, for the log (e.g. `loss/offset`). */
  metric: string;
  /** Bytes per sampled window. */
  windowLength: number;
  /** Trains on one batch of windows; returns the `[m]` metric of that batch. */
  step(windows: Int32Array): tf.Tensor1D;
  /** The metric on `count` windows of held-out data. */
  evaluate(data: Uint8Array, count: number): Promise<number[]>;
  /** Writes an intermediate checkpoint (stage 1 only). */
  save?(progress: LoopResult): Promise<void>;
}

/** What {@link trainLoop} did: the counts that go into training.json. */
interface LoopResult {
  steps: number;
  tokensSeen: number;
  trainTokensPerSecond: number;
  wallMinutes: number;
  history: { step: number; minutes: number; train: number[]; heldOut: number[] }[];
}

/**
 * Trains until the time budget (`--minutes`) or `--maxSteps` runs out: cosine lr on elapsed
 * time, seeded random windows, an EMA of the step metric in the log, held-out evaluation every
 * `evalEvery` steps, a checkpoint every `saveEveryMinutes`.
 */
async function trainLoop(s: Settings, corpus: Corpus, optimizer: tf.AdamOptimizer, stage: Stage, random: () => number): Promise<LoopResult> {
  const budgetMs = s.minutes * 60_000;
  const t0 = performance.now();
  let lastSave = t0;
  let ema: number[] | null = null;
  let [step, tokens, trainMs] = [0, 0, 0];
  const history: LoopResult['history'] = [];
  const result = (): LoopResult => ({ steps: step, tokensSeen: tokens, trainTokensPerSecond: tokens / (trainMs / 1000), wallMinutes: (performance.now() - t0) / 60_000, history });
  while (performance.now() - t0 < budgetMs && (s.maxSteps === 0 || step < s.maxSteps)) {
    (optimizer as unknown as { learningRate: number }).learningRate = learningRate(s, step, (performance.now() - t0) / budgetMs);
    const windows = sampleWindows(corpus.train, s.batchSize, stage.windowLength, random);
    const ts = performance.now();
    const metric = stage.step(windows);
    const values = Array.from(await metric.data());
    metric.dispose();
    trainMs += performance.now() - ts;
    tokens += s.batchSize * s.seqLength;
    step++;
    if (values.some((v) => !Number.isFinite(v))) throw new Error(`train: ${stage.metric} is not finite at step ${step}: ${values.join(', ')}`);
    ema = ema ? ema.map((e, j) => 0.95 * e + 0.05 * values[j]!) : values;
    const minutes = (performance.now() - t0) / 60_000;
    if (step % s.logEvery === 0) {
      const lr = (optimizer as unknown as { learningRate: number }).learningRate;
      console.log(
        `${bar(minutes / s.minutes)} step ${step} ${minutes.toFixed(1)}/${s.minutes} min  lr ${lr.toExponential(2)}  ` +
          `${stage.metric} ${fmt(ema)}  ${Math.round(tokens / (trainMs / 1000))} tok/s  tensors ${tf.memory().numTensors}`,
      );
    }
    if (step % s.evalEvery === 0) {
      const heldOut = await stage.evaluate(corpus.heldOut, s.evalWindows);
      history.push({ step, minutes, train: ema, heldOut });
      console.log(`  held-out ${stage.metric} ${fmt(heldOut)}`);
    }
    if (stage.save && performance.now() - lastSave > s.saveEveryMinutes * 60_000) {
      await stage.save(result());
      lastSave = performance.now();
      console.log(`  saved at step ${step}`);
    }
  }
  return result();
}

// ---- the two stages -------------------------------------------------------------------------
async function trainJoint(s: Settings, dir: string): Promise<void> {
  const corpus = loadCorpus();
  const model = createTransformer(s.model);
  const config = resolveTransformerConfig(s.model);
  const k = config.mtpHeads;
  const report = parameterReport({ vocabSize: config.vocabSize, hiddenSize: config.hiddenSize, numHeads: k, headKind: config.headKind });
  console.log(`model: ${model.countParams()} parameters; ${JSON.stringify(config)}`);
  console.log(formatParameterReport(report));
  console.log(`corpus: ${corpus.train.length} train bytes (${corpus.trainFiles.length} files), ${corpus.heldOut.length} held-out bytes (${corpus.heldOutFiles.join(', ')})`);
  console.log(`backend: ${tf.getBackend()}; budget ${s.minutes} min; writing ${dir}/`);

  const metadata = (done: boolean, loop: LoopResult, extra: object = {}) => ({
    done,
    settings: s,
    modelConfig: config,
    parameters: model.countParams(),
    parameterReport: report,
    corpus: {
      source: `typescript@${corpus.typescriptVersion} node_modules/typescript/lib/lib.*.d.ts (license headers stripped)`,
      tokenizer: 'byte-level UTF-8, V = 256',
      batchSampler: 'uniformStream (src/decoding/random.ts) seeded with settings.seed',
      trainBytes: corpus.train.length,
      heldOutBytes: corpus.heldOut.length,
      trainFiles: corpus.trainFiles,
      heldOutFiles: corpus.heldOutFiles,
    },
    backend: tf.getBackend(),
    speedTricks: s.backend === 'wasm' ? ['wasm UnsortedSegmentSum kernel (JS)', 'wasm matMul wrappers: explicit transposes, batch-1 products', 'wasm SplitV and leading-axis Sum kernels (JS block copies / row sums)'] : [],
    ...loop,
    ...extra,
  });
  const optimizer = tf.train.adam(s.learningRate, 0.9, 0.95, 1e-8);
  const loop = await trainLoop(s, corpus, optimizer, {
    metric: 'loss/offset',
    windowLength: s.seqLength + k,
    step: (windows) => trainStep(model, optimizer, windows, s, k),
    evaluate: (data, count) => evaluate(model, data, count, s, k),
    save: async (progress) => {
      await saveCheckpoint(model, dir);
      writeFileSync(join(dir, 'training.json'), JSON.stringify(metadata(false, progress), null, 2));
    },
  }, uniformStream(s.seed));

  const finalTrain = await evaluate(model, corpus.train, s.finalEvalWindows, s, k);
  const finalHeldOut = await evaluate(model, corpus.heldOut, s.finalEvalWindows, s, k);
  console.log(`final train    loss/offset ${fmt(finalTrain)}`);
  console.log(`final held-out loss/offset ${fmt(finalHeldOut)}`);
  await saveCheckpoint(model, dir);
  writeFileSync(join(dir, 'training.json'), JSON.stringify(metadata(true, loop, { finalLoss: { train: finalTrain, heldOut: finalHeldOut } }), null, 2));
  console.log(`done: ${loop.steps} steps, ${loop.tokensSeen} tokens, ${Math.round(loop.trainTokensPerSecond)} tok/s; wrote ${dir}/`);
}

async function distillHeads(s: Settings, dir: string): Promise<void> {
  const corpus = loadCorpus();
  const model = await loadCheckpoint(dir);
  const parts = distillParts(model);
  const k = parts.head.numHeads;
  const stage1 = JSON.parse(readFileSync(join(dir, 'training.json'), 'utf8')) as Record<string, unknown>;
  const before = await agreementOn(parts, corpus.heldOut, s.finalEvalWindows, s);
  console.log(`stage 2 (heads): ${parts.trainable.length} tensors trainable; held-out agreement before ${fmt(before)}`);
  const optimizer = tf.train.adam(s.learningRate, 0.9, 0.95, 1e-8);
  const loop = await trainLoop(s, corpus, optimizer, {
    metric: `agreement/offset 1…${k - 1}`,
    windowLength: s.seqLength,
    step: (windows) => distillStep(parts, optimizer, windows, s),
    evaluate: (data, count) => agreementOn(parts, data, count, s),
  }, uniformStream(s.seed + 1));

  const after = await agreementOn(parts, corpus.heldOut, s.finalEvalWindows, s);
  const finalHeldOut = await evaluate(model, corpus.heldOut, s.finalEvalWindows, s, k);
  const finalTrain = await evaluate(model, corpus.train, s.finalEvalWindows, s, k);
  console.log(`held-out agreement (teacher-forced acceptance) per offset: before ${fmt(before)} → after ${fmt(after)}`);
  console.log(`final train    loss/offset ${fmt(finalTrain)}`);
  console.log(`final held-out loss/offset ${fmt(finalHeldOut)}`);
  await saveCheckpoint(model, dir);
  const stage2 = {
    settings: { minutes: s.minutes, seed: s.seed, batchSize: s.batchSize, seqLength: s.seqLength, learningRate: s.learningRate, minLearningRate: s.minLearningRate, warmupSteps: s.warmupSteps },
    what: 'offset heads 1…k-1 trained to predict the frozen offset 0 argmax at t + j (teacher-forced); trunk, embedding, offset 0 frozen',
    steps: loop.steps,
    tokensSeen: loop.tokensSeen,
    trainTokensPerSecond: loop.trainTokensPerSecond,
    heldOutAgreement: { before, after },
    history: loop.history,
    finalLoss: { train: finalTrain, heldOut: finalHeldOut },
  };
  writeFileSync(join(dir, 'training.json'), JSON.stringify({ ...stage1, stage2HeadDistillation: stage2 }, null, 2));
  console.log(`done: ${loop.steps} steps, ${loop.tokensSeen} tokens, ${Math.round(loop.trainTokensPerSecond)} tok/s; wrote ${dir}/`);
}

async function main(): Promise<void> {
  const s = settingsOf(parseCommandLine(COMMAND));
  if (s.backend === 'wasm') registerWasmTrainingKernels();
  await useBackend(s.backend);
  const dir = join(s.dir, s.name);
  await (s.stage === 'heads' ? distillHeads(s, dir) : trainJoint(s, dir));
}

await main();
