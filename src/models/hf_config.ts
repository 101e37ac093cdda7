/**
 * Hugging Face `config.json` of the Llama family → the transformer config: `model_type` llama,
 * mistral (without sliding windows) or qwen2 (q/k/v biases), with `head_dim`, biases,
 * `tie_word_embeddings`, `rope_theta` and a `linear` or `llama3` `rope_scaling`. Every field is
 * checked, and anything the transformer does not run is refused naming the field — before a
 * byte of the weights is read.
 *
 * Reference: huggingface/transformers `configuration_llama.py`, `configuration_mistral.py`,
 * `configuration_qwen2.py` (fields and defaults), `modeling_rope_utils.py` (`rope_scaling` /
 * `rope_parameters`, `rope_type` or the older `type`).
 */
import { SIZE_LIMITS, checkInteger, fail, show } from '../internal/errors.js';
import { checkJsonText } from '../internal/json.js';
import type { AttentionBias, RopeScaling, TransformerConfig } from './config.js';
import { readBytes, type BytesSource } from './read_bytes.js';

/** A JSON file: the parsed object, its text (a string starting with `{`), its bytes, or a URL to fetch (any other string). @inline */
export type JsonSource = Record<string, unknown> | string | ArrayBuffer | Uint8Array;

/** A `model_type` this loader reads. @inline */
export type HfModelType = 'llama' | 'mistral' | 'qwen2';

/** Per `model_type`: the `*ForCausalLM` class (named in errors) and the defaults transformers gives absent fields. */
const MODEL_TYPES: Readonly<Record<HfModelType, { architecture: string; max_position_embeddings: number }>> = {
  llama: { architecture: 'LlamaForCausalLM', max_position_embeddings: 2048 },
  mistral: { architecture: 'MistralForCausalLM', max_position_embeddings: 4096 * 32 },
  qwen2: { architecture: 'Qwen2ForCausalLM', max_position_embeddings: 32768 },
};

/** Defaults shared by the three configs (transformers' values). */
const HF_DEFAULTS = { rope_theta: 10000, rms_norm_eps: 1e-6, tie_word_embeddings: false, hidden_act: 'silu' } as const;

/** What a `config.json` says, checked. */
export interface HfArchitecture {
  /** `model_type` (absent: `llama`). */
  modelType: HfModelType;
  /** Its `*ForCausalLM` class, for messages. */
  architecture: string;
  /** The Llama-family transformer config (`ropeLayout: 'halfSplit'`, without `mtpHeads`). */
  config: TransformerConfig;
}

/** Reads a JSON file given as `source` (an object, its text, its bytes or a URL) to an object; errors start with `where`. */
export async function readJson(source: JsonSource, fn: string, arg: string, name = 'config'): Promise<{ json: Record<string, unknown>; where: string }> {
  let json: unknown = source;
  let where = `${fn}: ${arg}`;
  if ((typeof source === 'string' && !source.trimStart().startsWith('{')) || source instanceof Uint8Array || source instanceof ArrayBuffer) {
    const file = await readBytes(source as BytesSource, fn, arg);
    where = file.where;
    json = new TextDecoder().decode(file.bytes);
  }
  return { json: parseJsonObject(json, where, name), where };
}

/** `json` (an object, or JSON text) as an object; errors start with `where` and call it `name`. */
export function parseJsonObject(json: unknown, where: string, name = 'config'): Record<string, unknown> {
  if (typeof json === 'string') {
    checkJsonText(json, where, '');
    try {
      json = JSON.parse(json);
    } catch (error) {
      throw new Error(`${where}: must be JSON, but parsing failed (${(error as Error).message}).`);
    }
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail(TypeError, where, name, 'must be a JSON object', json);
  return json as Record<string, unknown>;
}

/** Field readers over one config object; errors start with `where`. */
function fields(c: Record<string, unknown>, where: string) {
  const given = (key: string) => c[key] !== undefined && c[key] !== null;
  return {
    given,
    int: (key: string, max: number, fallback?: unknown) => checkInteger(where, key, given(key) ? c[key] : fallback, 1, max),
    positive: (key: string, fallback: number | undefined, o: Record<string, unknown> = c, prefix = ''): number => {
      const v = o[key] ?? fallback;
      if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) fail(RangeError, where, `${prefix}${key}`, 'must be a positive number', v);
      return v;
    },
    flag: (key: string, fallback: boolean) => {
      const v = c[key] ?? fallback;
      if (typeof v !== 'boolean') fail(TypeError, where, key, 'must be a boolean', v);
      return v;
    },
  };
}

