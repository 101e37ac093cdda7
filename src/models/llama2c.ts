/**
 * llama2.c checkpoints: a `.bin` file (the legacy version-0 export) is read into a transformer
 * config and its canonical weights, from which `loadLlama2c` builds the model (and the
 * tokenizer). The reader is a straight list of slices in file order, like
 * run.c's `memory_map_weights`, so the code documents the format.
 *
 * Format (little-endian): 7 int32 — dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size
 * (negative: the classifier is stored separately), seq_len — then float32 arrays, every matrix
 * `[out][in]` (y = W·x): token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3,
 * rms_final, the legacy RoPE tables (skipped), and the classifier when vocab_size < 0.
 *
 * Reference: karpathy/llama2.c (MIT), run.c `read_checkpoint`/`memory_map_weights`, export.py
 * `legacy_export`.
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { SIZE_LIMITS, checkInteger, fail } from '../internal/errors.js';
import { type TransformerConfig, resolveTransformerConfig } from './config.js';
import { transformerFromWeights, type CheckpointWeights } from './from_weights.js';
import { setModelStopTokens } from '../internal/stop_tokens.js';
import { buildWithHeads, DRAFT_HEAD_OPTION_KEYS, type DraftHeadOptions, planHeads, readHeadOptions } from './head_options.js';
import { Llama2cTokenizer } from './llama2c_tokenizer.js';
import { type BytesSource, readBytes } from './read_bytes.js';
import { checkpointWeightSpecs, type WeightPart } from './weights.js';

/** The seven header fields, in file order, as llama2.c names them. */
const HEADER_FIELDS = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const;
const HEADER_BYTES = 4 * HEADER_FIELDS.length;

/** First int32 of a version ≥ 1 export (the ASCII magic "ak42"), which this reader does not take. */
const VERSIONED_MAGIC = 0x616b3432;

/**
 * The ids that end a text: BOS (1), which run.c stops at (the training data delimits stories
 * with it), and EOS (2).
 */
const LLAMA2C_STOP_TOKENS: readonly number[] = Object.freeze([1, 2]);

/** What llama2.c fixes rather than stores: run.c's RMSNorm epsilon and RoPE base. */
const LLAMA2C_NORM_EPSILON = 1e-5;
const LLAMA2C_ROPE_THETA = 10000;

/** The header, checked. */
export interface Llama2cHeader {
  /** Width D of the residual stream. */
  dim: number;
  /** Width F of the SwiGLU MLP. */
  hiddenDim: number;
  /** Transformer blocks. */
  nLayers: number;
  /** Query heads per block. */
  nHeads: number;
  /** Key/value heads per block (divides `nHeads`). */
  nKvHeads: number;
  /** Vocabulary size V (the absolute value of the stored field). */
  vocabSize: number;
  /** Context limit (positions). */
  seqLen: number;
  /** Whether the classifier is the token embedding (stored vocab_size > 0). */
  sharedClassifier: boolean;
}

/** A parsed checkpoint: the architecture and the weights by canonical name (matrices `[in, out]`). */
export interface ParsedLlama2c {
  /** The header as stored (checked). */
  header: Llama2cHeader;
  /** The Llama-family `TransformerConfig` of the checkpoint (without `mtpHeads`). */
  config: TransformerConfig;
  /** Every trunk weight by its canonical name. */
  weights: CheckpointWeights;
}

