/**
 * Hugging Face checkpoints of the Llama family: `loadHfLlama` reads a `LlamaForCausalLM`,
 * `MistralForCausalLM` or `Qwen2ForCausalLM` (`config.json` + one `model.safetensors`, or
 * `model.safetensors.index.json` + its shards, or the folder holding them) into this package's
 * transformer, converting F32/F16/BF16 on load, shard by shard.
 *
 * The loader is a mapping from Hugging Face's tensor names to the canonical roles of
 * `weights.ts` ({@link HF_NAMES}). Hugging Face stores q_proj/k_proj rows permuted so that its
 * `rotate_half` rotates dims (i, i + head_dim/2) together; the loader keeps those rows (and the
 * q/k biases) as stored and sets `ropeLayout: 'halfSplit'`, which is the same model. Matrices are
 * stored `[out, in]` (y = x·Wᵀ) and transposed to the canonical `[in, out]`.
 *
 * Reference: huggingface/transformers, `models/llama/modeling_llama.py` (names, `rotate_half`),
 * `models/qwen2/modeling_qwen2.py` (q/k/v biases), `convert_llama_weights_to_hf.py` (the q/k
 * permutation), `modeling_utils.py` (the sharded index: `weight_map` of tensor → shard file).
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { fail, show } from '../internal/errors.js';
import { setModelStopTokens } from '../internal/stop_tokens.js';
import { checkFitsBackend } from './capacity.js';
import { type ResolvedTransformerConfig, type TransformerConfig, resolveTransformerConfig } from './config.js';
import { transformerFromWeights, type CheckpointWeights } from './from_weights.js';
import { buildWithHeads, DRAFT_HEAD_OPTION_KEYS, type DraftHeadOptions, draftParameters, type HeadPlan, planHeads, readHeadOptions } from './head_options.js';
import { eosTokenIds, hfArchitecture, parseJsonObject, readJson, type HfArchitecture, type HfModelType, type JsonSource } from './hf_config.js';
import { fetchBytes, readBytes, type BytesSource } from './read_bytes.js';
import { readSafetensors } from './safetensors.js';
import { checkpointWeightSpecs, type WeightPart, type WeightSpec } from './weights.js';

/** Hugging Face's name of each canonical role (the three model types share them); a block's are under `model.layers.<i>.`. */
const HF_NAMES: Readonly<Record<Exclude<WeightPart, 'positions'>, string>> = {
  embedding: 'model.embed_tokens',
  attentionNorm: 'input_layernorm',
  wq: 'self_attn.q_proj',
  wk: 'self_attn.k_proj',
  wv: 'self_attn.v_proj',
  wo: 'self_attn.o_proj',
  ffnNorm: 'post_attention_layernorm',
  w1: 'mlp.gate_proj',
  w2: 'mlp.down_proj',
  w3: 'mlp.up_proj',
  norm: 'model.norm',
  output: 'lm_head',
};

/** Tensors a checkpoint may carry that the model does not use (old exports saved RoPE buffers). */
const IGNORED_TENSOR = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/** The file name of an unsharded checkpoint's weights (as Hugging Face saves it). */
const SINGLE_FILE = 'model.safetensors';
/** The sharded checkpoint's index and the optional generation config, in a folder. */
const INDEX_FILE = 'model.safetensors.index.json';
const GENERATION_FILE = 'generation_config.json';

/** One tensor of the checkpoint: its Hugging Face name and shape, and the canonical weight it becomes. */
interface HfTensor {
  hf: string;
  shape: number[];
  spec: WeightSpec;
  /** A projection matrix: stored `[out, in]`, canonical `[in, out]`. */
  transpose: boolean;
}

/** Every tensor a checkpoint of `c` must hold, in the canonical order. */
function hfTensors(c: ResolvedTransformerConfig): HfTensor[] {
  return checkpointWeightSpecs(c).map((spec) => {
    const name = HF_NAMES[spec.part as Exclude<WeightPart, 'positions'>];
    const hf = `${spec.layer === null ? '' : `model.layers.${spec.layer}.`}${name}.${spec.kind}`;
    const transpose = spec.shape.length === 2 && spec.part !== 'embedding';
    return { hf, shape: transpose ? [spec.shape[1]!, spec.shape[0]!] : spec.shape, spec, transpose };
  });
}

