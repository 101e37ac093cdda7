/**
 * Hugging Face Llama checkpoints: `loadHfLlama` reads a `LlamaForCausalLM` (`config.json` +
 * one `model.safetensors`, F32/F16/BF16) into the transformer of `transformerFromWeights`.
 *
 * Hugging Face stores q_proj/k_proj rows permuted so that its `rotate_half` rotates dims
 * (i, i + head_size/2) together; the loader keeps those rows as stored and sets
 * `ropeLayout: 'halfSplit'`, which is the same model. Matrices are stored `[out, in]`
 * (y = x·Wᵀ) and transposed to the canonical `[in, out]`.
 *
 * Reference: huggingface/transformers, `models/llama/configuration_llama.py` (fields and
 * defaults), `modeling_llama.py` (names, `rotate_half`), `convert_llama_weights_to_hf.py`
 * (the q/k permutation).
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { checkDraftVocab } from '../internal/draft_vocab.js';
import { SIZE_LIMITS, checkInteger, checkPositiveInteger, fail, show } from '../internal/errors.js';
import { checkJsonText } from '../internal/json.js';
import { setModelStopTokens } from '../internal/stop_tokens.js';
import { TRANSFORMER_DEFAULTS, type TransformerConfig } from './config.js';
import { transformerFromWeights, type CheckpointWeights } from './from_weights.js';
import { readBytes, type BytesSource } from './llama2c.js';
import { readSafetensors, type SafetensorsFile } from './safetensors.js';

/** `LlamaConfig` defaults of the optional fields this loader reads (transformers' values). */
const HF_LLAMA_DEFAULTS = { rope_theta: 10000, rms_norm_eps: 1e-6, tie_word_embeddings: false, hidden_act: 'silu' } as const;

/** Tensors a checkpoint may carry that the model does not use (old exports saved RoPE buffers). */
const IGNORED_TENSOR = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/** The two files of a Hugging Face Llama checkpoint. */
export interface HfLlamaFiles {
  /**
   * `config.json`: the parsed object, its text (a string starting with `{`), its bytes, or a URL
   * to fetch (any other string).
   */
  config: Record<string, unknown> | string | ArrayBuffer | Uint8Array;
  /** `model.safetensors`: its bytes or a URL to fetch. */
  safetensors: BytesSource;
  /**
   * Optional `generation_config.json`, in any form `config` takes: its `eos_token_id`, when it has
   * the field, replaces config.json's as the model's stop tokens (as in transformers' `generate`).
   */
  generationConfig?: Record<string, unknown> | string | ArrayBuffer | Uint8Array;
}

/** What {@link loadHfLlama} resolves to. */
export interface HfLlamaModel {
  /** The transformer with a `MultiTokenHead` of k offsets (offset 0 = the checkpoint's `lm_head`). */
  model: LayersModel;
  /**
   * The token ids that end a text: `eos_token_id` (a number or a list) of generation_config.json
   * when given and it has the field, else of config.json; empty when neither names one. Recorded
   * on `model` too, so `new CachedTransformer(model).stopTokens` has them and the decoders stop
   * there unless given `stopTokens`.
   */
  stopTokens: number[];
}

/** Options of {@link loadHfLlama}. */
export interface LoadHfLlamaOptions {
  /** Number k of multi-token heads; offset 0 is the checkpoint's `lm_head`. Default: `TRANSFORMER_DEFAULTS.mtpHeads`. */
  mtpHeads?: number;
  /**
   * The draft vocabulary: distinct token ids in [0, vocab_size) offsets 1…k−1 may propose (see the
   * head's `draftVocab`). Default: the whole vocabulary.
   */
  draftVocab?: readonly number[];
}

const OPTION_KEYS = ['mtpHeads', 'draftVocab'] as const;