/** Reads and checks the header; `where` starts every error (e.g. `loadLlama2c: checkpoint`). */
function readHeader(view: DataView, where: string): Llama2cHeader {
  if (view.byteLength < HEADER_BYTES) {
    throw new Error(`${where}: file is truncated: it must hold the ${HEADER_BYTES}-byte header, but has ${view.byteLength} bytes.`);
  }
  const raw = HEADER_FIELDS.map((_, i) => view.getInt32(4 * i, true));
  if (raw[0] === VERSIONED_MAGIC) {
    throw new Error(`${where}: header must be the legacy version-0 layout (seven int32, no magic; llama2.c export.py --version 0), but got the magic "ak42" of a versioned export.`);
  }
  const field = (i: number, max: number, min = 1) => checkInteger(where, `header.${HEADER_FIELDS[i]}`, raw[i], min, max);
  const dim = field(0, SIZE_LIMITS.hiddenSize);
  const hiddenDim = field(1, SIZE_LIMITS.hiddenSize);
  const nLayers = field(2, SIZE_LIMITS.numLayers);
  const nHeads = field(3, SIZE_LIMITS.attentionHeads);
  const nKvHeads = field(4, nHeads);
  const vocab = raw[5]!;
  if (vocab === 0 || Math.abs(vocab) > SIZE_LIMITS.vocabSize) {
    fail(RangeError, where, 'header.vocab_size', `must be a non-zero integer in [-${SIZE_LIMITS.vocabSize}, ${SIZE_LIMITS.vocabSize}]`, vocab);
  }
  const seqLen = field(6, SIZE_LIMITS.maxLength);
  if (dim % nHeads !== 0 || (dim / nHeads) % 2 !== 0) {
    fail(RangeError, where, 'header.dim', `must be n_heads (${nHeads}) × an even head size`, dim);
  }
  if (nHeads % nKvHeads !== 0) fail(RangeError, where, 'header.n_kv_heads', `must divide n_heads (${nHeads})`, nKvHeads);
  const vocabSize = Math.abs(vocab);
  for (const [name, elements] of [['token_embedding', vocabSize * dim], ['wq', dim * dim], ['w1', hiddenDim * dim]] as const) {
    if (elements > SIZE_LIMITS.matrixElements) fail(RangeError, where, `${name}`, `must have at most ${SIZE_LIMITS.matrixElements} elements`, elements);
  }
  return { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, sharedClassifier: vocab > 0 };
}

/** The roles a llama2.c file holds (no learned positions). */
type Llama2cPart = Exclude<WeightPart, 'positions'>;

/** The file's field (run.c's name) of each canonical role: the whole mapping from this format's names. */
const LLAMA2C_FIELDS: Readonly<Record<Llama2cPart, string>> = {
  embedding: 'token_embedding',
  attentionNorm: 'rms_att',
  wq: 'wq',
  wk: 'wk',
  wv: 'wv',
  wo: 'wo',
  ffnNorm: 'rms_ffn',
  w1: 'w1',
  w2: 'w2',
  w3: 'w3',
  norm: 'rms_final',
  output: 'wcls',
};

/** The float32 arrays of the file, in file order: [name, element count]. */
function fileLayout(h: Llama2cHeader): Array<[string, number]> {
  const { dim, hiddenDim: hidden, nLayers: L, vocabSize: V, seqLen } = h;
  const headSize = dim / h.nHeads;
  const kvDim = headSize * h.nKvHeads;
  const layout: Array<[string, number]> = [
    ['token_embedding', V * dim],
    ['rms_att', L * dim],
    ['wq', L * dim * dim],
    ['wk', L * kvDim * dim],
    ['wv', L * kvDim * dim],
    ['wo', L * dim * dim],
    ['rms_ffn', L * dim],
    ['w1', L * hidden * dim],
    ['w2', L * dim * hidden],
    ['w3', L * hidden * dim],
    ['rms_final', dim],
    ['freq_cis', seqLen * headSize], // legacy RoPE tables (cos and sin, seq_len × head_size/2 each): skipped
  ];
  if (!h.sharedClassifier) layout.push(['wcls', V * dim]);
  return layout;
}

/** `Float32Array` view of the file's floats, copying only when `bytes` is not 4-byte aligned. */
function floatsOf(bytes: Uint8Array): Float32Array {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Float32Array(aligned.buffer, aligned.byteOffset + HEADER_BYTES, (aligned.byteLength - HEADER_BYTES) / 4);
}