/**
 * The checked architecture of a `config.json` object.
 * @param c config.json as an object.
 * @param where Prefix of every error (e.g. `loadHfLlama: files.config`).
 */
export function hfArchitecture(c: Record<string, unknown>, where: string): HfArchitecture {
  const f = fields(c, where);
  const modelType = c.model_type ?? 'llama';
  if (typeof modelType !== 'string' || !Object.prototype.hasOwnProperty.call(MODEL_TYPES, modelType)) {
    fail(Error, where, 'model_type', `must be one of ${Object.keys(MODEL_TYPES).map(show).join(', ')} (the Llama family this loader runs)`, modelType);
  }
  const type = MODEL_TYPES[modelType as HfModelType];
  refuseSlidingWindows(c, modelType as HfModelType, where);
  const hiddenSize = f.int('hidden_size', SIZE_LIMITS.hiddenSize);
  const numHeads = f.int('num_attention_heads', SIZE_LIMITS.attentionHeads);
  const numKeyValueHeads = f.int('num_key_value_heads', numHeads, numHeads);
  if (numHeads % numKeyValueHeads !== 0) fail(RangeError, where, 'num_key_value_heads', `must divide num_attention_heads (${numHeads})`, numKeyValueHeads);
  let headDim = hiddenSize / numHeads;
  if (f.given('head_dim')) {
    headDim = f.int('head_dim', SIZE_LIMITS.hiddenSize);
    if (headDim % 2 !== 0) fail(RangeError, where, 'head_dim', 'must be even (rotary positions turn pairs of dimensions)', headDim);
  } else if (hiddenSize % numHeads !== 0 || headDim % 2 !== 0) {
    fail(RangeError, where, 'hidden_size', `must be num_attention_heads (${numHeads}) × an even head size (or head_dim given)`, hiddenSize);
  }
  const act = c.hidden_act ?? HF_DEFAULTS.hidden_act;
  if (act !== 'silu') fail(Error, where, 'hidden_act', 'must be "silu" (SwiGLU)', act);
  if (f.given('partial_rotary_factor') && c.partial_rotary_factor !== 1) fail(Error, where, 'partial_rotary_factor', 'must be 1 (partial rotary positions are not supported)', c.partial_rotary_factor);
  const rope = ropeFields(c, where, f);
  const { attentionBias, mlpBias } = biases(modelType as HfModelType, f);
  return {
    modelType: modelType as HfModelType,
    architecture: type.architecture,
    config: {
      vocabSize: f.int('vocab_size', SIZE_LIMITS.vocabSize),
      maxLength: f.int('max_position_embeddings', SIZE_LIMITS.maxLength, type.max_position_embeddings),
      hiddenSize,
      numLayers: f.int('num_hidden_layers', SIZE_LIMITS.numLayers),
      numAttentionHeads: numHeads,
      numKeyValueHeads,
      headDim,
      intermediateSize: f.int('intermediate_size', SIZE_LIMITS.hiddenSize),
      norm: 'rmsNorm',
      normEpsilon: f.positive('rms_norm_eps', HF_DEFAULTS.rms_norm_eps),
      positions: 'rotary',
      ropeTheta: rope.theta,
      ropeLayout: 'halfSplit',
      ropeScaling: rope.scaling,
      mlp: 'swiglu',
      useBias: false,
      attentionBias,
      mlpBias,
      tiedEmbeddings: f.flag('tie_word_embeddings', HF_DEFAULTS.tie_word_embeddings),
    },
  };
}

/** Mistral's `sliding_window` and Qwen2's `use_sliding_window` (and any `layer_types` but full attention) are refused: attention here sees the whole context. */
function refuseSlidingWindows(c: Record<string, unknown>, modelType: HfModelType, where: string): void {
  if (modelType === 'mistral' && c.sliding_window !== undefined && c.sliding_window !== null) {
    fail(Error, where, 'sliding_window', 'must be null (sliding-window attention is not supported)', c.sliding_window);
  }
  if (modelType === 'qwen2' && c.use_sliding_window !== undefined && c.use_sliding_window !== false) {
    fail(Error, where, 'use_sliding_window', 'must be false (sliding-window attention is not supported)', c.use_sliding_window);
  }
  if (c.layer_types !== undefined && c.layer_types !== null) {
    const types = c.layer_types;
    if (!Array.isArray(types)) fail(TypeError, where, 'layer_types', 'must be a list', types);
    const other = types.findIndex((t) => t !== 'full_attention');
    if (other >= 0) fail(Error, where, `layer_types[${other}]`, 'must be "full_attention" (sliding-window attention is not supported)', types[other]);
  }
}