/** Whether the file may hold tensor `name` though the model does not use it: a stored copy of the tied head, old RoPE buffers. */
function ignorable(name: string, tied: boolean): boolean {
  return (tied && name === 'lm_head.weight') || IGNORED_TENSOR.test(name);
}

/** `[out, in]` → `[in, out]`. */
function transpose(data: Float32Array, out: number, inp: number): Float32Array {
  const t = new Float32Array(data.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) t[i * out + o] = data[o * inp + i]!;
  return t;
}

/** One safetensors file of a checkpoint: where it comes from and the tensors it must hold. */
interface FilePlan {
  /** Its file name (`model.safetensors`, or the shard's name in the index). */
  name: string;
  /** Its bytes or URL. */
  source: BytesSource;
  /** The argument naming it in errors (`files.safetensors`, `files.shards["…"]`; parsed from memory: the whole error prefix). */
  arg: string;
  /** The tensors the model reads from it (Hugging Face names). */
  tensors: HfTensor[];
  /** Why it must hold them, for the "missing tensor" error. */
  reason: string;
}

/** A checkpoint's architecture and the tensors it must hold, checked before any weight is read. */
interface ModelPlan extends HfArchitecture {
  /** `config` resolved (every field checked). */
  resolved: ResolvedTransformerConfig;
  /** Every tensor the model reads. */
  tensors: HfTensor[];
}

/** The architecture and tensor table of config.json; errors start with `where`. */
function planModel(json: Record<string, unknown>, where: string): ModelPlan {
  const arch = hfArchitecture(json, where);
  const resolved = resolveTransformerConfig(arch.config, where);
  return { ...arch, resolved, tensors: hfTensors(resolved) };
}

/**
 * The shard files of a sharded checkpoint from its index, checked against config.json and the
 * given shards: every tensor the model needs has a shard, no tensor is unexpected, every shard
 * named is given and every shard given is named. Reads no shard.
 */
function planShards(
  model: ModelPlan,
  index: Record<string, unknown>,
  shards: Readonly<Record<string, BytesSource>>,
  where: { index: string; shards: string },
  argOf: (file: string) => string,
): FilePlan[] {
  const map = index.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) fail(Error, where.index, 'weight_map', 'must be an object of tensor name → shard file name', map);
  const weightMap = map as Record<string, unknown>;
  const tied = model.resolved.tiedEmbeddings;
  const expected = new Set(model.tensors.map((t) => t.hf));
  for (const [name, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file.length === 0) fail(Error, where.index, `weight_map[${show(name)}]`, 'must be a shard file name', file);
    if (!expected.has(name) && !ignorable(name, tied)) fail(Error, where.index, `weight_map key ${show(name)}`, `must be a ${model.architecture} weight of config.json`, 'an unexpected tensor');
  }
  const byFile = new Map<string, HfTensor[]>();
  for (const t of model.tensors) {
    const file = weightMap[t.hf];
    if (file === undefined) fail(Error, where.index, `weight_map[${show(t.hf)}]`, 'must name the shard holding the tensor (config.json expects it)', 'no entry');
    const list = byFile.get(file as string) ?? [];
    if (list.length === 0) byFile.set(file as string, list);
    list.push(t);
  }
  const named = new Set(Object.values(weightMap) as string[]);
  const given = Object.keys(shards);
  const extra = given.find((file) => !named.has(file));
  if (extra !== undefined) {
    const names = `${[...named].slice(0, 4).map(show).join(', ')}${named.size > 4 ? ', …' : ''}`;
    throw new Error(`${where.shards} key ${show(extra)} must be a shard the index names (${names}), but got "a file it does not name".`);
  }
  return [...byFile.keys()].sort().map((file) => {
    if (!Object.prototype.hasOwnProperty.call(shards, file)) {
      throw new Error(`${where.shards}[${show(file)}] must be given (the index maps ${byFile.get(file)!.length} tensors to it), but got "no such shard".`);
    }
    return { name: file, source: shards[file]!, arg: argOf(file), tensors: byFile.get(file)!, reason: 'the index maps it to this file' };
  });
}

