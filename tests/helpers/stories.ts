/**
 * Where the tests find stories260K (a real pretrained llama2.c model, see its README): in
 * `<repo>/../shared/models/stories260K/`, never inside the repository. The reference outputs
 * (prompt ids and greedy text) are read from that README, so the tests assert what it states.
 *
 * Files missing: the suites that need them skip with a loud warning, or fail when `CI` is set
 * (the same rule as the browser suites and a missing Chromium).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `<repo>/../shared/models/stories260K`, resolved from this file (tests/helpers/ inside the repo). */
export const STORIES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/models/stories260K');

/** The two data files and their SHA-256 from the README (checked on read, so a wrong copy fails loudly). */
const FILES = {
  checkpoint: { name: 'stories260K.bin', sha256: 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696' },
  tokenizer: { name: 'tok512.bin', sha256: '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312' },
} as const;

/** Absolute path of one of the data files. */
export function storiesPath(file: keyof typeof FILES | 'readme'): string {
  return join(STORIES_DIR, file === 'readme' ? 'README.md' : FILES[file].name);
}

/**
 * Whether the suite `suite` can run. Files present: true. Missing: a loud warning and false (the
 * suite skips) — except under CI (`process.env.CI` set), where it throws.
 */
export function storiesAvailable(suite: string): boolean {
  const missing = (['checkpoint', 'tokenizer', 'readme'] as const).map(storiesPath).filter((p) => !existsSync(p));
  if (missing.length === 0) return true;
  const message = `${suite}: stories260K data missing (${missing.join(', ')}); it lives in <repo>/../shared/models/stories260K/.`;
  if (process.env.CI) throw new Error(`${message} CI is set, so the suite fails instead of skipping.`);
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! SKIPPING stories260K TESTS — ${message}\n${bar}\n`);
  return false;
}

/** Reads a data file as a fresh Uint8Array, after checking its SHA-256 against the README's. */
export function readStories(file: keyof typeof FILES): Uint8Array {
  const bytes = new Uint8Array(readFileSync(storiesPath(file)));
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== FILES[file].sha256) throw new Error(`readStories: ${FILES[file].name} has SHA-256 ${digest}, but the README pins ${FILES[file].sha256}.`);
  return bytes;
}

/** The README's reference: the prompt, its ids, the greedy text and how many tokens it spans. */
export interface StoriesReference {
  prompt: string;
  promptIds: number[];
  greedyText: string;
  /**
   * run.c's `steps`: forwards, one per position, prompt included; the text is the tokens after
   * BOS, `steps` of them, so `steps + 1 − promptIds.length` are generated.
   */
  steps: number;
}

/** Parses the "Reference outputs" section of the README (so the tests assert its exact words). */
export function storiesReference(): StoriesReference {
  const readme = readFileSync(storiesPath('readme'), 'utf8');
  const prompt = /Prompt `([^`]+)` encodes to `\[([\d, ]+)\]`/.exec(readme);
  const steps = /(\d+) steps\s+in total counting the prompt/.exec(readme);
  const block = /\n\n((?: {4}.*\n)+)/.exec(readme.slice(readme.indexOf('Greedy continuation')));
  if (!prompt || !steps || !block) throw new Error(`storiesReference: ${storiesPath('readme')} has no reference section in the expected form.`);
  const greedyText = block[1]!
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.slice(4))
    .join('\n');
  return { prompt: prompt[1]!, promptIds: prompt[2]!.split(',').map((s) => Number(s.trim())), greedyText, steps: Number(steps[1]) };
}

// ---------------------------------------------------------------------------------------------
// Writing checkpoints in other layouts, for the loader tests: a safetensors writer (F32, F16,
// BF16 with round-to-nearest-even) and stories260K in Hugging Face `LlamaForCausalLM` layout.
// ---------------------------------------------------------------------------------------------

/** float32 bits of `value`. */
function float32Bits(value: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, value);
  return view.getUint32(0);
}

/** IEEE binary16 bits of the float32 `value`, rounded to nearest, ties to even. */
export function floatToHalf(value: number): number {
  const x = float32Bits(value);
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  const round = (bits: number, shift: number) => {
    const rest = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return rest > half || (rest === half && bits & 1) ? bits + 1 : bits; // a carry moves into the exponent, as it should
  };
  if (e > 0) return sign | round((e << 10) | (mant >> 13), 13);
  if (e < -10) return sign; // below half the smallest subnormal
  mant |= 0x800000;
  return sign | round(mant >> (14 - e), 14 - e);
}

/** The float32 value of binary16 bits (written independently of the library's converter). */
export function halfToFloat(h: number): number {
  const magnitude = (h & 0x7c00) === 0 ? (h & 0x3ff) / 2 ** 24 : (h & 0x7c00) === 0x7c00 ? (h & 0x3ff ? NaN : Infinity) : (1024 + (h & 0x3ff)) * 2 ** (((h >> 10) & 0x1f) - 25);
  return h & 0x8000 ? -magnitude : magnitude;
}

/** bfloat16 bits of the float32 `value`, rounded to nearest, ties to even (NaN stays NaN). */
export function floatToBfloat16(value: number): number {
  const x = float32Bits(value);
  if (Number.isNaN(value)) return (x >>> 16) | 0x40;
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/** The float32 value of bfloat16 bits. */
export function bfloat16ToFloat(b: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, b << 16);
  return view.getFloat32(0);
}

/** One tensor to write. */
export interface TensorToWrite {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  data: ArrayLike<number>;
}

/** A safetensors file of `tensors` (in order, contiguous), with `metadata`. */
export function writeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const size = { F32: 4, F16: 2, BF16: 2 } as const;
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length * size[t.dtype]] };
    offset += t.data.length * size[t.dtype];
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = json.length + ((8 - (json.length % 8)) % 8); // the writers pad the header with spaces to 8 bytes
  const bytes = new Uint8Array(8 + padded + offset);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, padded, true);
  bytes.set(json, 8);
  bytes.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const t of tensors) {
    for (let i = 0; i < t.data.length; i++, at += size[t.dtype]) {
      if (t.dtype === 'F32') view.setFloat32(at, t.data[i]!, true);
      else view.setUint16(at, t.dtype === 'F16' ? floatToHalf(t.data[i]!) : floatToBfloat16(t.data[i]!), true);
    }
  }
  return bytes;
}

