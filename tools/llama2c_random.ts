/**
 * llama2.c checkpoints with seeded random weights, for benchmarks and tests that need a model of
 * a real shape but not its knowledge: a version-0 `.bin` (7 int32 header, then the float32
 * arrays in run.c's order) and a `tokenizer.bin` of made-up pieces, so that both this library and
 * a native llama2.c `run` binary can load the same files.
 *
 * Weights are N(0, std²) from a seeded stream (Box–Muller over `uniformStream`), RMSNorm gains
 * are 1 and the classifier is the token embedding (vocab_size > 0): the logits are finite and
 * the model decodes, though what it says means nothing. The legacy RoPE tables hold the real
 * cos/sin values export.py writes.
 *
 * Reference: karpathy/llama2.c (MIT), run.c `checkpoint_init_weights` and the tokenizer reader in
 * `main`, export.py `legacy_export`, tokenizer.py `export`.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { uniformStream } from '../src/decoding/random.js';
import { checkInteger, fail } from '../src/internal/errors.js';
import type { Llama2cHeader } from '../src/models/llama2c.js';

/** The header of a llama2.c checkpoint, in run.c's words (`Config`); the classifier is always the shared embedding here. */
export type Llama2cShape = Omit<Llama2cHeader, 'sharedClassifier'>;

/**
 * The shapes of Karpathy's public `tinyllamas` story models: stories260K (its own 512-token
 * vocabulary, grouped-query attention, context 512) and 15M / 42M / 110M (the 32,000-token
 * Llama 2 vocabulary; context 256 for 15M, 1024 for 42M and 110M), as published.
 */
export const TINYLLAMAS_SHAPES = {
  '260K': { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 },
  '15M': { dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256 },
  '42M': { dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, vocabSize: 32000, seqLen: 1024 },
  '110M': { dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 32000, seqLen: 1024 },
} as const satisfies Record<string, Llama2cShape>;

/** Options of the checkpoint writers. */
export interface RandomWeightsOptions {
  /** Seed of the weights' stream (uint32). Default 1. */
  seed?: number;
  /** Standard deviation of every weight matrix; small enough that activations and logits stay O(1). Default 0.02 (GPT-2's init). */
  std?: number;
}

const HEADER_FIELDS = ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'seqLen'] as const;

/** Checks a shape the way llama2.c needs it; errors name `fn` and the field. */
function checkShape(fn: string, s: Llama2cShape): void {
  if (s === null || typeof s !== 'object') fail(TypeError, fn, 'shape', 'must be an object with the seven header fields', s);
  for (const key of HEADER_FIELDS) checkInteger(fn, `shape.${key}`, s[key], 1, 1 << 20);
  if (s.dim % s.nHeads !== 0 || (s.dim / s.nHeads) % 2 !== 0) fail(RangeError, fn, 'shape.dim', `must be nHeads (${s.nHeads}) × an even head size`, s.dim);
  if (s.nKvHeads > s.nHeads || s.nHeads % s.nKvHeads !== 0) fail(RangeError, fn, 'shape.nKvHeads', `must divide nHeads (${s.nHeads})`, s.nKvHeads);
}

/** What is stored of each array: random N(0, std²), ones (norm gains), or the RoPE tables. */
type Fill = 'normal' | 'ones' | 'cos' | 'sin';

/** The float32 arrays of the file in order (run.c `checkpoint_init_weights`): name, element count, fill. */
export function llama2cArrays(s: Llama2cShape): Array<[string, number, Fill]> {
  const { dim, hiddenDim: F, nLayers: L, vocabSize: V, seqLen } = s;
  const headSize = dim / s.nHeads;
  const kvDim = headSize * s.nKvHeads;
  return [
    ['token_embedding', V * dim, 'normal'],
    ['rms_att', L * dim, 'ones'],
    ['wq', L * dim * dim, 'normal'],
    ['wk', L * kvDim * dim, 'normal'],
    ['wv', L * kvDim * dim, 'normal'],
    ['wo', L * dim * dim, 'normal'],
    ['rms_ffn', L * dim, 'ones'],
    ['w1', L * F * dim, 'normal'],
    ['w2', L * dim * F, 'normal'],
    ['w3', L * F * dim, 'normal'],
    ['rms_final', dim, 'ones'],
    ['freq_cis_real', (seqLen * headSize) / 2, 'cos'],
    ['freq_cis_imag', (seqLen * headSize) / 2, 'sin'],
  ];
}

/** Size in bytes of the checkpoint of `shape`. */
export function llama2cFileBytes(shape: Llama2cShape): number {
  return 4 * HEADER_FIELDS.length + 4 * llama2cArrays(shape).reduce((a, [, n]) => a + n, 0);
}

/** The seven int32 of the header (vocab_size positive: the classifier is the embedding). */
function header(s: Llama2cShape): Uint8Array {
  return new Uint8Array(Int32Array.from(HEADER_FIELDS.map((k) => s[k])).buffer);
}

