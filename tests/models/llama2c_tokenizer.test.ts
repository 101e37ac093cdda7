/**
 * `Llama2cTokenizer` against llama2.c run.c: the README's prompt ids and text on the real
 * tok512.bin, byte fallback and multi-byte UTF-8, the dummy prefix and the BOS space rule, the
 * merge order on hand-made vocabularies, a plain transcription of run.c's merge loop on random
 * strings, and one error per bad-file case.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';
import { readStories, storiesAvailable, storiesReference, type StoriesReference } from '../helpers/stories.js';

const VOCAB = 512;

/** A tokenizer file: the three control tokens, the 256 byte fallbacks, then `extra` pieces. */
function tokenizerFile(extra: Array<[string, number]>, options: { maxTokenLength?: number } = {}): Uint8Array {
  const utf8 = (s: string) => new TextEncoder().encode(s);
  const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');
  const records: Array<[Uint8Array, number]> = [
    [utf8('<unk>'), 0],
    [utf8('\n<s>\n'), 0],
    [utf8('\n</s>\n'), 0],
    ...Array.from({ length: 256 }, (_, b): [Uint8Array, number] => [utf8(`<0x${hex(b)}>`), 0]),
    ...extra.map(([piece, score]): [Uint8Array, number] => [utf8(piece), score]),
  ];
  const maxTokenLength = options.maxTokenLength ?? Math.max(...records.map(([p]) => p.length));
  const bytes = new Uint8Array(4 + records.reduce((n, [p]) => n + 8 + p.length, 0));
  const view = new DataView(bytes.buffer);
  view.setInt32(0, maxTokenLength, true);
  let at = 4;
  for (const [piece, score] of records) {
    view.setFloat32(at, score, true);
    view.setInt32(at + 4, piece.length, true);
    bytes.set(piece, at + 8);
    at += 8 + piece.length;
  }
  return bytes;
}

