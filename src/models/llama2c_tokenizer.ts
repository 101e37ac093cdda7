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
import { SIZE_LIMITS, fail } from '../internal/errors.js';
import { isIdList, type Tokenizer, type TokenizerDecodeOptions, type TokenizerEncodeOptions } from './tokenizer_interface.js';

/** Id of the beginning-of-sequence token. */
const BOS = 1;
/** Id of the end-of-sequence token. */
const EOS = 2;
/** Id of the byte fallback of byte 0 (`<0x00>`): byte b is token b + 3. */
const BYTE_OFFSET = 3;
/** run.c's floor of a merge's score: only pairs scoring above it merge. */
const NO_MERGE_SCORE = -1e10;
/** Most pair ids memoised per tokenizer (bounds the memo to a few MB; the pairs of real text repeat far below it). */
const PAIR_MEMO_SIZE = 1 << 16;
/** A byte-fallback piece, `<0xNN>`. */
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** Options of {@link Llama2cTokenizer.encode}. @inline */
export interface Llama2cEncodeOptions extends TokenizerEncodeOptions {
  /** Prepend BOS (id 1), as llama2.c does for a prompt. Default: `addSpecialTokens` (true). */
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

/** llama2.c's tokenizer (see the module header for the exact rules); a {@link Tokenizer}. */
export class Llama2cTokenizer implements Tokenizer {
  /** Number of tokens V. */
  readonly vocabSize: number;
  /** Longest piece in bytes, as stored in the file. */
  readonly maxTokenLength: number;
  /** Beginning-of-sequence id. */
  readonly bosId: number = BOS;
  /** End-of-sequence id. */
  readonly eosId: number = EOS;
  /** BOS and EOS: what `decode` renders as nothing unless `skipSpecialTokens: false`. */
  readonly specialIds: readonly number[] = Object.freeze([BOS, EOS]);
  private readonly pieces: Uint8Array[];
  private readonly keys: string[];
  private readonly scores: Float32Array;
  private readonly ids = new Map<string, number>();
  /** Id of the one-byte piece of each byte value, or -1 when it is not a piece (a fast path of `lookup`). */
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** First and last byte of each piece (-1 for an empty one). */
  private readonly firstByte: Int32Array;
  private readonly lastByte: Int32Array;
  /**
   * `joinable[a · 256 + b]`: whether some piece holds byte a directly followed by byte b. A merge
   * across the place where a token ending in a meets one starting with b makes such a piece.
   */
  private readonly joinable = new Uint8Array(256 * 256);
  /** Memo of {@link Llama2cTokenizer.pairId} by `a · vocabSize + b`. */
  private readonly pairIds = new Map<number, number>();

  private constructor(pieces: Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    this.pieces = pieces;
    this.scores = scores;
    this.vocabSize = pieces.length;
    this.maxTokenLength = maxTokenLength;
    this.keys = pieces.map(latin1);
    // the first id of a repeated piece wins
    this.keys.forEach((key, id) => this.ids.has(key) || this.ids.set(key, id));
    for (let b = 0; b < 256; b++) this.byteIds[b] = this.ids.get(String.fromCharCode(b)) ?? -1;
    this.firstByte = Int32Array.from(this.keys, (key) => (key.length > 0 ? key.charCodeAt(0) : -1));
    this.lastByte = Int32Array.from(this.keys, (key) => (key.length > 0 ? key.charCodeAt(key.length - 1) : -1));
    for (const key of this.keys) for (let i = 0; i + 1 < key.length; i++) this.joinable[key.charCodeAt(i) * 256 + key.charCodeAt(i + 1)] = 1;
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
    if (vocabSize > SIZE_LIMITS.vocabSize) fail(RangeError, where, 'vocabSize', `must be at most SIZE_LIMITS.vocabSize = ${SIZE_LIMITS.vocabSize}`, vocabSize);
    if (data.byteLength < 4) throw new Error(`${where}: file is truncated: it must hold the 4-byte max_token_length, but has ${data.byteLength} bytes.`);
    // every record takes at least 8 bytes (float32 score, int32 length): bound vocabSize by the file before allocating
    if (4 + 8 * vocabSize > data.byteLength) {
      throw new RangeError(`${where}: file is truncated: vocabSize ${vocabSize} tokens need at least ${4 + 8 * vocabSize} bytes (a score and a length each), but the file has ${data.byteLength} bytes.`);
    }
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
   * @param options Whether to add BOS (default: `addSpecialTokens`, true) and EOS (default false).
   */
  encode(text: string, options: Llama2cEncodeOptions = {}): number[] {
    if (typeof text !== 'string') fail(TypeError, 'Llama2cTokenizer.encode', 'text', 'must be a string', text);
    const tokens: number[] = [];
    if (options.bos ?? options.addSpecialTokens ?? true) tokens.push(BOS);
    const bytes = new TextEncoder().encode(text);
    if (bytes.length > 0) tokens.push(...this.lookup([0x20])); // the dummy prefix " "
    // one token per UTF-8 character: a lead byte and its continuation bytes (at most 4 bytes)
    for (let start = 0; start < bytes.length; ) {
      let end = start + 1;
      while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80 && end - start < 4) end++;
      const single = end - start === 1 ? this.byteIds[bytes[start]!]! : -1;
      if (single >= 0) tokens.push(single);
      else tokens.push(...this.lookup(bytes.subarray(start, end)));
      start = end;
    }
    this.merge(tokens);
    if (options.eos ?? false) tokens.push(EOS);
    return tokens;
  }