/** Standard normals from a uniform stream (Box–Muller, both values of each pair used). */
function normalStream(seed: number): () => number {
  const uniform = uniformStream(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const z = spare;
      spare = null;
      return z;
    }
    const r = Math.sqrt(-2 * Math.log(1 - uniform())); // 1 − u ∈ (0, 1]: log is finite
    const theta = 2 * Math.PI * uniform();
    spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  };
}

/** Most floats produced at once (the largest 110M array would be 75 MB). */
const CHUNK = 1 << 20;

/** Every array of the file in order, in chunks of at most {@link CHUNK} floats. */
function* chunks(s: Llama2cShape, options: RandomWeightsOptions): Generator<Float32Array> {
  const seed = options.seed ?? 1;
  const std = options.std ?? 0.02;
  const normal = normalStream(seed);
  const half = s.dim / s.nHeads / 2;
  for (const [, n, fill] of llama2cArrays(s)) {
    for (let start = 0; start < n; start += CHUNK) {
      const out = new Float32Array(Math.min(CHUNK, n - start));
      for (let i = 0; i < out.length; i++) {
        const at = start + i;
        if (fill === 'normal') out[i] = std * normal();
        else if (fill === 'ones') out[i] = 1;
        else {
          // export.py: freqs = 1 / 10000^(2i / head_size); row t holds cos/sin(t · freqs)
          const angle = Math.floor(at / half) / 10000 ** ((2 * (at % half)) / (2 * half));
          out[i] = fill === 'cos' ? Math.cos(angle) : Math.sin(angle);
        }
      }
      yield out;
    }
  }
}

/** A whole random checkpoint in memory (small shapes: tests). */
export function randomLlama2c(shape: Llama2cShape, options: RandomWeightsOptions = {}): Uint8Array {
  checkShape('randomLlama2c', shape);
  const out = new Uint8Array(llama2cFileBytes(shape));
  out.set(header(shape), 0);
  let at = 4 * HEADER_FIELDS.length;
  for (const c of chunks(shape, options)) {
    out.set(new Uint8Array(c.buffer, c.byteOffset, c.byteLength), at);
    at += c.byteLength;
  }
  return out;
}

/** Writes a random checkpoint to `path` chunk by chunk (never the whole file in memory); returns its size in bytes. */
export function writeRandomLlama2c(path: string, shape: Llama2cShape, options: RandomWeightsOptions = {}): number {
  checkShape('writeRandomLlama2c', shape);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header(shape));
    for (const c of chunks(shape, options)) writeSync(fd, new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
  } finally {
    closeSync(fd);
  }
  return llama2cFileBytes(shape);
}

/** Ids 0, 1, 2 and the 256 byte fallbacks, as Llama 2's tokenizer.bin has them. */
const CONTROL_PIECES = ['<unk>', '\n<s>\n', '\n</s>\n'];
/** Space and the printable ASCII characters, so run.c encodes an ASCII prompt without byte fallback (its dummy prefix is " "). */
const ASCII_PIECES = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));

/** Smallest vocabulary {@link madeUpTokenizer} writes: control tokens, byte fallbacks, ASCII. */
export const MIN_TOKENIZER_VOCAB = CONTROL_PIECES.length + 256 + ASCII_PIECES.length;

/**
 * A `tokenizer.bin` (run.c's format: int32 max_token_length, then per token float32 score,
 * int32 length, the bytes) of `vocabSize` pieces: `<unk>`, BOS, EOS, `<0x00>`…`<0xFF>`, space and
 * printable ASCII, then distinct made-up lowercase words (half with a leading space) scored
 * −rank like SentencePiece's merges. Returns the file's bytes.
 */
export function madeUpTokenizer(vocabSize: number, seed = 1): Uint8Array {
  checkInteger('madeUpTokenizer', 'vocabSize', vocabSize, MIN_TOKENIZER_VOCAB, 1 << 20);
  const random = uniformStream(seed);
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const pieces = [...CONTROL_PIECES, ...bytes, ...ASCII_PIECES];
  const seen = new Set(pieces);
  while (pieces.length < vocabSize) {
    const length = 2 + Math.floor(random() * 7); // 2…8 letters
    let word = random() < 0.5 ? ' ' : '';
    for (let i = 0; i < length; i++) word += String.fromCharCode(0x61 + Math.floor(random() * 26));
    if (!seen.has(word)) {
      seen.add(word);
      pieces.push(word);
    }
  }
  const encoded = pieces.map((p) => new TextEncoder().encode(p));
  const out = new Uint8Array(4 + encoded.reduce((a, p) => a + 8 + p.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, Math.max(...encoded.map((p) => p.length)), true);
  let at = 4;
  encoded.forEach((p, id) => {
    view.setFloat32(at, id < CONTROL_PIECES.length + 256 ? 0 : -(id - CONTROL_PIECES.length - 256), true);
    view.setInt32(at + 4, p.length, true);
    out.set(p, at + 8);
    at += 8 + p.length;
  });
  return out;
}
