/**
 * `Llama2cTokenizer`: the SentencePiece-style BPE tokenizer of llama2.c, read from its
 * `tokenizer.bin`/`tok512.bin` format, encoding and decoding exactly as run.c does.
 *
 * File (little-endian): int32 max_token_length, then per token: float32 score, int32 byte
 * length, the piece's bytes. Ids 0, 1, 2 are `<unk>`, BOS, EOS; ids 3…258 are the byte
 * fallbacks `<0x00>`…`<0xFF>`.
 *
 * Encoding: BOS (optional), a dummy-prefix " " when the text is non-empty, one token per UTF-8
 * character (or `<0xNN>` = byte + 3 per byte when the character is not a piece), then merge the
 * adjacent pair whose concatenation is a piece with the highest score (the leftmost on ties)
 * until no pair merges. Decoding drops the leading space of the piece after BOS and turns
 * `<0xNN>` into its byte.
 *
 * Reference: karpathy/llama2.c (MIT), run.c `build_tokenizer`, `encode`, `decode`.
 */
import { fail } from '../internal/errors.js';

/** Id of the beginning-of-sequence token. */
const BOS = 1;
/** Id of the end-of-sequence token. */
const EOS = 2;
/** Id of the byte fallback of byte 0 (`<0x00>`): byte b is token b + 3. */
const BYTE_OFFSET = 3;
/** run.c's floor of a merge's score: only pairs scoring above it merge. */
const NO_MERGE_SCORE = -1e10;
/** A byte-fallback piece, `<0xNN>`. */
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** Options of {@link Llama2cTokenizer.encode}. */
export interface Llama2cEncodeOptions {
  /** Prepend BOS (id 1), as llama2.c does for a prompt. Default true. */
  bos?: boolean;
  /** Append EOS (id 2). Default false. */
  eos?: boolean;
}

