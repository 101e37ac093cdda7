/**
 * `tfjs-mtp train-heads --model <folder or .bin> --out <dir>`: trains draft heads for a frozen
 * llama2.c checkpoint or Hugging Face model folder with `trainDraftHeads` (self-distillation: the
 * model writes its own corpus) and writes `heads.bin` (attach with
 * `loadLlama2c(checkpoint, { draftHeads })` or `loadHfLlama(folder, { draftHeads })`) and
 * `training.json` (the settings and the run's facts). Ctrl-C stops training and keeps the best
 * heads evaluated so far. A thin wrapper: everything it does is the library's.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { registerWasmTrainingKernels } from '../training/wasm/index.js';
import { loadHfLlama } from '../models/hf_llama.js';
import { loadLlama2c } from '../models/llama2c.js';
import { writeDraftHeads } from '../models/draft_heads.js';
import { trainDraftHeads } from '../models/train_heads/train.js';
import { TRAIN_HEADS_DEFAULTS, type TrainDraftHeadsOptions, type TrainDraftHeadsProgress } from '../models/train_heads/options.js';
import { type Command, helpText, parseFlags, UsageError } from './args.js';
import { hfFolderFiles, isHfFolder } from './hf_folder.js';

const D = TRAIN_HEADS_DEFAULTS;

/** The subcommand's flags (those without a default take the library's, shown in brackets). */
export const TRAIN_HEADS: Command<{
  model: { type: 'string'; help: string };
  out: { type: 'string'; help: string };
  kind: { type: 'string'; help: string; default: string; choices: readonly string[] };
  heads: { type: 'number'; help: string; default: number; integer: true; min: number };
  hidden: { type: 'number'; help: string; default: number; integer: true; min: number };
  seconds: { type: 'number'; help: string; min: number };
  steps: { type: 'number'; help: string; integer: true; min: number };
  'corpus-tokens': { type: 'number'; help: string; integer: true; min: number };
  'sequence-tokens': { type: 'number'; help: string; integer: true; min: number };
  'draft-vocab': { type: 'number'; help: string; integer: true; min: number };
  'batch-size': { type: 'number'; help: string; integer: true; min: number };
  'learning-rate': { type: 'number'; help: string; min: number };
  targets: { type: 'string'; help: string; choices: readonly string[] };
  'top-k': { type: 'number'; help: string; integer: true; min: number };
  feed: { type: 'string'; help: string; choices: readonly string[] };
  'held-out': { type: 'number'; help: string; min: number };
  seed: { type: 'number'; help: string; integer: true; min: number };
  backend: { type: 'string'; help: string; choices: readonly string[] };
  quiet: { type: 'boolean'; help: string };
}> = {
  usage: 'tfjs-mtp train-heads --model <folder or .bin> --out <dir> [options]',
  summary: "Trains draft heads for a frozen llama2.c or Hugging Face model by self-distillation (the model writes its own training text) and writes <out>/heads.bin and <out>/training.json. Ctrl-C stops and keeps the best heads so far.",
  flags: {
    model: { type: 'string', help: 'a llama2.c checkpoint: its .bin, or a folder holding it (the .bin whose name does not start with "tok"); or a Hugging Face folder: config.json + model.safetensors (or model.safetensors.index.json and its shards)' },
    out: { type: 'string', help: 'output folder (created if missing)' },
    kind: { type: 'string', default: 'mlp', choices: ['mlp', 'sequential'], help: 'parallel mlp offset heads, or sequential MTP modules' },
    heads: { type: 'number', default: 4, integer: true, min: 2, help: "k: offsets including offset 0 (the model's own head)" },
    hidden: { type: 'number', default: 256, integer: true, min: 1, help: 'width H of each head / module' },
    seconds: { type: 'number', min: 0, help: `wall time of the whole run, corpus included [default: ${D.seconds}, none with --steps]` },
    steps: { type: 'number', integer: true, min: 1, help: 'stop after this many Adam steps' },
    'corpus-tokens': { type: 'number', integer: true, min: 1, help: `tokens the model writes for training [default: ${D.corpusTokens}]` },
    'sequence-tokens': { type: 'number', integer: true, min: 2, help: `tokens per training sequence [default: ${D.sequenceTokens}]` },
    'draft-vocab': { type: 'number', integer: true, min: 1, help: 'draft from the N most frequent tokens only [default: the whole vocabulary]' },
    'batch-size': { type: 'number', integer: true, min: 1, help: `positions per Adam step [default: ${D.batchSize}]` },
    'learning-rate': { type: 'number', min: 0, help: `initial Adam learning rate, decaying linearly to 10% [default: ${D.learningRate}]` },
    targets: { type: 'string', choices: ['hard', 'soft', 'mix'], help: `the model's argmax, its distribution, or half each [default: ${D.targets}]` },
    'top-k': { type: 'number', integer: true, min: 0, help: `add a ranking loss over the model's K most likely tokens (HASS), for tree drafting [default: ${D.topK}: none]` },
    feed: { type: 'string', choices: ['truth', 'drafts'], help: `sequential modules in training fed the true tokens or their own drafts, as decoding feeds them [default: ${D.feed}]` },
    'held-out': { type: 'number', min: 0, help: `share of the corpus held out for the τ estimate [default: ${D.heldOut}]` },
    seed: { type: 'number', integer: true, min: 0, help: `seed of the corpus and the batches [default: ${D.seed}]` },
    backend: { type: 'string', choices: ['wasm', 'cpu'], help: 'tfjs backend [default: wasm if installed, else cpu]' },
    quiet: { type: 'boolean', help: 'no progress lines' },
  },
};