/** The biases of each model type: Llama's `attention_bias` (q/k/v/o) and `mlp_bias`, Qwen2's fixed q/k/v biases, none in Mistral. */
function biases(modelType: HfModelType, f: ReturnType<typeof fields>): { attentionBias: AttentionBias; mlpBias: boolean } {
  if (modelType === 'qwen2') return { attentionBias: 'qkv', mlpBias: false };
  if (modelType === 'mistral') return { attentionBias: 'none', mlpBias: false };
  return { attentionBias: f.flag('attention_bias', false) ? 'qkvo' : 'none', mlpBias: f.flag('mlp_bias', false) };
}

/** The rotary fields: `rope_theta` and `rope_scaling` (transformers ≤ 4), or both inside `rope_parameters` (transformers 5). */
function ropeFields(c: Record<string, unknown>, where: string, f: ReturnType<typeof fields>): { theta: number; scaling: RopeScaling | null } {
  const parameters = c.rope_parameters;
  if (parameters !== undefined && parameters !== null) {
    if (typeof parameters !== 'object' || Array.isArray(parameters)) fail(TypeError, where, 'rope_parameters', 'must be an object { rope_type, rope_theta, … }', parameters);
    const p = parameters as Record<string, unknown>;
    return { theta: f.positive('rope_theta', HF_DEFAULTS.rope_theta, p, 'rope_parameters.'), scaling: ropeScaling(p, 'rope_parameters', where, f) };
  }
  const scaling = c.rope_scaling;
  if (scaling !== undefined && scaling !== null && (typeof scaling !== 'object' || Array.isArray(scaling))) {
    fail(TypeError, where, 'rope_scaling', 'must be null or an object { rope_type, factor, … }', scaling);
  }
  return { theta: f.positive('rope_theta', HF_DEFAULTS.rope_theta), scaling: scaling ? ropeScaling(scaling as Record<string, unknown>, 'rope_scaling', where, f) : null };
}

/** The scaling of a `rope_scaling` / `rope_parameters` object `o` (named `field` in errors): `default`, `linear` or `llama3`; any other type is refused by name. */
function ropeScaling(o: Record<string, unknown>, field: string, where: string, f: ReturnType<typeof fields>): RopeScaling | null {
  const typeKey = o.rope_type !== undefined ? 'rope_type' : 'type'; // "type" is the older spelling
  const type = o[typeKey] ?? 'default';
  if (type !== 'default' && type !== 'linear' && type !== 'llama3') {
    fail(Error, where, `${field}.${typeKey}`, 'must be "default", "linear" or "llama3" (the RoPE scalings this loader runs)', type);
  }
  if (type === 'default') return null;
  const factor = f.positive('factor', undefined, o, `${field}.`);
  if (type === 'linear') return { type, factor };
  const lowFreqFactor = f.positive('low_freq_factor', undefined, o, `${field}.`);
  const highFreqFactor = f.positive('high_freq_factor', undefined, o, `${field}.`);
  if (!(highFreqFactor > lowFreqFactor)) fail(RangeError, where, `${field}.high_freq_factor`, `must be above low_freq_factor (${lowFreqFactor})`, highFreqFactor);
  const originalMaxLength = checkInteger(where, `${field}.original_max_position_embeddings`, o.original_max_position_embeddings, 1, SIZE_LIMITS.maxLength);
  return { type, factor, lowFreqFactor, highFreqFactor, originalMaxLength };
}

/**
 * The stop tokens of a config's `eos_token_id`: a token id, a list of them, or absent/null (none).
 * @param c config.json or generation_config.json as an object.
 * @param where Prefix of every error.
 * @param vocabSize The model's vocabulary size (every id must be below it).
 */
export function eosTokenIds(c: Record<string, unknown>, where: string, vocabSize: number): number[] {
  const eos = c.eos_token_id;
  if (eos === undefined || eos === null) return [];
  if (!Array.isArray(eos)) return [checkInteger(where, 'eos_token_id', eos, 0, vocabSize - 1)];
  if (eos.length > SIZE_LIMITS.vocabSize) fail(RangeError, where, 'eos_token_id', `must list at most ${SIZE_LIMITS.vocabSize} token ids`, eos);
  return eos.map((id, i) => checkInteger(where, `eos_token_id[${i}]`, id, 0, vocabSize - 1));
}