/** Throws naming the field and element of the first NaN or infinite value. */
function checkFinite(where: string, name: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) fail(Error, where, `${name}[${i}]`, 'must be a finite float32', data[i]);
  }
}

/** Matrix `l` of a `[layers][out][in]` block, transposed to `[in, out]` (y = x·W). */
function transposed(block: Float32Array, l: number, out: number, inp: number): { shape: number[]; data: Float32Array } {
  const src = block.subarray(l * out * inp, (l + 1) * out * inp);
  const data = new Float32Array(out * inp);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) data[i * out + o] = src[o * inp + i]!;
  return { shape: [inp, out], data };
}

/** Entry `l` of a `[layers][...shape]` block (copied). */
function row(block: Float32Array, l: number, shape: number[]): { shape: number[]; data: Float32Array } {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: block.slice(l * n, (l + 1) * n) };
}

/**
 * Parses a llama2.c `.bin` (version 0). Checks the header, the file size against the shapes and
 * every weight for NaN/Infinity before allocating any weight; errors start with `where`.
 * @param bytes The whole file.
 * @param where Prefix of error messages naming the caller and the file, e.g. `loadLlama2c: checkpoint`.
 */
export function parseLlama2c(bytes: Uint8Array, where = 'parseLlama2c: checkpoint'): ParsedLlama2c {
  const h = readHeader(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), where);
  const layout = fileLayout(h);
  const expected = HEADER_BYTES + 4 * layout.reduce((sum, [, n]) => sum + n, 0);
  if (bytes.byteLength !== expected) {
    let end = HEADER_BYTES;
    const cut = layout.find(([, n]) => (end += 4 * n) > bytes.byteLength);
    const detail = cut ? `field ${cut[0]} ends at byte ${end}` : `${bytes.byteLength - expected} bytes follow the last field`;
    throw new Error(
      `${where}: file ${cut ? 'is truncated' : 'is too long'}: its size must match the header's shapes (${expected} bytes), but got ${bytes.byteLength} bytes (${detail}).`,
    );
  }

  // one slice per array, in file order (run.c: ptr += n)
  const floats = floatsOf(bytes);
  const s: Record<string, Float32Array> = {};
  let ptr = 0;
  for (const [name, n] of layout) {
    s[name] = floats.subarray(ptr, (ptr += n));
    if (name !== 'freq_cis') checkFinite(where, name, s[name]!);
  }

  // every canonical weight from its field: layer l's slice, matrices transposed to [in, out]
  const config = llama2cConfig(h);
  const weights: CheckpointWeights = new Map();
  for (const spec of checkpointWeightSpecs(resolveTransformerConfig(config, where))) {
    const field = s[LLAMA2C_FIELDS[spec.part as Llama2cPart]]!;
    const [rows, cols] = spec.shape as [number, number];
    const matrix = spec.shape.length === 2 && spec.part !== 'embedding'; // stored [out][in]
    weights.set(spec.name, matrix ? transposed(field, spec.layer ?? 0, cols, rows) : row(field, spec.layer ?? 0, spec.shape));
  }
  return { header: h, config, weights };
}

/** The Llama-family transformer config of a llama2.c header. */
function llama2cConfig(h: Llama2cHeader): TransformerConfig {
  return {
    vocabSize: h.vocabSize,
    maxLength: h.seqLen,
    hiddenSize: h.dim,
    numLayers: h.nLayers,
    numAttentionHeads: h.nHeads,
    numKeyValueHeads: h.nKvHeads,
    intermediateSize: h.hiddenDim,
    norm: 'rmsNorm',
    normEpsilon: LLAMA2C_NORM_EPSILON,
    positions: 'rotary',
    ropeTheta: LLAMA2C_ROPE_THETA,
    ropeLayout: 'interleaved',
    mlp: 'swiglu',
    useBias: false,
    tiedEmbeddings: h.sharedClassifier,
  };
}

