/**
 * The frozen base model `npm run train:heads` trains draft heads for, from a folder: a llama2.c
 * checkpoint (`*.bin` + its `tok*.bin`, e.g. stories260K: openings are hand-written story
 * openings and vocabulary words, held-out prompts the held-out story openings), or a saved
 * tfjs-mtp checkpoint (`model.json` + `weights.bin`, e.g. fixtures/tslib-k4, byte-level:
 * openings are windows of its training text — TypeScript's lib files —, held-out prompts the
 * bench's prompts from the held-out lib files), or a Hugging Face folder (config.json,
 * model.safetensors or the index and its shards, tokenizer.json: openings and held-out prompts
 * are short generic texts through its tokenizer). For a tfjs-mtp checkpoint the draft heads are
 * sequential modules on its trunk (`withSequentialHeads`), attached with `attachDraftHeads`; the
 * checkpoint loaders take the heads as options (`draftHeads`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { uniformStream } from '../../src/decoding/random.js';
import { hfFolderFiles, isHfFolder } from '../../src/cli/hf_folder.js';
import { loadHfLlama } from '../../src/models/hf_llama.js';
import { loadHfTokenizer } from '../../src/models/hf_tokenizer.js';
import { loadLlama2c } from '../../src/models/llama2c.js';
import { attachDraftHeads, withSequentialHeads } from '../../src/models/draft_heads.js';
import { LAYER_NAMES } from '../../src/models/transformer.js';
import { loadCheckpoint } from '../checkpoint.js';
import { heldOutPrompts as libPrompts, loadCorpus } from '../corpus.js';
import { llama2cFiles } from '../llama2c_files.js';
import { genericOpenings, heldOutGenericPrompts, storyOpenings } from './openings.js';
import { heldOutPrompts as storyPrompts } from './measure.js';

/** A prompt τ is measured on. */
export interface TauPrompt {
  /** What the report calls it (its text). */
  label: string;
  /** Its token ids. */
  ids: number[];
}

/** A loaded base model ready for head training. */
export interface HeadsBase {
  /** The checkpoint file or folder name, for training.json. */
  modelFile: string;
  /** The base model with fresh draft heads of the requested kind (trunk and offset 0 frozen). */
  model: LayersModel;
  /** Openings of the self-distillation corpus (token ids). */
  openings: number[][];
  /** Held-out prompts for τ (never corpus openings). */
  prompts: TauPrompt[];
  /** Largest sequence the model takes (its context), and the default τ continuation length. */
  maxLength: number;
  tauTokens: number;
  /** The base model loaded again with `heads` (an exportDraftHeads file) attached: what a user gets. */
  withHeads(heads: Uint8Array): Promise<LayersModel>;
}

/** Byte-level openings: `count` windows of 16…`longest` bytes of `text`, each starting at a line start, seeded. */
export function textOpenings(text: Uint8Array, count: number, longest: number, seed: number): number[][] {
  const starts: number[] = [0];
  for (let i = 0; i + 1 < text.length; i++) if (text[i] === 10 && text[i + 1] !== 10) starts.push(i + 1);
  const random = uniformStream(seed);
  return Array.from({ length: count }, () => {
    const start = starts[Math.floor(random() * starts.length)]!;
    const length = 16 + Math.floor(random() * (longest - 15));
    return Array.from(text.subarray(start, Math.min(text.length, start + length)));
  });
}

