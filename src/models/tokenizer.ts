/**
 * Byte-level tokenizer: a token is one UTF-8 byte (V = 256). Nothing to train or ship, every
 * string round-trips. Consequence for the numbers: τ (tokens per forward) counts bytes.
 */

import { fail } from '../internal/errors.js';
import { isIdList, type Tokenizer } from './tokenizer_interface.js';

/** Vocabulary size of the byte tokenizer. */
export const BYTE_VOCAB_SIZE = 256;

/** UTF-8 bytes of `text`, as token ids in [0, 256). */
export function encodeBytes(text: string): number[] {
  return Array.from(new TextEncoder().encode(text));
}

/**
 * Text of byte token ids. Invalid UTF-8 (e.g. a multi-byte character cut by `maxNewTokens`)
 * decodes to U+FFFD instead of throwing; a leading U+FEFF is kept, so every string round-trips.
 */
export function decodeBytes(tokens: readonly number[]): string {
  const bad = tokens.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= BYTE_VOCAB_SIZE);
  if (bad >= 0) {
    throw new RangeError(`decodeBytes: tokens[${bad}] must be an integer in [0, 256), but got ${String(tokens[bad])}.`);
  }
  return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(Uint8Array.from(tokens)); // ignoreBOM: a leading U+FEFF is text, kept
}

/**
 * The byte tokenizer as a {@link Tokenizer}: no special tokens (BOS and EOS are null, options
 * change nothing), one id per UTF-8 byte, V = 256.
 */
export const byteTokenizer: Tokenizer = Object.freeze({
  vocabSize: BYTE_VOCAB_SIZE,
  bosId: null,
  eosId: null,
  specialIds: Object.freeze([]) as readonly number[],
  encode: (text: string): number[] => {
    if (typeof text !== 'string') fail(TypeError, 'byteTokenizer.encode', 'text', 'must be a string', text);
    return encodeBytes(text);
  },
  decode: (ids: ArrayLike<number>): string => {
    if (!isIdList(ids)) fail(TypeError, 'byteTokenizer.decode', 'ids', 'must be an array or a typed array of token ids', ids);
    return decodeBytes(Array.from(ids));
  },
});