/** The npm command that installs a backend, named when none can be imported. */
const INSTALL = 'npm install @tensorflow/tfjs-backend-wasm';

/** Imports and starts a backend: `wanted`, else wasm, else cpu. Throws naming the npm command that installs one when none can be loaded (exit code 1). */
async function startBackend(wanted: string | undefined): Promise<string> {
  const candidates = wanted !== undefined ? [wanted] : ['wasm', 'cpu'];
  for (const name of candidates) {
    try {
      await (name === 'wasm' ? import('@tensorflow/tfjs-backend-wasm') : import('@tensorflow/tfjs-backend-cpu'));
    } catch {
      continue; // not installed
    }
    if (name === 'wasm') registerWasmTrainingKernels(); // faster backpropagation kernels
    if (await tf.setBackend(name)) {
      await tf.ready();
      return name;
    }
  }
  const which = wanted !== undefined ? `@tensorflow/tfjs-backend-${wanted}` : 'a tfjs backend (@tensorflow/tfjs-backend-wasm or -cpu)';
  throw new Error(`${which} must be installed and start, but it could not be loaded; install it: ${wanted !== undefined ? `npm install @tensorflow/tfjs-backend-${wanted}` : INSTALL}.`);
}

/** What `--model` names: a Hugging Face folder (it holds config.json), or a llama2.c checkpoint: the file itself, or the `.bin` in the folder whose name does not start with `tok`. */
function modelPath(model: string): { kind: 'hf' | 'llama2c'; path: string } {
  const path = resolve(model);
  const what = 'a llama2.c .bin file, a folder holding one, or a Hugging Face folder (config.json + model.safetensors)';
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new UsageError(`--model must be ${what}, but ${JSON.stringify(model)} does not exist.`);
  }
  if (!stat.isDirectory()) return { kind: 'llama2c', path };
  if (isHfFolder(path)) return { kind: 'hf', path };
  const bin = readdirSync(path)
    .filter((f) => f.endsWith('.bin') && !f.startsWith('tok'))
    .sort()[0];
  if (bin === undefined) throw new UsageError(`--model must be ${what}, but ${JSON.stringify(model)} has no config.json and no .bin (other than tok*.bin).`);
  return { kind: 'llama2c', path: join(path, bin) };
}

/** One progress line. */
function progressLine(p: TrainDraftHeadsProgress, budget: string): string {
  const clock = `${p.seconds.toFixed(0)} s${budget}`;
  if (p.phase === 'corpus') return `corpus    ${p.corpusTokens} tokens (${p.tokensPerSecond.toFixed(0)} tokens/s) | ${clock}`;
  const tau = p.heldOutTau === undefined ? '' : ` | held-out τ ${p.heldOutTau.toFixed(2)}`;
  const loss = Number.isFinite(p.loss) ? ` | loss ${p.loss.toFixed(3)} (${p.lossPerOffset.map((l) => l.toFixed(2)).join(' / ')})` : '';
  return `${p.phase.padEnd(9)} step ${p.step}${p.steps !== undefined ? `/${p.steps}` : ''}${loss}${tau} | ${(p.tokensPerSecond / 1000).toFixed(1)}k positions/s | ${clock}`;
}