/** Loads the base in `dir` with `k` offsets of `kind` (width `hidden`). */
export async function loadHeadsBase(dir: string, kind: 'mlp' | 'sequential', k: number, hidden: number, seed: number): Promise<HeadsBase> {
  if (existsSync(join(dir, 'model.json'))) {
    if (kind !== 'sequential') throw new RangeError(`train:heads: --kind must be 'sequential' for a tfjs-mtp checkpoint (its draft heads are attached as sequential modules with withSequentialHeads), but got '${kind}'.`);
    const base = await loadCheckpoint(dir);
    const maxLength = (base.layers.find((l) => 'arch' in l) as unknown as { arch: { maxLength: number } }).arch.maxLength;
    const promptBytes = 48; // the bench's prompts: 48 bytes, 80 new tokens (128 = the context)
    return {
      modelFile: basename(dir),
      model: withSequentialHeads(base, k, hidden),
      openings: textOpenings(loadCorpus().train, 20_000, promptBytes, seed),
      prompts: libPrompts(6, promptBytes).map((p) => ({ label: p.file, ids: p.bytes })),
      maxLength,
      tauTokens: maxLength - promptBytes,
      withHeads: async (heads) => {
        const loaded = await loadCheckpoint(dir);
        const own = loaded.getLayer(LAYER_NAMES.head);
        const model = withSequentialHeads(loaded, k, hidden);
        own.dispose(); // the checkpoint's own draft heads, replaced
        await attachDraftHeads(model, heads);
        return model;
      },
    };
  }
  if (isHfFolder(dir)) return hfBase(dir, kind, k, hidden);
  const files = existsSync(dir) ? llama2cFiles(dir) : null;
  if (files === null) throw new Error(`train:heads: --model ${dir} must hold model.json + weights.bin, a llama2.c checkpoint (.bin) with its tokenizer (tok*.bin), or a Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json).`);
  const checkpoint = new Uint8Array(readFileSync(files.checkpoint));
  const { model, tokenizer } = await loadLlama2c(checkpoint, { tokenizer: new Uint8Array(readFileSync(files.tokenizer)), mtpHeads: k, headKind: kind, headHiddenSize: hidden });
  return {
    modelFile: basename(files.checkpoint),
    model,
    openings: storyOpenings(tokenizer!),
    prompts: storyPrompts().map((label) => ({ label, ids: tokenizer!.encode(label) })),
    maxLength: Infinity,
    tauTokens: 200,
    withHeads: async (heads) => (await loadLlama2c(checkpoint, { draftHeads: heads })).model,
  };
}

/** The τ continuation length of a Hugging Face model (the held-out prompts are a few tokens). */
const HF_TAU_TOKENS = 100;

/** A Hugging Face folder: the checkpoint with `k` offsets of `kind`, generic openings and prompts through its tokenizer.json. */
async function hfBase(dir: string, kind: 'mlp' | 'sequential', k: number, hidden: number): Promise<HeadsBase> {
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`train:heads: --model ${dir} must hold tokenizer.json beside config.json (the openings and prompts are text).`);
  const tokenizerConfig = join(dir, 'tokenizer_config.json');
  const tokenizer = loadHfTokenizer(new Uint8Array(readFileSync(join(dir, 'tokenizer.json'))), existsSync(tokenizerConfig) ? new Uint8Array(readFileSync(tokenizerConfig)) : undefined);
  const files = hfFolderFiles(dir);
  const { model } = await loadHfLlama(files, { mtpHeads: k, headKind: kind, headHiddenSize: hidden });
  const vocabSize = model.outputs[0]!.shape.at(-1) as number;
  if (tokenizer.vocabSize > vocabSize) {
    model.dispose();
    throw new RangeError(`train:heads: --model ${dir}: tokenizer.json's vocabulary (${tokenizer.vocabSize} ids) must fit the model's (${vocabSize}), but it does not: another model's tokenizer?`);
  }
  const maxLength = (model.layers.find((l) => 'arch' in l) as unknown as { arch: { maxLength: number } }).arch.maxLength;
  return {
    modelFile: basename(dir),
    model,
    openings: genericOpenings(tokenizer),
    prompts: heldOutGenericPrompts().map((label) => ({ label, ids: tokenizer.encode(label) })),
    maxLength,
    tauTokens: Math.min(HF_TAU_TOKENS, maxLength - 16),
    withHeads: async (heads) => (await loadHfLlama(files, { draftHeads: heads })).model,
  };
}