/**
 * Checks one safetensors file against its plan — every tensor it must hold present with its
 * shape, nothing unexpected, no NaN/Infinity — on the stored bytes, then converts its tensors to
 * canonical float32 weights in `weights`. The file's bytes are not kept.
 */
function readFile(bytes: Uint8Array, file: FilePlan, where: string, model: ModelPlan, weights: CheckpointWeights): void {
  const st = readSafetensors(bytes, where);
  const mine = new Set(file.tensors.map((t) => t.hf));
  const expected = new Set(model.tensors.map((t) => t.hf));
  for (const t of file.tensors) {
    const entry = st.tensors.get(t.hf);
    if (entry === undefined) fail(Error, where, `tensor ${show(t.hf)}`, `must be in the file (${file.reason})`, 'no such tensor');
    if (entry.shape.join() !== t.shape.join()) fail(Error, where, `tensor ${show(t.hf)} shape`, `must be ${show(t.shape)} (config.json)`, entry.shape);
  }
  for (const name of st.tensors.keys()) {
    if (!mine.has(name) && !ignorable(name, model.resolved.tiedEmbeddings)) {
      fail(Error, where, `tensor ${show(name)}`, expected.has(name) ? 'must be in the shard the index maps it to' : `must be a ${model.architecture} weight of config.json`, 'an unexpected tensor');
    }
  }
  for (const t of file.tensors) {
    const bad = st.firstNonFinite(t.hf);
    if (bad >= 0) fail(Error, where, `tensor ${show(t.hf)}[${bad}]`, 'must be finite', st.float32(t.hf)[bad]);
  }
  for (const t of file.tensors) {
    const data = st.float32(t.hf);
    weights.set(t.spec.name, { shape: t.spec.shape, data: t.transpose ? transpose(data, t.shape[0]!, t.shape[1]!) : data });
  }
}

/** The safetensors of a checkpoint in memory: one file, or an index and its shards by file name. */
export type HfTensorBytes =
  | Uint8Array
  | {
      /** The parsed `model.safetensors.index.json` (its `weight_map` names each tensor's shard). */
      index: Record<string, unknown>;
      /** Each shard's bytes by its file name. */
      shards: Readonly<Record<string, Uint8Array>>;
    };

/** A parsed Hugging Face checkpoint: the architecture and the weights by canonical name (matrices `[in, out]`). */
export interface ParsedHfLlama {
  /** config.json's `model_type` (absent: `llama`). */
  modelType: HfModelType;
  /** The Llama-family `TransformerConfig` (`ropeLayout: 'halfSplit'`, without `mtpHeads`). */
  config: TransformerConfig;
  /** Every trunk weight (and `output.weight` when untied) by its canonical name. */
  weights: CheckpointWeights;
  /** config.json's `eos_token_id` as a list (empty when absent or null). */
  stopTokens: number[];
}

/**
 * Parses a Hugging Face checkpoint held in memory into a transformer config
 * (`ropeLayout: 'halfSplit'`) and canonical weights, checking everything first; errors name the
 * file and the field.
 * @param config `config.json` as an object.
 * @param tensors The bytes of `model.safetensors`, or `{ index, shards }`: the parsed
 *   `model.safetensors.index.json` and each shard's bytes by its file name.
 * @param where Error prefixes of config.json, of the safetensors file (sharded: of the shards,
 *   each named `[file]` after it) and of the index.
 */