  /**
   * Decodes ids to text as run.c prints them: BOS and EOS render as nothing (their pieces as
   * stored, `"\n<s>\n"` and `"\n</s>\n"`, with `skipSpecialTokens: false`), the piece after
   * BOS loses a leading space, `<0xNN>` becomes byte NN, and the bytes are read as UTF-8
   * (an invalid sequence becomes U+FFFD). Unlike run.c's printing, no byte is filtered out.
   * @param ids Token ids in [0, vocabSize): an array or a typed array.
   * @param options Whether BOS and EOS render as nothing (default true).
   */
  decode(ids: ArrayLike<number>, options: TokenizerDecodeOptions = {}): string {
    if (!isIdList(ids)) fail(TypeError, 'Llama2cTokenizer.decode', 'ids', 'must be an array or a typed array of token ids', ids);
    const skip = options.skipSpecialTokens ?? true;
    const chunks: Uint8Array[] = [];
    Array.prototype.forEach.call(ids, (id: number, i: number) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        fail(RangeError, 'Llama2cTokenizer.decode', `ids[${i}]`, `must be an integer in [0, vocabSize = ${this.vocabSize})`, id);
      }
      if (skip && (id === BOS || id === EOS)) return;
      let piece = this.pieces[id]!;
      if (i > 0 && ids[i - 1] === BOS && piece[0] === 0x20) piece = piece.subarray(1);
      const byte = BYTE_PIECE.exec(this.keys[id]!);
      chunks.push(byte ? Uint8Array.of(parseInt(byte[1]!, 16)) : piece);
    });
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(out); // ignoreBOM: a leading U+FEFF is text, kept
  }

  /** The id of a piece, or its bytes' fallback ids when it is not in the vocabulary. */
  private lookup(bytes: ArrayLike<number>): number[] {
    const id = this.ids.get(latin1(Uint8Array.from(bytes)));
    return id !== undefined ? [id] : Array.from(bytes, (b) => b + BYTE_OFFSET);
  }

  /** Id of the piece `a + b`, or -1 when it is not in the vocabulary (memoised). */
  private pairId(a: number, b: number): number {
    const pair = a * this.vocabSize + b;
    let id = this.pairIds.get(pair);
    if (id === undefined) {
      const [left, right] = [this.keys[a]!, this.keys[b]!];
      id = left.length + right.length > this.maxTokenLength ? -1 : (this.ids.get(left + right) ?? -1); // no piece is longer than max_token_length
      if (this.pairIds.size < PAIR_MEMO_SIZE) this.pairIds.set(pair, id);
    }
    return id;
  }

  /**
   * run.c's merge loop, in place: repeatedly replace the adjacent pair whose concatenation has
   * the highest score (the leftmost on ties) by that piece. O(n log n), as SentencePiece and
   * llama.cpp do it: the pieces form a doubly linked list, candidate pairs wait in a binary heap
   * ordered by (score desc, position asc), and a popped pair whose pieces changed since it was
   * pushed is stale and skipped. A merged pair keeps its left node, so list order is index order
   * and "leftmost" is the smallest left index. Where no piece holds the two bytes that meet
   * between two tokens (see `joinable`), no merge ever crosses: the runs between such places merge
   * independently, each with a small heap, to the same result.
   */
  private merge(tokens: number[]): void {
    const n = tokens.length;
    const next = new Int32Array(n); // next[i]: the node after i in its run, or -1
    const prev = new Int32Array(n); // prev[i]: the node before i in its run, or -1
    const version = new Uint32Array(n); // bumped whenever node i's piece changes or i is merged away
    const heap = new PairHeap();
    const push = (left: number) => {
      const right = next[left]!;
      if (right < 0) return;
      const id = this.pairId(tokens[left]!, tokens[right]!);
      if (id >= 0 && this.scores[id]! > NO_MERGE_SCORE) heap.push(this.scores[id]!, left, version[left]!, version[right]!);
    };
    const mergeRun = (start: number, end: number) => {
      for (let i = start; i < end; i++) {
        next[i] = i + 1 < end ? i + 1 : -1;
        prev[i] = i > start ? i - 1 : -1;
      }
      for (let i = start; i + 1 < end; i++) push(i);
      while (heap.size > 0) {
        const left = heap.pop();
        const right = next[left]!;
        if (right < 0 || version[left] !== heap.poppedLeftVersion || version[right] !== heap.poppedRightVersion) continue; // stale
        tokens[left] = this.pairId(tokens[left]!, tokens[right]!);
        version[left]!++;
        version[right]!++;
        next[left] = next[right]!;
        if (next[left]! >= 0) prev[next[left]!] = left;
        if (prev[left]! >= 0) push(prev[left]!);
        push(left);
      }
    };
    let start = 0;
    for (let i = 1; i <= n; i++) {
      if (i < n && this.joinable[this.lastByte[tokens[i - 1]!]! * 256 + this.firstByte[tokens[i]!]!]) continue;
      mergeRun(start, i);
      start = i;
    }
    let out = 0;
    for (let run = 0; run < n; ) {
      let i = run;
      for (; next[i]! >= 0; i = next[i]!) tokens[out++] = tokens[i]!;
      tokens[out++] = tokens[i]!;
      run = i + 1;
      while (run < n && prev[run]! >= 0) run++; // skip nodes merged away (a run starts at a node with no predecessor)
    }
    tokens.length = out;
  }
}