/** Runs `train-heads` with the arguments after the subcommand; resolves to the exit code. */
export async function trainHeadsCommand(argv: readonly string[]): Promise<number> {
  const f = parseFlags(TRAIN_HEADS, argv);
  if (f.help) {
    console.log(helpText(TRAIN_HEADS));
    return 0;
  }
  if (f.model === undefined) throw new UsageError('--model is required (a llama2.c .bin or a folder holding one, or a Hugging Face folder).');
  if (f.out === undefined) throw new UsageError('--out is required (the folder for heads.bin and training.json).');
  const source = modelPath(f.model);
  const backend = await startBackend(f.backend);
  const kind = f.kind as 'mlp' | 'sequential';
  const heads = { mtpHeads: f.heads, headKind: kind, headHiddenSize: f.hidden };
  const { model } = source.kind === 'hf' ? await loadHfLlama(hfFolderFiles(source.path), heads) : await loadLlama2c(new Uint8Array(readFileSync(source.path)), heads);
  const options: TrainDraftHeadsOptions = {
    ...(f.seconds !== undefined ? { seconds: f.seconds } : {}),
    ...(f.steps !== undefined ? { steps: f.steps } : {}),
    ...(f['corpus-tokens'] !== undefined ? { corpusTokens: f['corpus-tokens'] } : {}),
    ...(f['sequence-tokens'] !== undefined ? { sequenceTokens: f['sequence-tokens'] } : {}),
    ...(f['draft-vocab'] !== undefined ? { draftVocab: f['draft-vocab'] } : {}),
    ...(f['batch-size'] !== undefined ? { batchSize: f['batch-size'] } : {}),
    ...(f['learning-rate'] !== undefined ? { learningRate: f['learning-rate'] } : {}),
    ...(f.targets !== undefined ? { targets: f.targets as 'hard' | 'soft' | 'mix' } : {}),
    ...(f['top-k'] !== undefined ? { topK: f['top-k'] } : {}),
    ...(f.feed !== undefined ? { feed: f.feed as 'truth' | 'drafts' } : {}),
    ...(f['held-out'] !== undefined ? { heldOut: f['held-out'] } : {}),
    ...(f.seed !== undefined ? { seed: f.seed } : {}),
  };
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  const budget = options.seconds !== undefined ? ` of ${options.seconds} s` : options.steps === undefined ? ` of ${D.seconds} s` : '';
  let printed = 0;
  const tty = process.stdout.isTTY === true;
  try {
    if (!f.quiet) console.log(`tfjs-mtp train-heads: ${basename(source.path)}, ${kind} heads, k = ${f.heads}, H = ${f.hidden}, on ${backend}`);
    const heads = await trainDraftHeads(model, {
      ...options,
      signal: controller.signal,
      onProgress: (p) => {
        if (f.quiet) return;
        const due = p.phase === 'evaluating' || Date.now() - printed >= (tty ? 250 : 10_000);
        if (!due) return;
        printed = Date.now();
        if (tty) process.stdout.write(`\r${progressLine(p, budget).padEnd(110)}`);
        else console.log(progressLine(p, budget));
      },
    });
    if (tty && !f.quiet) process.stdout.write('\n');
    const out = resolve(f.out);
    mkdirSync(out, { recursive: true });
    const bytes = writeDraftHeads(heads);
    writeFileSync(join(out, 'heads.bin'), bytes);
    const facts = { command: `tfjs-mtp train-heads ${argv.join(' ')}`, model: basename(source.path), modelFolder: source.kind === 'hf' ? source.path : dirname(source.path), kind, heads: f.heads, hidden: f.hidden, ...heads.manifest.training };
    writeFileSync(join(out, 'training.json'), `${JSON.stringify(facts, null, 2)}\n`);
    const t = heads.manifest.training as { steps: number; stoppedBy: string; heldOut: { tau: number } | null };
    if (!f.quiet) {
      const tau = t.heldOut === null ? '' : `, held-out τ estimate ${t.heldOut.tau.toFixed(2)}`;
      console.log(`wrote ${join(out, 'heads.bin')} (${bytes.length} bytes; ${t.steps} steps, stopped by ${t.stoppedBy}${tau}) and training.json`);
    }
    return 0;
  } finally {
    process.removeListener('SIGINT', stop);
    model.dispose();
  }
}