/** Canonical weights and the config fields the HF layout needs (what `parseLlama2c` returns). */
export interface CanonicalCheckpoint {
  config: { vocabSize?: number; maxLength?: number; hiddenSize?: number; numLayers?: number; numAttentionHeads?: number; numKeyValueHeads?: number; intermediateSize?: number; normEpsilon?: number; ropeTheta?: number; tiedEmbeddings?: boolean };
  weights: Map<string, { shape: number[]; data: Float32Array }>;
}

/** `[in, out]` → `[out, in]` (Hugging Face's `nn.Linear` layout). */
function toOutIn(t: { shape: number[]; data: Float32Array }): { shape: number[]; data: Float32Array } {
  const [inp, out] = t.shape as [number, number];
  const data = new Float32Array(t.data.length);
  for (let i = 0; i < inp; i++) for (let o = 0; o < out; o++) data[o * inp + i] = t.data[i * out + o]!;
  return { shape: [out, inp], data };
}

/**
 * transformers' `convert_llama_weights_to_hf.py` `permute`: within each head, output row
 * (2i + half) of Meta's interleaved layout moves to row (half · hs/2 + i), so that Hugging
 * Face's `rotate_half` pairs (i, i + hs/2) are Meta's pairs (2i, 2i + 1). `w` is `[out, in]`.
 */