/** Reads a JSON file given as `files[arg]` (an object, its text, its bytes or a URL) to an object; errors start with `where`. */
async function readConfig(source: HfLlamaFiles['config'], fn: string, arg = 'files.config'): Promise<{ json: Record<string, unknown>; where: string }> {
  let json: unknown = source;
  let where = `${fn}: ${arg}`;
  if ((typeof source === 'string' && !source.trimStart().startsWith('{')) || source instanceof Uint8Array || source instanceof ArrayBuffer) {
    const file = await readBytes(source as BytesSource, fn, arg);
    where = file.where;
    json = new TextDecoder().decode(file.bytes);
  }
  if (typeof json === 'string') {
    checkJsonText(json, where, '');
    try {
      json = JSON.parse(json);
    } catch (error) {
      throw new Error(`${where}: must be JSON, but parsing failed (${(error as Error).message}).`);
    }
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail(TypeError, where, 'config', 'must be a JSON object', json);
  return { json: json as Record<string, unknown>, where };
}

/** The transformer config of a `LlamaConfig` object, every field checked. */
function hfLlamaConfig(c: Record<string, unknown>, where: string): TransformerConfig {
  const int = (key: string, max: number, fallback?: unknown) => checkInteger(where, key, c[key] ?? fallback, 1, max);
  const hiddenSize = int('hidden_size', SIZE_LIMITS.hiddenSize);
  const numHeads = int('num_attention_heads', SIZE_LIMITS.attentionHeads);
  const numKeyValueHeads = int('num_key_value_heads', numHeads, numHeads);
  if (hiddenSize % numHeads !== 0 || (hiddenSize / numHeads) % 2 !== 0) fail(RangeError, where, 'hidden_size', `must be num_attention_heads (${numHeads}) × an even head size`, hiddenSize);
  if (numHeads % numKeyValueHeads !== 0) fail(RangeError, where, 'num_key_value_heads', `must divide num_attention_heads (${numHeads})`, numKeyValueHeads);
  if (c.head_dim !== undefined && c.head_dim !== null && c.head_dim !== hiddenSize / numHeads) {
    fail(RangeError, where, 'head_dim', `must be hidden_size / num_attention_heads = ${hiddenSize / numHeads}`, c.head_dim);
  }
  const positive = (key: string, fallback: number) => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) fail(RangeError, where, key, 'must be a positive number', v);
    return v;
  };
  const flag = (key: string, fallback: boolean) => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'boolean') fail(TypeError, where, key, 'must be a boolean', v);
    return v;
  };
  const act = c.hidden_act ?? HF_LLAMA_DEFAULTS.hidden_act;
  if (act !== 'silu') fail(Error, where, 'hidden_act', 'must be "silu" (SwiGLU)', act);
  if (c.rope_scaling !== undefined && c.rope_scaling !== null) fail(Error, where, 'rope_scaling', 'must be null (scaled RoPE is not supported)', c.rope_scaling);
  for (const key of ['attention_bias', 'mlp_bias']) if (flag(key, false)) fail(Error, where, key, 'must be false (biases are not supported)', true);
  return {
    vocabSize: int('vocab_size', SIZE_LIMITS.vocabSize),
    maxLength: int('max_position_embeddings', SIZE_LIMITS.maxLength),
    hiddenSize,
    numLayers: int('num_hidden_layers', SIZE_LIMITS.numLayers),
    numHeads,
    numKeyValueHeads,
    mlpHiddenSize: int('intermediate_size', SIZE_LIMITS.hiddenSize),
    norm: 'rmsNorm',
    normEpsilon: positive('rms_norm_eps', HF_LLAMA_DEFAULTS.rms_norm_eps),
    positions: 'rotary',
    ropeTheta: positive('rope_theta', HF_LLAMA_DEFAULTS.rope_theta),
    ropeLayout: 'halfSplit',
    mlp: 'swiglu',
    useBias: false,
    tiedEmbeddings: flag('tie_word_embeddings', HF_LLAMA_DEFAULTS.tie_word_embeddings),
  };
}

/**
 * The stop tokens of a config's `eos_token_id`: a token id, a list of them, or absent/null (none).
 * @param c config.json or generation_config.json as an object.
 * @param vocabSize The model's vocabulary size (every id must be below it).
 */
function eosTokenIds(c: Record<string, unknown>, where: string, vocabSize: number): number[] {
  const eos = c.eos_token_id;
  if (eos === undefined || eos === null) return [];
  if (!Array.isArray(eos)) return [checkInteger(where, 'eos_token_id', eos, 0, vocabSize - 1)];
  if (eos.length > SIZE_LIMITS.vocabSize) fail(RangeError, where, 'eos_token_id', `must list at most ${SIZE_LIMITS.vocabSize} token ids`, eos);
  return eos.map((id, i) => checkInteger(where, `eos_token_id[${i}]`, id, 0, vocabSize - 1));
}