export function parseHfLlama(config: Record<string, unknown>, tensors: HfTensorBytes, where: { config?: string; safetensors?: string; index?: string } = {}): ParsedHfLlama {
  const sharded = !(tensors instanceof Uint8Array);
  const at = { config: where.config ?? 'parseHfLlama: config', safetensors: where.safetensors ?? (sharded ? 'parseHfLlama: shards' : 'parseHfLlama: safetensors'), index: where.index ?? 'parseHfLlama: index' };
  const model = planModel(parseJsonObject(config, at.config), at.config);
  const stopTokens = eosTokenIds(config, at.config, model.resolved.vocabSize);
  const files = sharded
    ? planShards(model, parseJsonObject(tensors.index, at.index, 'index'), tensors.shards, { index: at.index, shards: at.safetensors }, (file) => `${at.safetensors}[${show(file)}]`)
    : [{ name: SINGLE_FILE, source: tensors, arg: at.safetensors, tensors: model.tensors, reason: 'config.json expects it' }];
  const weights: CheckpointWeights = new Map();
  for (const file of files) {
    if (!(file.source instanceof Uint8Array)) fail(TypeError, file.arg, 'file', 'must be a Uint8Array', file.source);
    readFile(file.source, file, file.arg, model, weights);
  }
  return { modelType: model.modelType, config: model.config, weights, stopTokens };
}

/** What every form of {@link HfLlamaFiles} has besides the weights. */
interface HfFilesBase {
  /** `config.json`: the parsed object, its text (a string starting with `{`), its bytes, or a URL to fetch (any other string). */
  config: JsonSource;
  /**
   * Optional `generation_config.json`, in any form `config` takes: its `eos_token_id`, when it has
   * the field, replaces config.json's as the model's stop tokens (as in transformers' `generate`).
   */
  generationConfig?: JsonSource;
}

/** An unsharded checkpoint: `config.json` + `model.safetensors`. @inline */
export interface HfSingleFiles extends HfFilesBase {
  /** `model.safetensors`: its bytes or a URL to fetch. */
  safetensors: BytesSource;
}

/** A sharded checkpoint: `config.json` + `model.safetensors.index.json` + the shards it names. @inline */
export interface HfShardedFiles extends HfFilesBase {
  /** `model.safetensors.index.json`, in any form `config` takes (its `weight_map` names each tensor's shard). */
  index: JsonSource;
  /** Every shard the index names, by its file name (`model-00001-of-00002.safetensors`): its bytes or a URL to fetch. */
  shards: { readonly [file: string]: BytesSource };
}

/**
 * The files of a Hugging Face checkpoint: unsharded or sharded.
 * @inlineType BytesSource
 */
export type HfLlamaFiles = HfSingleFiles | HfShardedFiles;

/** What {@link LoadHfLlamaOptions.onProgress} is told after each safetensors file is read and converted. @inline */
export interface HfLoadProgress {
  /** The file just read: `model.safetensors` or the shard's name in the index. */
  file: string;
  /** Safetensors files read so far, this one included. */
  filesLoaded: number;
  /** Safetensors files the checkpoint has (1 unsharded). */
  filesTotal: number;
  /** Bytes of the safetensors files read so far. */
  bytesLoaded: number;
}

/** What {@link loadHfLlama} resolves to. @inline */
export interface HfLlamaModel {
  /** The transformer with a `MultiTokenHead` of k offsets (offset 0 = the checkpoint's `lm_head`). */
  model: LayersModel;
  /** config.json's `model_type` (absent: `llama`). */
  modelType: HfModelType;
  /**
   * The token ids that end a text: `eos_token_id` (a number or a list) of generation_config.json
   * when given and it has the field, else of config.json; empty when neither names one. Recorded
   * on `model` too, so `new CachedTransformer(model).stopTokens` has them and the decoders stop
   * there unless given `stopTokens`.
   */
  stopTokens: number[];
}

/** Options of {@link loadHfLlama}: the draft heads (k, kind, sizes, draft vocabulary, a trained heads file) and a progress callback. @inline */
export interface LoadHfLlamaOptions extends DraftHeadOptions {
  /** Called after each safetensors file is read and converted (a shard at a time), e.g. for a progress bar. */
  onProgress?: (progress: HfLoadProgress) => void;
}

const OPTION_KEYS = [...DRAFT_HEAD_OPTION_KEYS, 'onProgress'] as const;

