/**
 * The model a benchmark runs, from a directory: either a saved tfjs-mtp checkpoint
 * (`model.json` + `weights.bin`, e.g. fixtures/tslib-k4, byte-level, prompts from held-out
 * TypeScript lib files) or a llama2.c checkpoint (a `.bin` model + its `tok*.bin` tokenizer,
 * e.g. stories260K from Karpathy's `tinyllamas`, prompts: story openings through its tokenizer),
 * optionally with trained draft heads (an `exportDraftHeads` file, e.g.
 * fixtures/stories260k-heads/sequential-k4.bin, or fixtures/tslib-k4-heads/sequential-k4.bin for
 * the tfjs-mtp checkpoint: sequential modules attached to its trunk with `withSequentialHeads`)
 * and then with prompts held out from their distillation corpus (`headsPrompts`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { byteTokenizer, loadLlama2c, type Tokenizer } from '../src/models/index.js';
import { attachDraftHeads, readDraftHeads, withSequentialHeads } from '../src/models/draft_heads.js';
import { LAYER_NAMES } from '../src/models/transformer.js';
import { loadCheckpoint } from './checkpoint.js';
import { heldOutPrompts } from './corpus.js';
import { STORY_OPENINGS as CORPUS_OPENINGS } from './heads/openings.js';
import { heldOutPrompts as headsHeldOutPrompts } from './heads/measure.js';
import { llama2cFiles } from './llama2c_files.js';

/** A loaded benchmark model and its prompts. */
export interface BenchModel {
  /** What the tables call it: the directory's name and its kind. */
  name: string;
  model: LayersModel;
  /** `count` prompts as token ids (`length`: bytes per prompt, for the byte-level model). */
  prompts(count: number, length: number): number[][];
  /** The model's tokenizer: `byteTokenizer` for the byte-level model, the checkpoint's own for llama2.c (`encode` puts BOS first). */
  tokenizer: Tokenizer;
  /**
   * Prompts (text) held out from the draft heads' distillation corpus: {@link heldOutStoryPrompts}
   * for a llama2.c story model; the held-out TypeScript lib prompts (6 × 48 bytes, the ones
   * `prompts` gives) for the byte-level model.
   */
  headsPrompts: string[];
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

/** More hand-written openings for the draft-heads bench (none starts like a distillation-corpus opening). */
const MORE_OPENINGS = ['A tiny mouse lived under the stairs', 'Grandma baked cookies for', 'The robot in the toy box'];

/**
 * Prompts for draft heads trained by `npm run train:heads`: the openings that training never
 * used (tools/heads/openings.ts holds the last 8 out), then the hand-written openings above and
 * {@link STORY_OPENINGS} that do not start with a corpus opening (so the corpus never continued
 * them). Text, in that order.
 */
export function heldOutStoryPrompts(): string[] {
  const training = CORPUS_OPENINGS.filter((t) => !headsHeldOutPrompts().includes(t));
  const handWritten = [...STORY_OPENINGS, ...MORE_OPENINGS].filter((t) => !training.some((o) => t.startsWith(o)));
  return [...headsHeldOutPrompts(), ...handWritten.filter((t) => !headsHeldOutPrompts().includes(t))];
}

/**
 * Loads the benchmark model in `dir` (see the module header). Throws naming the directory when
 * it holds neither kind.
 *
 * `draftHeads` (llama2.c only): the bytes of an `exportDraftHeads` file, attached at load (its k,
 * kind and width replace `mtpHeads`); without it offsets 1…k−1 are untrained (τ ≈ 1).
 */
export async function loadBenchModel(dir: string, mtpHeads = 4, draftHeads?: { name: string; bytes: Uint8Array }): Promise<BenchModel> {
  const path = resolve(dir);
  if (existsSync(join(path, 'model.json'))) {
    let model = await loadCheckpoint(path);
    if (draftHeads) {
      const { manifest } = readDraftHeads(draftHeads.bytes, `loadBenchModel: ${draftHeads.name}`);
      if (manifest.kind !== 'sequential' || manifest.headHiddenSize === undefined) {
        throw new Error(`loadBenchModel: draftHeads for a tfjs-mtp checkpoint must be sequential modules (npm run train:heads -- --model ${dir} --kind sequential), but ${draftHeads.name} has kind '${manifest.kind}'.`);
      }
      const own = model.getLayer(LAYER_NAMES.head);
      model = withSequentialHeads(model, manifest.numHeads, manifest.headHiddenSize);
      own.dispose(); // the checkpoint's own draft heads, replaced
      await attachDraftHeads(model, draftHeads.bytes);
    }
    const heads = draftHeads ? `; draft heads ${draftHeads.name}` : '';
    return {
      name: `${basename(path)} (byte-level${heads})`,
      model,
      prompts: (count, length) => heldOutPrompts(count, length).map((p) => p.bytes),
      tokenizer: byteTokenizer,
      headsPrompts: heldOutPrompts(6, 48).map((p) => p.text),
    };
  }
  const files = existsSync(path) ? llama2cFiles(path) : null;
  if (files === null) throw new Error(`loadBenchModel: dir must hold model.json + weights.bin or a llama2.c .bin with its tok*.bin, but ${path} has neither.`);
  const { model, tokenizer } = await loadLlama2c(new Uint8Array(readFileSync(files.checkpoint)), {
    tokenizer: new Uint8Array(readFileSync(files.tokenizer)),
    ...(draftHeads ? { draftHeads: draftHeads.bytes } : { mtpHeads }),
  });
  const prompts = (count: number) => Array.from({ length: count }, (_, i) => tokenizer!.encode(STORY_OPENINGS[i % STORY_OPENINGS.length]!));
  const heads = draftHeads ? `draft heads ${draftHeads.name}` : `offsets 1…${mtpHeads - 1} untrained`;
  return { name: `${basename(files.checkpoint, '.bin')} (llama2.c, ${basename(files.tokenizer)}; ${heads})`, model, prompts, tokenizer: tokenizer!, headsPrompts: heldOutStoryPrompts() };
}
