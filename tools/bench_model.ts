/**
 * The model a benchmark runs, from a directory: either a saved tfjs-mtp checkpoint
 * (`model.json` + `weights.bin`, e.g. fixtures/tslib-k4, byte-level, prompts from held-out
 * TypeScript lib files) or a llama2.c checkpoint (a `.bin` model + its `tok*.bin` tokenizer,
 * e.g. stories260K from Karpathy's `tinyllamas`, prompts: story openings through its tokenizer).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { loadLlama2c } from '../src/models/index.js';
import { loadCheckpoint } from './checkpoint.js';
import { heldOutPrompts } from './corpus.js';
import { llama2cFiles } from './llama2c_files.js';

/** A loaded benchmark model and its prompts. */
export interface BenchModel {
  /** What the tables call it: the directory's name and its kind. */
  name: string;
  model: LayersModel;
  /** `count` prompts as token ids (`length`: bytes per prompt, for the byte-level model). */
  prompts(count: number, length: number): number[][];
  /** `text` as the model's token ids (bytes for the byte-level model; BOS + tokens for llama2.c). */
  encode(text: string): number[];
}

/** Story openings for a TinyStories model (its own kind of text; the model's greedy continuation is what is timed). */
const STORY_OPENINGS = [
  'Once upon a time',
  'One day, a little boy named Tom',
  'The sun was shining and the birds',
  'Lily and her mom went to the park',
  'There was a big red ball in the garden',
  'A little cat wanted to find a friend',
  'Ben had a new toy car',
  'It was a rainy day, so Sue',
];

/**
 * Loads the benchmark model in `dir` (see the module header). Throws naming the directory when
 * it holds neither kind.
 *
 * Trained offset heads for a llama2.c model (its own heads are untrained: τ ≈ 1) plug in here,
 * on the loaded model's `MultiTokenHead`, before anything decodes.
 */
export async function loadBenchModel(dir: string, mtpHeads = 4): Promise<BenchModel> {
  const path = resolve(dir);
  if (existsSync(join(path, 'model.json'))) {
    const model = await loadCheckpoint(path);
    const encode = (text: string) => Array.from(new TextEncoder().encode(text));
    return { name: `${basename(path)} (byte-level)`, model, prompts: (count, length) => heldOutPrompts(count, length).map((p) => p.bytes), encode };
  }
  const files = existsSync(path) ? llama2cFiles(path) : null;
  if (files === null) throw new Error(`loadBenchModel: dir must hold model.json + weights.bin or a llama2.c .bin with its tok*.bin, but ${path} has neither.`);
  const { model, tokenizer } = await loadLlama2c(new Uint8Array(readFileSync(files.checkpoint)), {
    tokenizer: new Uint8Array(readFileSync(files.tokenizer)),
    mtpHeads,
  });
  const encode = (text: string) => tokenizer!.encode(text, { bos: true });
  const prompts = (count: number) => Array.from({ length: count }, (_, i) => encode(STORY_OPENINGS[i % STORY_OPENINGS.length]!));
  return { name: `${basename(files.checkpoint, '.bin')} (llama2.c, ${basename(files.tokenizer)}; offsets 1…${mtpHeads - 1} untrained)`, model, prompts, encode };
}
