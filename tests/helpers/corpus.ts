/**
 * A small real text for training tests: the start of TypeScript's `lib.es5.d.ts`, which ships
 * in node_modules (read by tools/corpus.ts, the project's one reader of those files), as
 * character-level token ids over the characters it uses (~90 symbols), cut into fixed-length
 * windows.
 */
import { readLibFile } from '../../tools/corpus.js';

/** A tokenised text. */
export interface Corpus {
  /** The text (ASCII). */
  text: string;
  /** The distinct characters, sorted; a token id indexes this array. */
  vocab: string[];
  /** The text as token ids. */
  ids: Int32Array;
}

/**
 * Loads the first `bytes` characters of `typescript/lib/lib.es5.d.ts` after its license header.
 *
 * @param bytes How many characters to keep (default 20,000).
 */
export function loadCorpus(bytes = 20_000): Corpus {
  const text = readLibFile('lib.es5.d.ts').slice(0, bytes);
  const vocab = [...new Set(text)].sort();
  const index = new Map(vocab.map((c, i) => [c, i]));
  return { text, vocab, ids: Int32Array.from(text, (c) => index.get(c)!) };
}

/** Non-overlapping windows of `length` ids (the first `count` of them), row-major `[count, length]`. */
export function windows(corpus: Corpus, length: number, count: number): Int32Array {
  const available = Math.floor(corpus.ids.length / length);
  if (count > available) throw new RangeError(`windows: count must be at most ${available}, but got ${count}.`);
  return corpus.ids.slice(0, count * length);
}

/** The entropy (nats) of the corpus' character unigram distribution: the loss of the best context-free predictor. */
export function unigramEntropy(corpus: Corpus): number {
  const counts = new Map<number, number>();
  for (const id of corpus.ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) {
    const p = c / corpus.ids.length;
    h -= p * Math.log(p);
  }
  return h;
}
