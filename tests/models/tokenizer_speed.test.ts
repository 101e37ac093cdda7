/**
 * `Llama2cTokenizer.encode` is O(n log n) and exact: its heap-ordered merges give the ids of the
 * plain algorithm (the highest-scoring adjacent pair first, the leftmost on ties, a full rescan per
 * merge; kept below as the reference) on stories260K's tok512.bin and on hand-made vocabularies
 * full of equal scores, over story text, random bytes, unicode and whitespace runs; and 1 MB of
 * story-like text encodes in well under the bound the library promises (2 s).
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';
import { readStories, storiesAvailable, storiesReference } from '../helpers/stories.js';

const VOCAB = 512;

/** A byte string as a Latin-1 JS string (one char per byte). */
function latin1(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/** The pieces (Latin-1 strings of their bytes) and float32 scores of a tokenizer file. */
function readPieces(bytes: Uint8Array, vocabSize: number): { pieces: string[]; scores: Float32Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pieces: string[] = [];
  const scores = new Float32Array(vocabSize);
  for (let id = 0, at = 4; id < vocabSize; id++) {
    scores[id] = view.getFloat32(at, true);
    const n = view.getInt32(at + 4, true);
    pieces.push(latin1(bytes.subarray(at + 8, at + 8 + n)));
    at += 8 + n;
  }
  return { pieces, scores };
}

/**
 * The simple encoder (the library's before it used a heap): BOS, the dummy prefix, one piece per
 * UTF-8 character (byte fallback otherwise), then repeatedly merge the adjacent pair whose piece
 * scores highest (strictly above −1e10), the leftmost on ties, rescanning every pair each time.
 */
function referenceEncode(pieces: string[], scores: Float32Array, text: string): number[] {
  const ids = new Map<string, number>();
  pieces.forEach((p, id) => ids.has(p) || ids.set(p, id));
  const lookup = (bytes: ArrayLike<number>): number[] => {
    const id = ids.get(latin1(bytes));
    return id !== undefined ? [id] : Array.from(bytes, (b) => b + 3);
  };
  const tokens = [1];
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > 0) tokens.push(...lookup([0x20]));
  for (let start = 0; start < bytes.length; ) {
    let end = start + 1;
    while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80 && end - start < 4) end++;
    tokens.push(...lookup(bytes.subarray(start, end)));
    start = end;
  }
  const pairScore = (a: number, b: number) => {
    const id = ids.get(pieces[a]! + pieces[b]!);
    return id === undefined ? -Infinity : scores[id]!;
  };
  const pairs = tokens.slice(1).map((b, i) => pairScore(tokens[i]!, b));
  for (;;) {
    let best = -1;
    let bestScore = -1e10;
    for (let i = 0; i < pairs.length; i++) {
      if (pairs[i]! > bestScore) {
        bestScore = pairs[i]!;
        best = i;
      }
    }
    if (best < 0) return tokens;
    tokens.splice(best, 2, ids.get(pieces[tokens[best]!]! + pieces[tokens[best + 1]!]!)!);
    pairs.splice(best, 1);
    if (best > 0) pairs[best - 1] = pairScore(tokens[best - 1]!, tokens[best]!);
    if (best < tokens.length - 1) pairs[best] = pairScore(tokens[best]!, tokens[best + 1]!);
  }
}

/** A tokenizer file: `<unk>`, BOS, EOS, the 256 byte fallbacks, then `extra` (piece, score). */
function tokenizerFile(extra: Array<[string, number]>): Uint8Array {
  const utf8 = (s: string) => new TextEncoder().encode(s);
  const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');
  const records: Array<[Uint8Array, number]> = [
    [utf8('<unk>'), 0],
    [utf8('\n<s>\n'), 0],
    [utf8('\n</s>\n'), 0],
    ...Array.from({ length: 256 }, (_, b): [Uint8Array, number] => [utf8(`<0x${hex(b)}>`), 0]),
    ...extra.map(([piece, score]): [Uint8Array, number] => [utf8(piece), score]),
  ];
  const bytes = new Uint8Array(4 + records.reduce((n, [p]) => n + 8 + p.length, 0));
  const view = new DataView(bytes.buffer);
  view.setInt32(0, Math.max(...records.map(([p]) => p.length)), true);
  let at = 4;
  for (const [piece, score] of records) {
    view.setFloat32(at, score, true);
    view.setInt32(at + 4, piece.length, true);
    bytes.set(piece, at + 8);
    at += 8 + piece.length;
  }
  return bytes;
}

