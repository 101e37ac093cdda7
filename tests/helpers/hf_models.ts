/**
 * Hugging Face Llama-family checkpoints for the tests: deterministic random canonical weights, the
 * same tensors in Hugging Face's names and `[out, in]` layout, and a whole model folder as
 * `save_pretrained` writes one (config.json, model.safetensors or the index and its shards,
 * generation_config.json) with the GPT-2 tokenizer of `../shared/tokenizers/gpt2` linked in — read
 * in place, never copied.
 */
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveTransformerConfig } from '../../src/models/config.js';
import type { TransformerConfig } from '../../src/models/index.js';
import { type CheckpointWeights } from '../../src/models/from_weights.js';
import { checkpointWeightSpecs } from '../../src/models/weights.js';
import { writeSafetensors, writeShards, type TensorToWrite } from './stories.js';

/** The fields every Hugging Face Llama-family model shares. */
export const LLAMA_FAMILY: TransformerConfig = { norm: 'rmsNorm', positions: 'rotary', ropeLayout: 'halfSplit', mlp: 'swiglu', useBias: false };

/** Deterministic random canonical weights (an LCG, independent of tfjs): uniform in ±0.3, norms around 1. */
export function randomWeights(config: TransformerConfig, seed: number): CheckpointWeights {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.6;
  const weights: CheckpointWeights = new Map();
  for (const spec of checkpointWeightSpecs(resolveTransformerConfig(config))) {
    const norm = spec.shape.length === 1 && spec.kind === 'weight';
    weights.set(spec.name, { shape: spec.shape, data: Float32Array.from({ length: spec.shape.reduce((a, b) => a * b, 1) }, () => (norm ? 1 + next() : next())) });
  }
  return weights;
}

/** Hugging Face's module of each canonical one (written out here, independently of the loader's table). */
const HF_MODULE: Record<string, string> = {
  tok_embeddings: 'model.embed_tokens', norm: 'model.norm', output: 'lm_head', attention_norm: 'input_layernorm', 'attention.wq': 'self_attn.q_proj',
  'attention.wk': 'self_attn.k_proj', 'attention.wv': 'self_attn.v_proj', 'attention.wo': 'self_attn.o_proj', ffn_norm: 'post_attention_layernorm',
  'feed_forward.w1': 'mlp.gate_proj', 'feed_forward.w2': 'mlp.down_proj', 'feed_forward.w3': 'mlp.up_proj',
};

/** Canonical weights as Hugging Face stores them: its names, matrices `[out, in]` (the embedding stays `[V, D]`), in `dtype`. */
export function toHfTensors(weights: CheckpointWeights, dtype: TensorToWrite['dtype']): TensorToWrite[] {
  return [...weights].map(([name, t]) => {
    const [, layer, module, kind] = /^(?:layers\.(\d+)\.)?(.+)\.(weight|bias)$/.exec(name)!;
    const hfName = `${layer === undefined ? '' : `model.layers.${layer}.`}${HF_MODULE[module!]}.${kind}`;
    if (t.shape.length === 1 || module === 'tok_embeddings') return { name: hfName, dtype, shape: t.shape, data: t.data };
    const [inp, out] = t.shape as [number, number];
    const data = new Float32Array(t.data.length);
    for (let i = 0; i < inp; i++) for (let o = 0; o < out; o++) data[o * inp + i] = t.data[i * out + o]!;
    return { name: hfName, dtype, shape: [out, inp], data };
  });
}

/** The GPT-2 tokenizer folder (tokenizer.json: vocabulary 50,257, `<|endoftext|>` = 50256). */
export const GPT2_TOKENIZER_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/tokenizers/gpt2');

/** Whether the GPT-2 tokenizer is on this machine; says so loudly when a suite skips for want of it. */
export function gpt2Available(suite: string): boolean {
  if (existsSync(join(GPT2_TOKENIZER_DIR, 'tokenizer.json'))) return true;
  console.warn(`${suite}: skipped: no GPT-2 tokenizer.json at ${GPT2_TOKENIZER_DIR}.`);
  return false;
}

/**
 * A SmolLM2-shaped model (llama, grouped-query attention, tied embedding) small enough for any
 * backend, on the GPT-2 vocabulary: its config.json and what it means as a `TransformerConfig`.
 */
export const SMOL_GPT2 = {
  hf: {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, vocab_size: 50257, max_position_embeddings: 256, rms_norm_eps: 1e-5,
    rope_theta: 100000, rope_scaling: null, tie_word_embeddings: true, attention_bias: false, mlp_bias: false, bos_token_id: 50256, eos_token_id: 50256, torch_dtype: 'float32',
  },
  config: { ...LLAMA_FAMILY, vocabSize: 50257, maxLength: 256, hiddenSize: 32, numLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 8, intermediateSize: 64, normEpsilon: 1e-5, ropeTheta: 100000, tiedEmbeddings: true } as TransformerConfig,
};

/** What {@link writeHfFolder} writes. */
export interface HfFolderSpec {
  /** config.json. */
  hf: Record<string, unknown>;
  /** The weights (canonical names). */
  weights: CheckpointWeights;
  /** Storage type of every tensor (default F32). */
  dtype?: TensorToWrite['dtype'];
  /** Shards (0 or absent: one model.safetensors). */
  shards?: number;
  /** generation_config.json (absent: none). */
  generationConfig?: Record<string, unknown>;
  /** Link the GPT-2 tokenizer.json and tokenizer_config.json in (default true). */
  gpt2Tokenizer?: boolean;
}

/** Writes a Hugging Face model folder at `dir` (created); returns `dir`. */
export function writeHfFolder(dir: string, spec: HfFolderSpec): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec.hf, null, 2));
  const tensors = toHfTensors(spec.weights, spec.dtype ?? 'F32');
  if ((spec.shards ?? 0) > 0) {
    const { index, shards } = writeShards(tensors, spec.shards!);
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2));
    for (const [name, bytes] of Object.entries(shards)) writeFileSync(join(dir, name), bytes);
  } else {
    writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(tensors, { format: 'pt' }));
  }
  if (spec.generationConfig) writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(spec.generationConfig, null, 2));
  if (spec.gpt2Tokenizer ?? true) {
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) symlinkSync(join(GPT2_TOKENIZER_DIR, file), join(dir, file));
  }
  return dir;
}