/** A byte string as a Latin-1 JS string: one char per byte, so any bytes are a Map key. */
function latin1(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** llama2.c's tokenizer (see the module header for the exact rules). */
export class Llama2cTokenizer {
  /** Number of tokens V. */
  readonly vocabSize: number;
  /** Longest piece in bytes, as stored in the file. */
  readonly maxTokenLength: number;
  /** Beginning-of-sequence id. */
  readonly bosId = BOS;
  /** End-of-sequence id. */
  readonly eosId = EOS;
  private readonly pieces: Uint8Array[];
  private readonly keys: string[];
  private readonly scores: Float32Array;
  private readonly ids = new Map<string, number>();

  private constructor(pieces: Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    this.pieces = pieces;
    this.scores = scores;
    this.vocabSize = pieces.length;
    this.maxTokenLength = maxTokenLength;
    this.keys = pieces.map(latin1);
    // the first id of a repeated piece wins
    this.keys.forEach((key, id) => this.ids.has(key) || this.ids.set(key, id));
  }

  /**
   * Reads a tokenizer file. Checks every length and score against the file size and
   * `vocabSize` before allocating; errors start with `where`.
   * @param bytes The whole file (`tok512.bin` format).
   * @param vocabSize Number of tokens (the model's; the file does not store it).
   * @param where Prefix of error messages naming the caller and the file.
   */
  static fromBytes(bytes: Uint8Array | ArrayBuffer, vocabSize: number, where = 'Llama2cTokenizer.fromBytes: bytes'): Llama2cTokenizer {
    if (!(bytes instanceof Uint8Array) && !(bytes instanceof ArrayBuffer)) fail(TypeError, where, 'file', 'must be an ArrayBuffer or a Uint8Array', bytes);
    const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (!Number.isInteger(vocabSize) || vocabSize < BYTE_OFFSET + 256) {
      fail(RangeError, where, 'vocabSize', `must be an integer ≥ ${BYTE_OFFSET + 256} (control tokens and byte fallbacks)`, vocabSize);
    }
    if (data.byteLength < 4) throw new Error(`${where}: file is truncated: it must hold the 4-byte max_token_length, but has ${data.byteLength} bytes.`);
    const maxTokenLength = view.getInt32(0, true);
    if (maxTokenLength < 1 || maxTokenLength > data.byteLength) {
      fail(RangeError, where, 'max_token_length', `must be an integer in [1, file size ${data.byteLength}]`, maxTokenLength);
    }
    // walk the records without allocating: every score finite, every length in [0, max_token_length]
    const starts = new Int32Array(vocabSize);
    let offset = 4;
    for (let id = 0; id < vocabSize; id++) {
      if (offset + 8 > data.byteLength) {
        throw new Error(`${where}: file is truncated: token ${id}'s score and length must end by byte ${offset + 8}, but the file has ${data.byteLength} bytes (vocabSize ${vocabSize}).`);
      }
      const score = view.getFloat32(offset, true);
      if (!Number.isFinite(score)) fail(Error, where, `token ${id} score`, 'must be a finite float32', score);
      const length = view.getInt32(offset + 4, true);
      if (length < 0 || length > maxTokenLength) fail(RangeError, where, `token ${id} length`, `must be an integer in [0, max_token_length ${maxTokenLength}]`, length);
      starts[id] = offset;
      offset += 8 + length;
      if (offset > data.byteLength) {
        throw new Error(`${where}: file is truncated: token ${id}'s piece must end by byte ${offset}, but the file has ${data.byteLength} bytes (vocabSize ${vocabSize}).`);
      }
    }
    if (offset !== data.byteLength) {
      throw new Error(`${where}: file is too long: vocabSize ${vocabSize} tokens must end at its last byte (${offset}), but the file has ${data.byteLength} bytes.`);
    }
    const scores = new Float32Array(vocabSize);
    const pieces = Array.from(starts, (start, id) => {
      scores[id] = view.getFloat32(start, true);
      return data.slice(start + 8, start + 8 + view.getInt32(start + 4, true));
    });
    for (let b = 0; b < 256; b++) {
      const key = latin1(pieces[BYTE_OFFSET + b]!);
      const match = BYTE_PIECE.exec(key);
      if (!match || parseInt(match[1]!, 16) !== b) {
        fail(Error, where, `token ${BYTE_OFFSET + b}`, `must be the byte fallback <0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, key);
      }
    }
    return new Llama2cTokenizer(pieces, scores, maxTokenLength);
  }

  /**
   * Encodes `text` as run.c does (dummy prefix, per-character pieces with byte fallback,
   * highest-score merges first).
   * @param text Any string (encoded as UTF-8).
   * @param options Whether to add BOS (default true) and EOS (default false).
   */
  encode(text: string, options: Llama2cEncodeOptions = {}): number[] {
    if (typeof text !== 'string') fail(TypeError, 'Llama2cTokenizer.encode', 'text', 'must be a string', text);
    const tokens: number[] = [];
    if (options.bos ?? true) tokens.push(BOS);
    const bytes = new TextEncoder().encode(text);
    if (bytes.length > 0) tokens.push(...this.lookup([0x20])); // the dummy prefix " "
    // one token per UTF-8 character: a lead byte and its continuation bytes (at most 4 bytes)
    for (let start = 0; start < bytes.length; ) {
      let end = start + 1;
      while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80 && end - start < 4) end++;
      tokens.push(...this.lookup(bytes.subarray(start, end)));
      start = end;
    }
    this.merge(tokens);
    if (options.eos ?? false) tokens.push(EOS);
    return tokens;
  }

  /**
   * Decodes ids to text as run.c prints them: BOS and EOS render as nothing, the piece after
   * BOS loses a leading space, `<0xNN>` becomes byte NN, and the bytes are read as UTF-8
   * (an invalid sequence becomes U+FFFD). Unlike run.c's printing, no byte is filtered out.
   * @param ids Token ids in [0, vocabSize).
   */
  decode(ids: readonly number[]): string {
    if (!Array.isArray(ids)) fail(TypeError, 'Llama2cTokenizer.decode', 'ids', 'must be an array of token ids', ids);
    const chunks: Uint8Array[] = [];
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        fail(RangeError, 'Llama2cTokenizer.decode', `ids[${i}]`, `must be an integer in [0, vocabSize = ${this.vocabSize})`, id);
      }
      if (id === BOS || id === EOS) return;
      let piece = this.pieces[id]!;
      if (i > 0 && ids[i - 1] === BOS && piece[0] === 0x20) piece = piece.subarray(1);
      const byte = BYTE_PIECE.exec(this.keys[id]!);
      chunks.push(byte ? Uint8Array.of(parseInt(byte[1]!, 16)) : piece);
    });
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
    return new TextDecoder().decode(out);
  }

  /** The id of a piece, or its bytes' fallback ids when it is not in the vocabulary. */
  private lookup(bytes: ArrayLike<number>): number[] {
    const id = this.ids.get(latin1(Uint8Array.from(bytes)));
    return id !== undefined ? [id] : Array.from(bytes, (b) => b + BYTE_OFFSET);
  }

  /** Score of the piece `a + b` if it is in the vocabulary, else -Infinity. */
  private pairScore(a: number, b: number): number {
    const id = this.ids.get(this.keys[a]! + this.keys[b]!);
    return id === undefined ? -Infinity : this.scores[id]!;
  }

  /**
   * run.c's merge loop, in place: repeatedly replace the adjacent pair whose concatenation has
   * the highest score (the leftmost on ties) by that piece. Pair scores are kept in an array
   * and only the merged pair's neighbours are recomputed.
   */
  private merge(tokens: number[]): void {
    const pairs = tokens.slice(1).map((b, i) => this.pairScore(tokens[i]!, b)); // pairs[i] = (tokens[i], tokens[i+1])
    for (;;) {
      let best = -1;
      let bestScore = NO_MERGE_SCORE;
      for (let i = 0; i < pairs.length; i++) {
        if (pairs[i]! > bestScore) {
          bestScore = pairs[i]!;
          best = i;
        }
      }
      if (best < 0) return;
      tokens.splice(best, 2, this.ids.get(this.keys[tokens[best]!]! + this.keys[tokens[best + 1]!]!)!);
      pairs.splice(best, 1);
      if (best > 0) pairs[best - 1] = this.pairScore(tokens[best - 1]!, tokens[best]!);
      if (best < tokens.length - 1) pairs[best] = this.pairScore(tokens[best]!, tokens[best + 1]!);
    }
  }
}
