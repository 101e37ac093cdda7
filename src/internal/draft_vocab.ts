/**
 * Draft vocabularies: the subset of token ids draft heads may propose (FR-Spec's frequency-ranked
 * subset, EAGLE-3's d2t/t2d maps). The draft projection is the gathered rows of the shared
 * unembedding, so a subset adds no parameters and offset 0 (verification) keeps the whole
 * vocabulary. This module holds what the layers, the loaders, the heads file and the decoders
 * share: the masked logit and the one validator.
 *
 * Reference: Zhao et al., "FR-Spec: Accelerating Large-Vocabulary Language Models via
 * Frequency-Ranked Speculative Sampling" (2025); Li et al., "EAGLE-3" (2025), §3 (draft vocabulary).
 */
import { fail, show, SIZE_LIMITS } from './errors.js';

/**
 * The logit a draft vocabulary gives every token outside it: low enough that its probability is
 * exactly 0 in float32 at any temperature the decoders accept, and finite (unlike −Infinity) on
 * every backend, so finiteness checks still see only real NaN/Infinity. A row of a whole
 * vocabulary of them (2²⁰ · 10³⁰) still sums to a finite float32.
 */
export const MASKED_LOGIT = -1.0000000150474662e30; // −1e30 rounded to float32: a masked logit read back from a float32 tensor equals it exactly

/**
 * Checks a draft vocabulary against a vocabulary of `vocabSize` tokens: an array (or typed array)
 * of 1…vocabSize distinct integer ids in [0, vocabSize), holes refused. Returns a fresh,
 * increasing copy (the order given does not matter). The length is checked before anything is
 * copied; errors name `fn`, `arg` and the offending element.
 */
export function checkDraftVocab(fn: string, arg: string, value: unknown, vocabSize: number): number[] {
  const isTyped = ArrayBuffer.isView(value) && !(value instanceof DataView);
  if (!Array.isArray(value) && !isTyped) fail(TypeError, fn, arg, 'must be an array of token ids', value);
  const list = value as ArrayLike<unknown>;
  const max = Math.min(vocabSize, SIZE_LIMITS.vocabSize);
  if (!Number.isInteger(list.length) || list.length < 1 || list.length > max) {
    fail(RangeError, fn, `${arg}.length`, `must be in [1, ${max}] (at most the vocabulary)`, list.length);
  }
  const seen = new Uint8Array(vocabSize);
  const ids: number[] = new Array<number>(list.length);
  for (let i = 0; i < list.length; i++) {
    if (!isTyped && !(i in (list as unknown[]))) throw new TypeError(`${fn}: ${arg} must not have holes, but ${arg}[${i}] is empty.`);
    const t = list[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= vocabSize) {
      fail(RangeError, fn, `${arg}[${i}]`, `must be a token id, an integer in [0, ${vocabSize})`, t);
    }
    if (seen[t] === 1) throw new RangeError(`${fn}: ${arg} must not repeat a token id, but ${arg}[${i}] repeats ${show(t)}.`);
    seen[t] = 1;
    ids[i] = t;
  }
  return ids.sort((a, b) => a - b);
}

/** Whether two checked (increasing) draft vocabularies, or `null`s, are the same set. */
export function sameDraftVocab(a: readonly number[] | null, b: readonly number[] | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((t, i) => t === b[i]);
}