/** Hugging Face name → [canonical name, expected `[out, in]` shape (HF), transpose?] for every tensor of `config`. */
function tensorTable(config: TransformerConfig): Array<[string, string, number[], boolean]> {
  const D = config.hiddenSize!;
  const F = config.mlpHiddenSize!;
  const kv = (D / config.numHeads!) * config.numKeyValueHeads!;
  const table: Array<[string, string, number[], boolean]> = [['model.embed_tokens.weight', 'tok_embeddings.weight', [config.vocabSize!, D], false]];
  for (let i = 0; i < config.numLayers!; i++) {
    const [hf, ours] = [`model.layers.${i}.`, `layers.${i}.`];
    table.push(
      [`${hf}input_layernorm.weight`, `${ours}attention_norm.weight`, [D], false],
      [`${hf}self_attn.q_proj.weight`, `${ours}attention.wq.weight`, [D, D], true],
      [`${hf}self_attn.k_proj.weight`, `${ours}attention.wk.weight`, [kv, D], true],
      [`${hf}self_attn.v_proj.weight`, `${ours}attention.wv.weight`, [kv, D], true],
      [`${hf}self_attn.o_proj.weight`, `${ours}attention.wo.weight`, [D, D], true],
      [`${hf}post_attention_layernorm.weight`, `${ours}ffn_norm.weight`, [D], false],
      [`${hf}mlp.gate_proj.weight`, `${ours}feed_forward.w1.weight`, [F, D], true],
      [`${hf}mlp.down_proj.weight`, `${ours}feed_forward.w2.weight`, [D, F], true],
      [`${hf}mlp.up_proj.weight`, `${ours}feed_forward.w3.weight`, [F, D], true],
    );
  }
  table.push(['model.norm.weight', 'norm.weight', [D], false]);
  if (!config.tiedEmbeddings) table.push(['lm_head.weight', 'output.weight', [config.vocabSize!, D], true]);
  return table;
}

/** `[out, in]` → `[in, out]`. */
function transpose(data: Float32Array, out: number, inp: number): Float32Array {
  const t = new Float32Array(data.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) t[i * out + o] = data[o * inp + i]!;
  return t;
}

/**
 * The canonical weights of `config` from a checked safetensors file: every expected tensor
 * present with its shape, no unexpected one, no NaN/Infinity anywhere — all checked on the
 * stored bytes before any tensor is converted.
 */
function hfWeights(file: SafetensorsFile, config: TransformerConfig, where: string): CheckpointWeights {
  const table = tensorTable(config);
  const expected = new Set(table.map(([hf]) => hf));
  for (const [hf, , shape] of table) {
    const entry = file.tensors.get(hf);
    if (entry === undefined) fail(Error, where, `tensor ${show(hf)}`, 'must be in the file (config.json expects it)', 'no such tensor');
    if (entry.shape.join() !== shape.join()) fail(Error, where, `tensor ${show(hf)} shape`, `must be ${show(shape)} (config.json)`, entry.shape);
  }
  for (const name of file.tensors.keys()) {
    const tiedHead = name === 'lm_head.weight' && config.tiedEmbeddings; // some exports store the tied copy too
    if (!expected.has(name) && !tiedHead && !IGNORED_TENSOR.test(name)) fail(Error, where, `tensor ${show(name)}`, 'must be a LlamaForCausalLM weight of config.json', 'an unexpected tensor');
  }
  for (const [hf] of table) {
    const bad = file.firstNonFinite(hf);
    if (bad >= 0) fail(Error, where, `tensor ${show(hf)}[${bad}]`, 'must be finite', file.float32(hf)[bad]);
  }
  const weights: CheckpointWeights = new Map();
  for (const [hf, ours, shape, transposeIt] of table) {
    const data = file.float32(hf);
    weights.set(ours, transposeIt ? { shape: [shape[1]!, shape[0]!], data: transpose(data, shape[0]!, shape[1]!) } : { shape, data });
  }
  return weights;
}

