/**
 * `npm run train` — trains the reference transformer (`tfjs-mtp/models`) with k = 4 multi-token
 * heads on TypeScript's lib.*.d.ts files, byte-level, and writes the checkpoint the demo, the
 * bench and the golden test load: fixtures/<name>/{model.json, weights.bin, training.json}.
 *
 * Joint training (trunk + heads together, one multiTokenLoss over all offsets), as in Gloeckle
 * et al. 2024 §2: trained from scratch, the trunk then learns states that carry the next k
 * tokens, which the lightweight residual heads alone could not add afterwards; offset 0 keeps
 * the largest weight so next-token quality (what the verifier accepts against) comes first.
 *
 * Speed: the wasm backend, with training-only kernel registrations (scripts/lib): a JS
 * `UnsortedSegmentSum` (the embedding gradient; wasm has none), matMul wrappers that avoid
 * wasm's slow transposed/batched paths, and JS `SplitV` / bias-gradient `Sum`. See
 * docs/models.md for the measured tokens/s of each.
 *
 *     npm run train -- [--minutes 32] [--name tslib-k4] [--backend wasm|cpu] [--seed 0] ...
 *     npm run train -- --stage heads --minutes 10 --learningRate 1e-3   # stage 2, see lib/distill.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { multiTokenLoss, multiTokenTargets, parameterReport, formatParameterReport } from '../src/index.js';
import { createTransformer, resolveTransformerConfig, type TransformerConfig } from '../src/models/index.js';
import { loadCheckpoint, saveCheckpoint } from '../tools/checkpoint.js';
import { distillLoss, distillParts, teacherBatch } from '../tools/distill.js';
import { loadCorpus, sampleWindows, strideWindows } from '../tools/corpus.js';
import { uniformStream } from '../src/decoding/random.js';
import { registerWasmTrainingKernels } from '../tools/wasm/index.js';

// ---- settings (every one is recorded in training.json) --------------------------------------
interface Settings {
  stage: 'joint' | 'heads'; // 'joint': stage 1 from scratch; 'heads': stage 2, distil the draft heads of fixtures/<name>
  name: string; // fixture folder under fixtures/
  backend: 'wasm' | 'cpu';
  minutes: number; // wall-clock budget; the lr schedule runs on elapsed time
  seed: number;
  batchSize: number;
  seqLength: number; // window length; = maxLength, so every position embedding is trained
  learningRate: number; // peak Adam lr
  minLearningRate: number; // cosine floor
  warmupSteps: number;
  clipNorm: number; // global gradient-norm clip
  offsetWeights: number[]; // multiTokenLoss weight per offset 0…k-1
  evalEvery: number; // steps between held-out evaluations
  evalWindows: number; // held-out windows per evaluation during training
  finalEvalWindows: number; // windows of the final train / held-out evaluation
  saveEveryMinutes: number;
  logEvery: number;
  model: TransformerConfig;
}

const DEFAULT_SETTINGS: Settings = {
  stage: 'joint',
  name: 'tslib-k4',
  backend: 'wasm',
  minutes: 32, // the brief's 30–40 min budget on a shared 2-core machine
  seed: 1234,
  batchSize: 16, // 2048 tokens per step: stable Adam steps at this model size
  seqLength: 128,
  learningRate: 2e-3, // small models tolerate a high lr (nanoGPT's shakespeare-char uses 1e-3)
  minLearningRate: 2e-4,
  warmupSteps: 100,
  clipNorm: 1,
  offsetWeights: [1, 0.8, 0.8, 0.8], // offset 0 first; drafts still weigh almost as much (τ is the goal)
  evalEvery: 250,
  evalWindows: 32,
  finalEvalWindows: 256,
  saveEveryMinutes: 5,
  logEvery: 25,
  model: { vocabSize: 256, maxLength: 128, hiddenSize: 128, numLayers: 4, numHeads: 4, mlpRatio: 4, mtpHeads: 4, headKind: 'residual', seed: 1234 },
};

function parseArgs(argv: string[]): Settings {
  const s: Settings = structuredClone(DEFAULT_SETTINGS);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]!.replace(/^--/, '');
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`train: expected a value after --${key}.`);
    if (key === 'name') s.name = value;
    else if (key === 'stage') {
      if (value !== 'joint' && value !== 'heads') throw new Error(`train: expected --stage to be joint or heads, but got ${value}.`);
      s.stage = value;
    }
    else if (key === 'backend') {
      if (value !== 'wasm' && value !== 'cpu') throw new Error(`train: expected --backend to be wasm or cpu, but got ${value}.`);
      s.backend = value;
    } else if (key in s && typeof (s as unknown as Record<string, unknown>)[key] === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`train: expected --${key} to be a positive number, but got ${value}.`);
      (s as unknown as Record<string, number>)[key] = n;
    } else if (key in s.model) {
      (s.model as Record<string, unknown>)[key] = key === 'headKind' ? value : Number(value);
    } else throw new Error(`train: unknown option --${key}.`);
  }
  s.model.seed = s.seed;
  s.seqLength = resolveTransformerConfig(s.model).maxLength;
  return s;
}

// ---- one step, one evaluation -----------------------------------------------------------------
/** Model input `[B, T]` and multi-token targets `[B, T, k]` from windows of T + k bytes. */
function batchTensors(windows: Int32Array, count: number, s: Settings, k: number) {
  return tf.tidy(() => {
    const tokens = tf.tensor2d(windows, [count, s.seqLength + k], 'int32'); // [B, T+k]
    const ids = tf.slice(multiTokenTargets(tokens, k), [0, 0, 0], [count, s.seqLength, k]); // [B, T, k], none masked
    // one-hot targets: multiTokenLoss's id path (tf.maximum(ids, 0) → float32 → oneHot) throws in
    // this tree; and wasm's OneHot writes int32 bits whatever the dtype, hence int32 then cast
    const targets = tf.cast(tf.oneHot(ids as tf.Tensor3D, s.model.vocabSize ?? 256), 'float32'); // [B, T, k, V]
    const inputs = tf.slice(tokens, [0, 0], [count, s.seqLength]); // [B, T]
    return { inputs, targets };
  });
}