/** Float32 bytes of the loaded model: the checkpoint's tensors plus the draft offsets 1…k−1 of `heads`. */
function modelBytes(model: ModelPlan, heads: HeadPlan): number {
  const elements = model.tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0) + draftParameters(heads, model.resolved.hiddenSize);
  return 4 * elements;
}

/** `folder` + `/` + `file` (a URL of a file in the folder). */
const inFolder = (folder: string, file: string) => `${folder.replace(/\/+$/, '')}/${file}`;

/**
 * Fetches `url` like `readBytes`, except that a 404 resolves to undefined (an optional file of a
 * folder: generation_config.json; the index, absent from an unsharded checkpoint).
 */
async function fetchOptional(url: string, fn: string, arg: string): Promise<Uint8Array | undefined> {
  return fetchBytes(url, `${fn}: ${arg} ${show(url)}`, true);
}

/** The files of the checkpoint in folder `url`: config.json, then the index if there is one (else model.safetensors), and generation_config.json if there is one. */
async function folderFiles(url: string, fn: string): Promise<HfLlamaFiles> {
  const [index, generation] = await Promise.all([fetchOptional(inFolder(url, INDEX_FILE), fn, INDEX_FILE), fetchOptional(inFolder(url, GENERATION_FILE), fn, GENERATION_FILE)]);
  const base = { config: inFolder(url, 'config.json'), ...(generation !== undefined ? { generationConfig: generation } : {}) };
  if (index === undefined) return { ...base, safetensors: inFolder(url, SINGLE_FILE) };
  const where = `${fn}: ${INDEX_FILE} ${show(inFolder(url, INDEX_FILE))}`;
  const map = parseJsonObject(new TextDecoder().decode(index), where, 'index').weight_map;
  const names = map !== null && typeof map === 'object' && !Array.isArray(map) ? new Set(Object.values(map as Record<string, unknown>)) : new Set<unknown>();
  const shards: Record<string, string> = {};
  for (const name of names) {
    if (typeof name !== 'string' || !/^[^/\\?#]+$/.test(name) || name === '.' || name === '..') fail(Error, where, 'weight_map', 'must name shard files inside the folder', name);
    shards[name] = inFolder(url, name);
  }
  return { ...base, index, shards };
}

/** Which form of the files `files` is, or null for none. */
function filesForm(files: unknown): 'folder' | 'single' | 'sharded' | null {
  if (typeof files === 'string') return 'folder';
  if (files === null || typeof files !== 'object' || !('config' in files)) return null;
  const [single, index, shards] = ['safetensors' in files, 'index' in files, 'shards' in files];
  if (single) return index || shards ? null : 'single';
  return index && shards ? 'sharded' : null;
}

/**
 * Loads a Hugging Face `LlamaForCausalLM`, `MistralForCausalLM` or `Qwen2ForCausalLM` checkpoint
 * (F32, F16 or BF16 safetensors, one file or sharded) as a transformer with k multi-token heads.
 * Offset 0 is exactly the checkpoint's `lm_head` (or the tied embedding); offsets 1…k−1 start as
 * the identity, or are trained draft heads (`options.draftHeads`, checked against these weights'
 * fingerprint) — the same head options as `loadLlama2c`.
 *
 * Before any weight is read: the options and the heads file are checked, config.json (anything
 * the transformer does not run is refused naming the field), the model's size with its draft
 * heads against what the running backend can hold (wasm: 4 GiB), and a sharded index against
 * config.json and the shards given. Shards are then read one at a time (fetched, checked,
 * converted to float32, released), so the memory used is one shard's bytes plus the model's
 * float32 weights; no tensor exists until every file has been read.
 *
 * @example
 * ```ts
 * const folder = 'https://huggingface.co/HuggingFaceTB/SmolLM2-135M/resolve/main';
 * const { model } = await loadHfLlama(folder);
 * const cached = new CachedTransformer(model);
 * // with draft heads trained for it (trainDraftHeads, or npm run train:heads -- --model <folder>):
 * const { model: withHeads } = await loadHfLlama(folder, { draftHeads: '/heads/smollm2.bin' });
 * ```
 * @param files `{ config, safetensors }`, `{ config, index, shards }` (bytes, text/object or URLs;
 *   optionally `generationConfig`), or the URL of the folder holding config.json,
 *   model.safetensors or model.safetensors.index.json and its shards, and optionally generation_config.json.
 * @param options The draft heads (k, kind and sizes, draft vocabulary, a trained heads file) and a progress callback.
 */
export async function loadHfLlama(files: HfLlamaFiles | string, options: LoadHfLlamaOptions = {}): Promise<HfLlamaModel> {
  const fn = 'loadHfLlama';
  if (filesForm(files) === null) fail(TypeError, fn, 'files', 'must be a folder URL, { config, safetensors } or { config, index, shards }', files);
  if (options === null || typeof options !== 'object') fail(TypeError, fn, 'options', 'must be an object', options);
  const unknown = Object.keys(options).find((key) => !(OPTION_KEYS as readonly string[]).includes(key));
  if (unknown !== undefined) fail(TypeError, fn, 'options', `may only have the keys ${OPTION_KEYS.join(', ')}`, unknown);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') fail(TypeError, fn, 'options.onProgress', 'must be a function', options.onProgress);
  const request = await readHeadOptions(fn, options); // checked, and the heads file read, before the checkpoint
  const isFolder = typeof files === 'string';
  const f = isFolder ? await folderFiles(files, fn) : files;
  const arg = (field: string, file: string) => (isFolder ? file : `files.${field}`); // a folder's files go by their names

  // config.json (and generation_config.json): the architecture, the stop tokens, the size
  const [config, generation] = await Promise.all([
    readJson(f.config, fn, arg('config', 'config.json')),
    f.generationConfig === undefined ? undefined : readJson(f.generationConfig, fn, arg('generationConfig', GENERATION_FILE), 'generation config'),
  ]);
  const model = planModel(config.json, config.where);
  const { vocabSize, hiddenSize, tiedEmbeddings } = model.resolved;
  const stopTokens = generation !== undefined && generation.json.eos_token_id !== undefined ? eosTokenIds(generation.json, generation.where, vocabSize) : eosTokenIds(config.json, config.where, vocabSize);
  const heads = planHeads(request, { vocabSize, hiddenSize, tiedEmbeddings });
  checkFitsBackend(config.where, modelBytes(model, heads));

  // the files to read, each with the tensors it must hold (sharded: the index, checked first)
  let plans: FilePlan[];
  if ('index' in f) {
    const index = await readJson(f.index, fn, arg('index', INDEX_FILE), 'index');
    if (f.shards === null || typeof f.shards !== 'object' || Array.isArray(f.shards)) fail(TypeError, fn, 'files.shards', 'must be an object of shard file name → bytes or URL', f.shards);
    plans = planShards(model, index.json, f.shards, { index: index.where, shards: `${fn}: files.shards` }, (file) => (isFolder ? file : `files.shards[${show(file)}]`));
  } else {
    plans = [{ name: SINGLE_FILE, source: f.safetensors, arg: arg('safetensors', SINGLE_FILE), tensors: model.tensors, reason: 'config.json expects it' }];
  }

  // one file at a time: read, check, convert, release
  const weights: CheckpointWeights = new Map();
  let bytesLoaded = 0;
  for (const [i, plan] of plans.entries()) {
    const file = await readBytes(plan.source, fn, plan.arg);
    readFile(file.bytes, plan, file.where, model, weights);
    bytesLoaded += file.bytes.byteLength;
    options.onProgress?.({ file: plan.name, filesLoaded: i + 1, filesTotal: plans.length, bytesLoaded });
  }
  const built = await buildWithHeads(heads, (head) => transformerFromWeights({ ...model.config, ...head, name: 'hf_llama' }, weights, config.where));
  setModelStopTokens(built, stopTokens);
  return { model: built, modelType: model.modelType, stopTokens };
}