/**
 * A binary max-heap of candidate merges, ordered by score (highest first), then by left node
 * (lowest first): the order run.c's scan picks pairs in. Entries live in growable parallel arrays.
 */
class PairHeap {
  /** Number of entries. */
  size = 0;
  /** Versions stored with the entry the last `pop` returned. */
  poppedLeftVersion = 0;
  poppedRightVersion = 0;
  private scores = new Float64Array(16);
  private lefts = new Int32Array(16);
  private leftVersions = new Uint32Array(16);
  private rightVersions = new Uint32Array(16);

  push(score: number, left: number, leftVersion: number, rightVersion: number): void {
    if (this.size === this.scores.length) this.grow();
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(score, left, parent)) break;
      this.move(parent, i);
      i = parent;
    }
    this.set(i, score, left, leftVersion, rightVersion);
  }

  /** Removes the first entry; returns its left node (its versions in `poppedLeftVersion`/`poppedRightVersion`). */
  pop(): number {
    const left = this.lefts[0]!;
    this.poppedLeftVersion = this.leftVersions[0]!;
    this.poppedRightVersion = this.rightVersions[0]!;
    const last = --this.size; // the last entry sifts down from the root
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= last) break;
      if (child + 1 < last && this.before(this.scores[child + 1]!, this.lefts[child + 1]!, child)) child++;
      if (!this.before(this.scores[child]!, this.lefts[child]!, last)) break;
      this.move(child, i);
      i = child;
    }
    this.move(last, i);
    return left;
  }

  /** Whether an entry (score, left) comes before entry `j`. */
  private before(score: number, left: number, j: number): boolean {
    const s = this.scores[j]!;
    return score > s || (score === s && left < this.lefts[j]!);
  }

  private move(from: number, to: number): void {
    this.set(to, this.scores[from]!, this.lefts[from]!, this.leftVersions[from]!, this.rightVersions[from]!);
  }

  private set(i: number, score: number, left: number, leftVersion: number, rightVersion: number): void {
    this.scores[i] = score;
    this.lefts[i] = left;
    this.leftVersions[i] = leftVersion;
    this.rightVersions[i] = rightVersion;
  }

  private grow(): void {
    const grown = <T extends Float64Array | Int32Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(a.length * 2);
      b.set(a);
      return b;
    };
    this.scores = grown(this.scores, (n) => new Float64Array(n));
    this.lefts = grown(this.lefts, (n) => new Int32Array(n));
    this.leftVersions = grown(this.leftVersions, (n) => new Uint32Array(n));
    this.rightVersions = grown(this.rightVersions, (n) => new Uint32Array(n));
  }
}