/** A parsed Hugging Face checkpoint: the architecture and the weights by canonical name (matrices `[in, out]`). */
export interface ParsedHfLlama {
  /** The Llama-family `TransformerConfig` (`ropeLayout: 'halfSplit'`, without `mtpHeads`). */
  config: TransformerConfig;
  /** Every trunk weight (and `output.weight` when untied) by its canonical name. */
  weights: CheckpointWeights;
  /** config.json's `eos_token_id` as a list (empty when absent or null). */
  stopTokens: number[];
}

/**
 * Parses a Hugging Face Llama checkpoint into a transformer config (`ropeLayout: 'halfSplit'`)
 * and canonical weights, checking everything first; errors name the file and the field.
 * @param config `config.json` as an object.
 * @param safetensors The bytes of `model.safetensors`.
 * @param where Error prefixes for the two files.
 */
export function parseHfLlama(
  config: Record<string, unknown>,
  safetensors: Uint8Array,
  where: { config: string; safetensors: string } = { config: 'parseHfLlama: config', safetensors: 'parseHfLlama: safetensors' },
): ParsedHfLlama {
  const transformerConfig = hfLlamaConfig(config, where.config);
  const stopTokens = eosTokenIds(config, where.config, transformerConfig.vocabSize!);
  const file = readSafetensors(safetensors, where.safetensors);
  return { config: transformerConfig, weights: hfWeights(file, transformerConfig, where.safetensors), stopTokens };
}

/**
 * Loads a Hugging Face `LlamaForCausalLM` checkpoint (`config.json` + a single
 * `model.safetensors` of F32, F16 or BF16 tensors) as a transformer with k multi-token heads.
 * Offset 0 is exactly the checkpoint's `lm_head` (or the tied embedding); offsets 1…k−1 start
 * as the identity. Everything is checked before any tensor is allocated.
 *
 * @example
 * ```ts
 * const { model } = await loadHfLlama({ config: '/llama/config.json', safetensors: '/llama/model.safetensors' });
 * const cached = new CachedTransformer(model);
 * ```
 * @param files `config.json` and `model.safetensors` (bytes, text/object, or URLs), optionally `generation_config.json`.
 * @param options Number of heads and the draft vocabulary.
 */
export async function loadHfLlama(files: HfLlamaFiles, options: LoadHfLlamaOptions = {}): Promise<HfLlamaModel> {
  const fn = 'loadHfLlama';
  if (files === null || typeof files !== 'object' || !('config' in files) || !('safetensors' in files)) {
    fail(TypeError, fn, 'files', 'must be an object { config, safetensors }', files);
  }
  if (options === null || typeof options !== 'object') fail(TypeError, fn, 'options', 'must be an object', options);
  const unknown = Object.keys(options).find((key) => !(OPTION_KEYS as readonly string[]).includes(key));
  if (unknown !== undefined) fail(TypeError, fn, 'options', `may only have the keys ${OPTION_KEYS.join(', ')}`, unknown);
  const mtpHeads = checkPositiveInteger(fn, 'options.mtpHeads', options.mtpHeads ?? TRANSFORMER_DEFAULTS.mtpHeads, SIZE_LIMITS.numHeads);
  const [config, tensors, generation] = await Promise.all([
    readConfig(files.config, fn),
    readBytes(files.safetensors, fn, 'files.safetensors'),
    files.generationConfig === undefined ? undefined : readConfig(files.generationConfig, fn, 'files.generationConfig'),
  ]);
  const parsed = parseHfLlama(config.json, tensors.bytes, { config: config.where, safetensors: tensors.where });
  const vocabSize = parsed.config.vocabSize!;
  const stopTokens = generation !== undefined && generation.json.eos_token_id !== undefined ? eosTokenIds(generation.json, generation.where, vocabSize) : parsed.stopTokens;
  const draftVocab = options.draftVocab === undefined ? null : checkDraftVocab(fn, 'options.draftVocab', options.draftVocab, vocabSize);
  const model = transformerFromWeights({ ...parsed.config, mtpHeads, draftVocab, name: 'hf_llama' }, parsed.weights, tensors.where);
  setModelStopTokens(model, stopTokens);
  return { model, stopTokens };
}