/** run.c's `encode`, transcribed plainly (string pieces, a full rescan per merge): the oracle. */
function runCEncode(pieces: string[], scores: number[], text: string): number[] {
  const lookup = (s: string) => pieces.indexOf(s);
  const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);
  const tokens = [1];
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > 0) tokens.push(lookup(' '));
  let buffer: number[] = [];
  for (let c = 0; c < bytes.length; c++) {
    if ((bytes[c]! & 0xc0) !== 0x80) buffer = [];
    buffer.push(bytes[c]!);
    if (c + 1 < bytes.length && (bytes[c + 1]! & 0xc0) === 0x80 && buffer.length < 4) continue;
    const id = lookup(latin1(Uint8Array.from(buffer)));
    if (id !== -1) tokens.push(id);
    else tokens.push(...buffer.map((b) => b + 3));
    buffer = [];
  }
  for (;;) {
    let [bestScore, bestId, bestIdx] = [-1e10, -1, -1];
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup(pieces[tokens[i]!]! + pieces[tokens[i + 1]!]!);
      if (id !== -1 && scores[id]! > bestScore) [bestScore, bestId, bestIdx] = [scores[id]!, id, i];
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

/** The pieces (Latin-1 strings of their bytes) and scores of a tokenizer file, read plainly. */
function readPieces(bytes: Uint8Array, vocabSize: number): { pieces: string[]; scores: number[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pieces: string[] = [];
  const scores: number[] = [];
  for (let id = 0, at = 4; id < vocabSize; id++) {
    scores.push(view.getFloat32(at, true));
    const n = view.getInt32(at + 4, true);
    pieces.push(String.fromCharCode(...bytes.subarray(at + 8, at + 8 + n)));
    at += 8 + n;
  }
  return { pieces, scores };
}

describe.skipIf(!storiesAvailable('tests/models/llama2c_tokenizer'))('Llama2cTokenizer on tok512.bin', () => {
  let tok: Llama2cTokenizer;
  let ref: StoriesReference;
  let file: Uint8Array;
  beforeAll(() => {
    file = readStories('tokenizer');
    tok = Llama2cTokenizer.fromBytes(file, VOCAB);
    ref = storiesReference();
  });

  it('encodes the README prompt to its ids and decodes them back', () => {
    expect(tok.encode(ref.prompt, { bos: true })).toEqual(ref.promptIds);
    expect(tok.decode(ref.promptIds)).toBe(ref.prompt);
    expect(tok.vocabSize).toBe(VOCAB);
  });

  it('round-trips the README greedy text (its ids start with the prompt ids)', () => {
    const ids = tok.encode(ref.greedyText);
    expect(ids.slice(0, ref.promptIds.length)).toEqual(ref.promptIds);
    expect(tok.decode(ids)).toBe(ref.greedyText);
  });

  it('falls back to <0xNN> = byte + 3 for characters outside the vocabulary, 2/3/4-byte UTF-8 included', () => {
    const { pieces } = readPieces(file, VOCAB);
    for (const ch of ['ж', '世', '😀']) {
      const bytes = [...new TextEncoder().encode(ch)];
      expect(bytes).toHaveLength(ch === 'ж' ? 2 : ch === '世' ? 3 : 4);
      expect(pieces).not.toContain(String.fromCharCode(...bytes));
      const ids = tok.encode(ch, { bos: false });
      expect(ids).toEqual([pieces.indexOf(' '), ...bytes.map((b) => b + 3)]);
      expect(tok.decode([1, ...ids])).toBe(ch);
    }
    const mixed = 'Lily saw 世界 and 😀, then said "héllo"\n\ttwice.';
    expect(tok.decode(tok.encode(mixed))).toBe(mixed);
  });

  it('empty text: BOS only (or nothing), no dummy prefix; EOS on request', () => {
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('', { bos: false })).toEqual([]);
    expect(tok.encode('', { bos: false, eos: true })).toEqual([2]);
    expect(tok.decode([])).toBe('');
    expect(tok.decode([1, 2])).toBe('');
  });

  it('strips the leading space only of the piece after BOS', () => {
    const once = tok.encode('Once', { bos: false }); // the dummy prefix makes it " Once"
    expect(once).toHaveLength(1);
    expect(tok.decode(once)).toBe(' Once');
    expect(tok.decode([1, ...once])).toBe('Once');
    expect(tok.decode([1, ...once, ...once])).toBe('Once Once');
  });

  it('matches a plain transcription of run.c encode on random strings', () => {
    const { pieces, scores } = readPieces(file, VOCAB);
    const alphabet = fc.constantFrom(...'aeiou tnshrdl.,!?\nLOéü世😀'.split(/(?:)/u));
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 40 }), (chars) => {
        const text = chars.join('');
        expect(tok.encode(text)).toEqual(runCEncode(pieces, scores, text));
        expect(tok.decode(tok.encode(text))).toBe(text);
      }),
      { numRuns: 300, seed: 11 },
    );
  });

  it('rejects ids outside the vocabulary and non-string text', () => {
    expect(() => tok.decode([1, 512])).toThrow('Llama2cTokenizer.decode: ids[1] must be an integer in [0, vocabSize = 512), but got 512.');
    expect(() => tok.decode([0.5])).toThrow('ids[0] must be an integer');
    expect(() => tok.encode(3 as unknown as string)).toThrow('Llama2cTokenizer.encode: text must be a string, but got 3.');
  });

  describe('bad files fail fast, naming the file and field', () => {
    const where = 'loadLlama2c: options.tokenizer';
    const bad = (mutate: (bytes: Uint8Array, view: DataView) => Uint8Array | void, vocab = VOCAB) => () => {
      const bytes = file.slice();
      const out = mutate(bytes, new DataView(bytes.buffer)) ?? bytes;
      const start = performance.now();
      try {
        Llama2cTokenizer.fromBytes(out, vocab, where);
      } finally {
        expect(performance.now() - start).toBeLessThan(1000);
      }
    };
    it.each([
      ['truncated inside a piece', bad((b) => b.subarray(0, b.length - 3)), `${where}: file is truncated: token 511's piece must end by byte 6227, but the file has 6224 bytes (vocabSize 512).`],
      ['truncated in the header', bad((b) => b.subarray(0, 3)), `${where}: file is truncated: it must hold the 4-byte max_token_length, but has 3 bytes.`],
      ['too long (more tokens than vocabSize)', bad(() => undefined, 500), `${where}: file is too long: vocabSize 500 tokens must end at its last byte`],
      ['fewer tokens than vocabSize', bad(() => undefined, 600), `${where}: file is truncated: token 512's score and length must end by byte 6235`],
      ['absurd max_token_length', bad((_, v) => v.setInt32(0, 1e9, true)), `${where}: max_token_length must be an integer in [1, file size 6227], but got 1000000000.`],
      ['a piece longer than max_token_length', bad((_, v) => v.setInt32(0, 4, true)), `${where}: token 0 length must be an integer in [0, max_token_length 4], but got 5.`],
      ['a negative length', bad((_, v) => v.setInt32(8, -1, true)), `${where}: token 0 length must be an integer in [0, max_token_length 7], but got -1.`],
      ['a NaN score', bad((_, v) => v.setFloat32(4, NaN, true)), `${where}: token 0 score must be a finite float32, but got NaN.`],
      ['a vocabulary without byte fallbacks', bad(() => undefined, 100), `${where}: vocabSize must be an integer ≥ 259 (control tokens and byte fallbacks), but got 100.`],
    ])('%s', (_, run, message) => {
      expect(run).toThrow(message);
    });
    it('a file whose byte-fallback tokens are not <0x00>…<0xFF>', () => {
      const shuffled = tokenizerFile([]);
      shuffled[4 + (8 + 5) + (8 + 5) + (8 + 6) + 8 + 3] = 'F'.charCodeAt(0); // token 3 "<0x00>" → "<0xF0>"
      expect(() => Llama2cTokenizer.fromBytes(shuffled, 259, where)).toThrow(`${where}: token 3 must be the byte fallback <0x00>, but got "<0xF0>".`);
    });
    it('not bytes', () => {
      expect(() => Llama2cTokenizer.fromBytes('tok512.bin' as unknown as Uint8Array, VOCAB)).toThrow('Llama2cTokenizer.fromBytes: bytes: file must be an ArrayBuffer or a Uint8Array, but got "tok512.bin".');
    });
  });
});