/** Story-like text of about `bytes` bytes: the README's greedy story, repeated with varied names. */
function storyText(story: string, bytes: number): string {
  const names = ['Lily', 'Tim', 'Sue', 'Max', 'Ben', 'Anna'];
  let text = '';
  for (let i = 0; text.length < bytes; i++) text += story.replaceAll('Lily', names[i % names.length]!) + '\n';
  return text.slice(0, bytes);
}

describe.skipIf(!storiesAvailable('tests/models/tokenizer_speed'))('Llama2cTokenizer.encode on tok512.bin', () => {
  let tok: Llama2cTokenizer;
  let pieces: string[];
  let scores: Float32Array;
  let story: string;
  beforeAll(() => {
    const file = readStories('tokenizer');
    tok = Llama2cTokenizer.fromBytes(file, VOCAB);
    ({ pieces, scores } = readPieces(file, VOCAB));
    const ref = storiesReference();
    story = `${ref.prompt} ${ref.greedyText}`;
  });

  it('equals the simple algorithm on story text, whitespace runs, repeated letters and unicode', () => {
    const texts = [
      story,
      storyText(story, 5_000),
      '   \n\n\t\t  x  \r\n   ',
      'a'.repeat(301),
      'aa bb aa bb aaaa bbbb '.repeat(20),
      'ééé 世界世界 😀😀 \u0000\u007f ß',
      '\ufeffOnce upon a time',
      '',
    ];
    for (const text of texts) expect(tok.encode(text), JSON.stringify(text.slice(0, 40))).toEqual(referenceEncode(pieces, scores, text));
  });

  it('equals the simple algorithm on random strings: any code point, random bytes, a story alphabet', () => {
    const storyAlphabet = fc.constantFrom(...'aeiou tnshrdlmy.,!?\n  Lily Tim'.split(''));
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.uint8Array({ maxLength: 80 }).map((bytes) => new TextDecoder().decode(bytes)), // random bytes, invalid UTF-8 as U+FFFD
      fc.uint8Array({ maxLength: 80 }).map((bytes) => latin1(bytes)),
      fc.array(storyAlphabet, { maxLength: 200 }).map((chars) => chars.join('')),
    );
    fc.assert(
      fc.property(text, (s) => {
        expect(tok.encode(s)).toEqual(referenceEncode(pieces, scores, s));
      }),
      { numRuns: 400, seed: 5 },
    );
  });

  it('encodes 1 MB of story-like text in under 2 s (linearithmic, not quadratic)', () => {
    const timings: string[] = [];
    let ms = 0;
    for (const bytes of [10_000, 100_000, 1_000_000]) {
      const text = storyText(story, bytes);
      const start = performance.now();
      const ids = tok.encode(text);
      ms = performance.now() - start;
      timings.push(`${bytes / 1000} KB: ${ms.toFixed(0)} ms (${ids.length} ids)`);
      if (bytes === 10_000) expect(ids).toEqual(referenceEncode(pieces, scores, text));
    }
    console.log(`Llama2cTokenizer.encode: ${timings.join(', ')}`);
    expect(ms).toBeLessThan(2000);
  });
});

describe('Llama2cTokenizer.encode on vocabularies full of equal scores', () => {
  it('equals the simple algorithm: ties go to the leftmost pair, stale pairs never merge', () => {
    const alphabet = ['a', 'b', ' ', 'c'];
    const vocab = fc.uniqueArray(
      fc.tuple(fc.array(fc.constantFrom(...alphabet), { minLength: 2, maxLength: 5 }).map((cs) => cs.join('')), fc.constantFrom(-1, -2, -3, -2e10)),
      { minLength: 1, maxLength: 30, selector: ([piece]) => piece },
    );
    fc.assert(
      fc.property(vocab, fc.array(fc.constantFrom(...alphabet), { maxLength: 60 }), (extra, chars) => {
        const entries: Array<[string, number]> = [...alphabet.map((c): [string, number] => [c, 0]), ...extra.filter(([p]) => !alphabet.includes(p))];
        const file = tokenizerFile(entries);
        const tok = Llama2cTokenizer.fromBytes(file, 259 + entries.length);
        const { pieces, scores } = readPieces(file, 259 + entries.length);
        const text = chars.join('');
        expect(tok.encode(text)).toEqual(referenceEncode(pieces, scores, text));
      }),
      { numRuns: 500, seed: 9 },
    );
  });
});