/** Options of {@link loadLlama2c}: the tokenizer, and the draft heads (k, kind, sizes, draft vocabulary, a trained heads file). */
export interface LoadLlama2cOptions extends DraftHeadOptions {
  /** The `tok512.bin`-format tokenizer: its bytes or a URL. Omitted: no tokenizer is returned. */
  tokenizer?: BytesSource;
}

const OPTION_KEYS = ['tokenizer', ...DRAFT_HEAD_OPTION_KEYS] as const;

/** What {@link loadLlama2c} resolves to. @inline */
export interface Llama2cModel {
  /** The transformer with a `MultiTokenHead` of k offsets (offset 0 = the checkpoint's classifier). */
  model: LayersModel;
  /** The tokenizer, when `options.tokenizer` was given. */
  tokenizer?: Llama2cTokenizer;
  /**
   * The token ids that end a text: BOS (1), where run.c stops (llama2.c's stories are delimited
   * by it), and EOS (2). Recorded on `model` too, so `new CachedTransformer(model).stopTokens`
   * has them and the decoders stop there unless given `stopTokens`.
   */
  stopTokens: number[];
}

/**
 * Loads a llama2.c checkpoint (`.bin`, version 0: e.g. the `tinyllamas` models) as a transformer
 * with k multi-token heads, and optionally its tokenizer. Offset 0 is exactly the checkpoint's
 * next-token classifier; offsets 1…k−1 start as the identity (train them to draft).
 *
 * Every file is checked (header, sizes, NaN) before any tensor is allocated; errors name the
 * file and the field.
 *
 * @example
 * ```ts
 * const { model, tokenizer } = await loadLlama2c('/models/stories260K.bin', { tokenizer: '/models/tok512.bin' });
 * const prompt = tokenizer!.encode('Once upon a time'); // BOS first
 * const result = await greedyDecode(new CachedTransformer(model), prompt, { maxNewTokens: 60 });
 * console.log(tokenizer!.decode([...prompt, ...result.tokens]));
 * ```
 * @param checkpoint The `.bin` file: `ArrayBuffer`, `Uint8Array` or a URL to fetch.
 * @param options The tokenizer and the draft heads.
 */
export async function loadLlama2c(checkpoint: BytesSource, options: LoadLlama2cOptions = {}): Promise<Llama2cModel> {
  const fn = 'loadLlama2c';
  if (options === null || typeof options !== 'object') fail(TypeError, fn, 'options', 'must be an object', options);
  const unknown = Object.keys(options).find((key) => !(OPTION_KEYS as readonly string[]).includes(key));
  if (unknown !== undefined) fail(TypeError, fn, 'options', `may only have the keys ${OPTION_KEYS.join(', ')}`, unknown);
  const request = await readHeadOptions(fn, options); // checked, and the heads file read, before the checkpoint
  const [checkpointFile, tokenizerFile] = await Promise.all([
    readBytes(checkpoint, fn, 'checkpoint'),
    options.tokenizer === undefined ? undefined : readBytes(options.tokenizer, fn, 'options.tokenizer'),
  ]);
  const parsed = parseLlama2c(checkpointFile.bytes, checkpointFile.where);
  const { vocabSize, dim: hiddenSize, sharedClassifier: tiedEmbeddings } = parsed.header;
  const plan = planHeads(request, { vocabSize, hiddenSize, tiedEmbeddings });
  const tokenizer = tokenizerFile && Llama2cTokenizer.fromBytes(tokenizerFile.bytes, vocabSize, tokenizerFile.where);
  const model = await buildWithHeads(plan, (head) => transformerFromWeights({ ...parsed.config, ...head, name: 'llama2c' }, parsed.weights, checkpointFile.where));
  setModelStopTokens(model, LLAMA2C_STOP_TOKENS);
  const stopTokens = [...LLAMA2C_STOP_TOKENS];
  return tokenizer ? { model, tokenizer, stopTokens } : { model, stopTokens };
}