function permuteForHf(w: { shape: number[]; data: Float32Array }, heads: number): { shape: number[]; data: Float32Array } {
  const [out, inp] = w.shape as [number, number];
  const hs = out / heads;
  const data = new Float32Array(w.data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hs / 2; i++) {
      for (const half of [0, 1]) {
        const from = h * hs + 2 * i + half;
        const to = h * hs + half * (hs / 2) + i;
        data.set(w.data.subarray(from * inp, (from + 1) * inp), to * inp);
      }
    }
  }
  return { shape: [out, inp], data };
}

/**
 * A llama2.c checkpoint in Hugging Face layout: `config.json` fields and the
 * `LlamaForCausalLM` tensors (`[out, in]`, q/k rows permuted), ready for `writeSafetensors`.
 */
export function toHfLayout(checkpoint: CanonicalCheckpoint, dtype: TensorToWrite['dtype']): { config: Record<string, unknown>; tensors: TensorToWrite[] } {
  const c = checkpoint.config;
  const w = (name: string) => {
    const t = checkpoint.weights.get(name);
    if (t === undefined) throw new Error(`toHfLayout: no weight ${name}`);
    return t;
  };
  const tensors: TensorToWrite[] = [];
  const add = (name: string, t: { shape: number[]; data: Float32Array }) => tensors.push({ name, dtype, shape: t.shape, data: t.data });
  add('model.embed_tokens.weight', w('tok_embeddings.weight'));
  for (let l = 0; l < c.numLayers!; l++) {
    const [hf, ours] = [`model.layers.${l}.`, `layers.${l}.`];
    add(`${hf}input_layernorm.weight`, w(`${ours}attention_norm.weight`));
    add(`${hf}self_attn.q_proj.weight`, permuteForHf(toOutIn(w(`${ours}attention.wq.weight`)), c.numAttentionHeads!));
    add(`${hf}self_attn.k_proj.weight`, permuteForHf(toOutIn(w(`${ours}attention.wk.weight`)), c.numKeyValueHeads!));
    add(`${hf}self_attn.v_proj.weight`, toOutIn(w(`${ours}attention.wv.weight`)));
    add(`${hf}self_attn.o_proj.weight`, toOutIn(w(`${ours}attention.wo.weight`)));
    add(`${hf}post_attention_layernorm.weight`, w(`${ours}ffn_norm.weight`));
    add(`${hf}mlp.gate_proj.weight`, toOutIn(w(`${ours}feed_forward.w1.weight`)));
    add(`${hf}mlp.up_proj.weight`, toOutIn(w(`${ours}feed_forward.w3.weight`)));
    add(`${hf}mlp.down_proj.weight`, toOutIn(w(`${ours}feed_forward.w2.weight`)));
  }
  add('model.norm.weight', w('norm.weight'));
  if (!c.tiedEmbeddings) add('lm_head.weight', toOutIn(w('output.weight')));
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_act: 'silu',
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxLength,
    rms_norm_eps: c.normEpsilon,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tiedEmbeddings,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
  };
  return { config, tensors };
}

/**
 * A sharded checkpoint of `tensors` as `save_pretrained` writes one: `count` safetensors files
 * `model-0000i-of-0000n.safetensors` (consecutive tensors, about equal counts) and the
 * `model.safetensors.index.json` object whose `weight_map` names each tensor's file.
 */
export function writeShards(tensors: TensorToWrite[], count: number): { index: { metadata: { total_size: number }; weight_map: Record<string, string> }; shards: Record<string, Uint8Array> } {
  const size = { F32: 4, F16: 2, BF16: 2 } as const;
  const name = (i: number) => `model-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
  const per = Math.ceil(tensors.length / count);
  const weightMap: Record<string, string> = {};
  const shards: Record<string, Uint8Array> = {};
  for (let i = 0; i < count; i++) {
    const part = tensors.slice(i * per, (i + 1) * per);
    for (const t of part) weightMap[t.name] = name(i);
    shards[name(i)] = writeSafetensors(part, { format: 'pt' });
  }
  const totalSize = tensors.reduce((sum, t) => sum + t.data.length * size[t.dtype], 0);
  return { index: { metadata: { total_size: totalSize }, weight_map: weightMap }, shards };
}