describe('Llama2cTokenizer merge order (hand-made vocabularies)', () => {
  const make = (extra: Array<[string, number]>) => Llama2cTokenizer.fromBytes(tokenizerFile(extra), 259 + extra.length);
  const id = (extra: Array<[string, number]>, piece: string) => 259 + extra.findIndex(([p]) => p === piece);

  it('merges the highest-scoring pair first, whatever its position', () => {
    // " abc": (b,c) scores highest although (a,b) comes first, so " " "a" "bc", then " a" "bc"
    const extra: Array<[string, number]> = [[' ', 0], ['a', 0], ['b', 0], ['c', 0], ['ab', -5], ['bc', -1], [' a', -9]];
    const expected = [id(extra, ' a'), id(extra, 'bc')];
    expect(make(extra).encode('abc', { bos: false })).toEqual(expected);
    const { pieces, scores } = readPieces(tokenizerFile(extra), 259 + extra.length);
    expect(runCEncode(pieces, scores, 'abc').slice(1)).toEqual(expected);
  });

  it('takes the leftmost pair on equal scores', () => {
    const extra: Array<[string, number]> = [[' ', 0], ['x', 0], ['xx', -1]];
    const tok = make(extra);
    // " xxx": pairs (" ",x) absent, (x,x) twice at equal score: the left one merges first
    expect(tok.encode('xxx', { bos: false })).toEqual([id(extra, ' '), id(extra, 'xx'), id(extra, 'x')]);
  });

  it('uses byte fallbacks for the dummy prefix when " " is not a piece', () => {
    const extra: Array<[string, number]> = [['a', 0]];
    expect(make(extra).encode('a', { bos: false })).toEqual([0x20 + 3, id(extra, 'a')]);
  });
});
