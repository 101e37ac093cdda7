/**
 * The draft vocabulary of `npm run train:heads -- --draftVocab N`: the N most frequent tokens of
 * the self-distillation corpus (ties by the lower id), FR-Spec's frequency-ranked subset. The
 * corpus is the frozen model's own text, so its frequent tokens are the ones the drafts must
 * propose most often; a target outside the subset is a draft that can never be right.
 *
 * Reference: Zhao et al., "FR-Spec: Accelerating Large-Vocabulary Language Models via
 * Frequency-Ranked Speculative Sampling" (2025), §3.
 */
import type { CorpusSequence } from './corpus.js';

/** How often each token id in [0, vocabSize) occurs in the corpus' sequences. */
export function tokenCounts(sequences: readonly CorpusSequence[], vocabSize: number): Float64Array {
  const counts = new Float64Array(vocabSize);
  for (const q of sequences) for (const t of q.ids) counts[t]! += 1;
  return counts;
}

/**
 * The `n` most frequent token ids of the corpus (ties, unseen tokens included, by the lower id),
 * increasing, and the share of the corpus' tokens they cover.
 */
export function frequentTokens(sequences: readonly CorpusSequence[], n: number, vocabSize: number): { ids: number[]; coverage: number } {
  if (!Number.isInteger(n) || n < 1 || n > vocabSize) throw new RangeError(`train:heads: --draftVocab must be an integer in [1, ${vocabSize}] (at most the vocabulary), but got ${n}.`);
  const counts = tokenCounts(sequences, vocabSize);
  const ranked = Array.from({ length: vocabSize }, (_, t) => t).sort((a, b) => counts[b]! - counts[a]! || a - b);
  const ids = ranked.slice(0, n).sort((a, b) => a - b);
  const total = counts.reduce((a, b) => a + b, 0);
  return { ids, coverage: total === 0 ? 0 : ids.reduce((a, t) => a + counts[t]!, 0) / total };
}