function lossOf(model: LayersModel, inputs: tf.Tensor, targets: tf.Tensor, s: Settings) {
  const logits = model.apply(inputs) as tf.Tensor; // [B, T, k, V]
  return multiTokenLoss(targets, logits, { offsetWeights: s.offsetWeights });
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

async function evaluate(model: LayersModel, data: Uint8Array, count: number, s: Settings, k: number): Promise<number[]> {
  const windows = strideWindows(data, count, s.seqLength + k);
  const chunk = s.batchSize;
  const sums = new Float64Array(k);
  for (let i = 0; i < count; i += chunk) {
    const n = Math.min(chunk, count - i);
    const perOffset = tf.tidy(() => {
      const { inputs, targets } = batchTensors(windows.subarray(i * (s.seqLength + k), (i + n) * (s.seqLength + k)), n, s, k);
      return lossOf(model, inputs, targets, s).perOffset;
    });
    const values = await perOffset.data();
    perOffset.dispose();
    values.forEach((v: number, j: number) => (sums[j]! += v * n));
  }
  return Array.from(sums, (v) => v / count);
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

// ---- stage 2: distil the draft heads (scripts/lib/distill.ts) --------------------------------
async function agreementOn(parts: ReturnType<typeof distillParts>, data: Uint8Array, count: number, s: Settings): Promise<number[]> {
  const windows = strideWindows(data, count, s.seqLength);
  const sums = new Float64Array(parts.head.numHeads - 1);
  for (let i = 0; i < count; i += s.batchSize) {
    const n = Math.min(s.batchSize, count - i);
    const agreement = tf.tidy(() => {
      const ids = tf.tensor2d(windows.subarray(i * s.seqLength, (i + n) * s.seqLength), [n, s.seqLength], 'int32'); // [n, T]
      const { hidden, teacher } = teacherBatch(parts, ids);
      return distillLoss(parts, hidden, teacher).agreement; // [k-1]
    });
    (await agreement.data()).forEach((v: number, j: number) => (sums[j]! += v * n));
    agreement.dispose();
  }
  return Array.from(sums, (v) => v / count);
}

async function distillHeads(s: Settings, dir: string): Promise<void> {
  const corpus = loadCorpus();
  const model = await loadCheckpoint(dir);
  const parts = distillParts(model);
  const stage1 = JSON.parse(readFileSync(join(dir, 'training.json'), 'utf8')) as Record<string, unknown>;
  const before = await agreementOn(parts, corpus.heldOut, s.finalEvalWindows, s);
  console.log(`stage 2 (heads): ${parts.trainable.length} tensors trainable; held-out agreement before ${fmt(before)}`);
  const optimizer = tf.train.adam(s.learningRate, 0.9, 0.95, 1e-8);
  const random = uniformStream(s.seed + 1);
  const history: { step: number; minutes: number; train: number[]; heldOut: number[] }[] = [];
  const t0 = performance.now();
  let [step, tokens, trainMs] = [0, 0, 0];
  let ema: number[] | null = null;
  while (performance.now() - t0 < s.minutes * 60_000) {
    (optimizer as unknown as { learningRate: number }).learningRate = learningRate(s, step, (performance.now() - t0) / (s.minutes * 60_000));
    const windows = sampleWindows(corpus.train, s.batchSize, s.seqLength, random);
    const ts = performance.now();
    const agreement = tf.tidy(() => {
      const { hidden, teacher } = teacherBatch(parts, tf.tensor2d(windows, [s.batchSize, s.seqLength], 'int32'));
      let kept: tf.Tensor1D | null = null;
      optimizer.minimize(() => {
        const out = distillLoss(parts, hidden, teacher);
        kept = tf.keep(out.agreement);
        return out.loss;
      }, false, parts.trainable);
      return kept!;
    });
    const values = Array.from(await agreement.data());
    agreement.dispose();
    trainMs += performance.now() - ts;
    tokens += s.batchSize * s.seqLength;
    step++;
    ema = ema ? ema.map((e, j) => 0.95 * e + 0.05 * values[j]!) : values;
    const minutes = (performance.now() - t0) / 60_000;
    if (step % s.logEvery === 0) {
      console.log(`${bar(minutes / s.minutes)} step ${step} ${minutes.toFixed(1)}/${s.minutes} min  agreement/offset 1…${values.length} ${fmt(ema)}  ${Math.round(tokens / (trainMs / 1000))} tok/s`);
    }
    if (step % s.evalEvery === 0) {
      const heldOut = await agreementOn(parts, corpus.heldOut, s.evalWindows, s);
      history.push({ step, minutes, train: ema, heldOut });
      console.log(`  held-out agreement/offset ${fmt(heldOut)}`);
    }
  }
  const after = await agreementOn(parts, corpus.heldOut, s.finalEvalWindows, s);
  const finalHeldOut = await evaluate(model, corpus.heldOut, s.finalEvalWindows, s, model.getLayer('mtp_head').getConfig()['numHeads'] as number);
  const finalTrain = await evaluate(model, corpus.train, s.finalEvalWindows, s, model.getLayer('mtp_head').getConfig()['numHeads'] as number);
  console.log(`held-out agreement (teacher-forced acceptance) per offset: before ${fmt(before)} → after ${fmt(after)}`);
  console.log(`final train    loss/offset ${fmt(finalTrain)}`);
  console.log(`final held-out loss/offset ${fmt(finalHeldOut)}`);
  await saveCheckpoint(model, dir);
  const stage2 = {
    settings: { minutes: s.minutes, seed: s.seed, batchSize: s.batchSize, seqLength: s.seqLength, learningRate: s.learningRate, minLearningRate: s.minLearningRate, warmupSteps: s.warmupSteps },
    what: 'offset heads 1…k-1 trained to predict the frozen offset 0 argmax at t + j (teacher-forced); trunk, embedding, offset 0 frozen',
    steps: step,
    tokensSeen: tokens,
    trainTokensPerSecond: tokens / (trainMs / 1000),
    heldOutAgreement: { before, after },
    history,
    finalLoss: { train: finalTrain, heldOut: finalHeldOut },
  };
  writeFileSync(join(dir, 'training.json'), JSON.stringify({ ...stage1, stage2HeadDistillation: stage2 }, null, 2));
  console.log(`done: ${step} steps, ${tokens} tokens, ${Math.round(tokens / (trainMs / 1000))} tok/s; wrote ${dir}/`);
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  if (s.backend === 'wasm') {
    registerWasmTrainingKernels();
  }
  await tf.setBackend(s.backend);
  if (s.stage === 'heads') return distillHeads(s, join('fixtures', s.name));
  const corpus = loadCorpus();
  const model = createTransformer(s.model);
  const config = resolveTransformerConfig(s.model);
  const k = config.mtpHeads;
  const dir = join('fixtures', s.name);
  const report = parameterReport({ vocabSize: config.vocabSize, hiddenSize: config.hiddenSize, numHeads: k, headKind: config.headKind });
  console.log(`model: ${model.countParams()} parameters; ${JSON.stringify(config)}`);
  console.log(formatParameterReport(report));
  console.log(`corpus: ${corpus.train.length} train bytes (${corpus.trainFiles.length} files), ${corpus.heldOut.length} held-out bytes (${corpus.heldOutFiles.join(', ')})`);
  console.log(`backend: ${tf.getBackend()}; budget ${s.minutes} min; writing ${dir}/`);

  const optimizer = tf.train.adam(s.learningRate, 0.9, 0.95, 1e-8);
  const random = uniformStream(s.seed);
  const history: { step: number; minutes: number; train: number[]; heldOut: number[] }[] = [];
  const budgetMs = s.minutes * 60_000;
  const t0 = performance.now();
  let lastSave = t0;
  let ema: number[] | null = null;
  let step = 0;
  let tokens = 0;
  let trainMs = 0;
  const metadata = (done: boolean, extra: object = {}) => ({
    done,
    settings: s,
    modelConfig: config,
    parameters: model.countParams(),
    parameterReport: report,
    corpus: {
      source: `typescript@${corpus.typescriptVersion} node_modules/typescript/lib/lib.*.d.ts (license headers stripped)`,
      tokenizer: 'byte-level UTF-8, V = 256',
      trainBytes: corpus.train.length,
      heldOutBytes: corpus.heldOut.length,
      trainFiles: corpus.trainFiles,
      heldOutFiles: corpus.heldOutFiles,
    },
    backend: tf.getBackend(),
    speedTricks: s.backend === 'wasm' ? ['wasm UnsortedSegmentSum kernel (JS)', 'wasm matMul wrappers: explicit transposes, batch-1 products', 'wasm SplitV and leading-axis Sum kernels (JS block copies / row sums)'] : [],
    steps: step,
    tokensSeen: tokens,
    trainTokensPerSecond: tokens / (trainMs / 1000),
    wallMinutes: (performance.now() - t0) / 60_000,
    history,
    ...extra,
  });

  while (performance.now() - t0 < budgetMs) {
    const progress = (performance.now() - t0) / budgetMs;
    (optimizer as unknown as { learningRate: number }).learningRate = learningRate(s, step, progress);
    const windows = sampleWindows(corpus.train, s.batchSize, s.seqLength + k, random);
    const ts = performance.now();
    const perOffset = trainStep(model, optimizer, windows, s, k);
    const losses = Array.from(await perOffset.data());
    perOffset.dispose();
    trainMs += performance.now() - ts;
    tokens += s.batchSize * s.seqLength;
    step++;
    ema = ema ? ema.map((e, j) => 0.95 * e + 0.05 * losses[j]!) : losses;
    if (losses.some((l) => !Number.isFinite(l))) throw new Error(`train: loss is not finite at step ${step}: ${losses.join(', ')}`);
    const minutes = (performance.now() - t0) / 60_000;
    if (step % s.logEvery === 0) {
      const lr = (optimizer as unknown as { learningRate: number }).learningRate;
      console.log(
        `${bar(minutes / s.minutes)} step ${step} ${minutes.toFixed(1)}/${s.minutes} min  lr ${lr.toExponential(2)}  ` +
          `loss/offset ${fmt(ema)}  ${Math.round(tokens / (trainMs / 1000))} tok/s  tensors ${tf.memory().numTensors}`,
      );
    }
    if (step % s.evalEvery === 0) {
      const heldOut = await evaluate(model, corpus.heldOut, s.evalWindows, s, k);
      history.push({ step, minutes, train: ema, heldOut });
      console.log(`  held-out loss/offset ${fmt(heldOut)} (nats/byte)`);
    }
    if (performance.now() - lastSave > s.saveEveryMinutes * 60_000) {
      await saveCheckpoint(model, dir);
      writeFileSync(join(dir, 'training.json'), JSON.stringify(metadata(false), null, 2));
      lastSave = performance.now();
      console.log(`  saved ${dir}/ at step ${step}`);
    }
  }

  const finalTrain = await evaluate(model, corpus.train, s.finalEvalWindows, s, k);
  const finalHeldOut = await evaluate(model, corpus.heldOut, s.finalEvalWindows, s, k);
  console.log(`final train    loss/offset ${fmt(finalTrain)}`);
  console.log(`final held-out loss/offset ${fmt(finalHeldOut)}`);
  await saveCheckpoint(model, dir);
  writeFileSync(join(dir, 'training.json'), JSON.stringify(metadata(true, { finalLoss: { train: finalTrain, heldOut: finalHeldOut } }), null, 2));
  console.log(`done: ${step} steps, ${tokens} tokens, ${Math.round(tokens / (trainMs / 1000))} tok/s; wrote ${dir}/`);
}

await main();
