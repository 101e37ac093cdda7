/**
 * Argument checks shared by the decoders. Every message names the function, the argument, the
 * constraint and the value received (the wording is `src/internal/errors.ts`'s), e.g.
 * `speculativeDecode: options.topP must be in (0, 1], but got 1.5.`
 */
import { fail } from '../internal/errors.js';
import { checkSameTfjs } from '../internal/instance.js';
import type { MultiTokenModel } from './model.js';

const isPositiveInt = (x: unknown): boolean => typeof x === 'number' && Number.isInteger(x) && x > 0;

/** Checks that `model` implements {@link MultiTokenModel}. */
export function checkModel(fn: string, model: MultiTokenModel): void {
  if (model === null || typeof model !== 'object') fail(TypeError, fn, 'model', 'must be a MultiTokenModel', model);
  checkSameTfjs(fn, 'model', model);
  for (const method of ['forward', 'headLogits', 'truncate'] as const) {
    if (typeof model[method] !== 'function') fail(TypeError, fn, `model.${method}`, 'must be a function', model[method]);
  }
  if (!isPositiveInt(model.numHeads)) fail(TypeError, fn, 'model.numHeads', 'must be a positive integer', model.numHeads);
  if (!isPositiveInt(model.vocabSize)) fail(TypeError, fn, 'model.vocabSize', 'must be a positive integer', model.vocabSize);
  if (!(model.maxLength === Infinity || isPositiveInt(model.maxLength))) {
    fail(TypeError, fn, 'model.maxLength', 'must be a positive integer or Infinity', model.maxLength);
  }
}

/**
 * Token ids from an array or a typed array (any other value is rejected, naming `arg`), each an
 * integer in [0, vocabSize). Returns a fresh plain array.
 */
export function toIds(fn: string, arg: string, value: unknown, vocabSize: number): number[] {
  const isTyped = ArrayBuffer.isView(value) && !(value instanceof DataView);
  if (!Array.isArray(value) && !isTyped) {
    checkSameTfjs(fn, arg, value);
    fail(TypeError, fn, arg, 'must be an array or a typed array of token ids', value);
  }
  const ids = Array.from(value as ArrayLike<number>);
  ids.forEach((t, i) => {
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= vocabSize) {
      fail(RangeError, fn, `${arg}[${i}]`, `must be an integer token id in [0, ${vocabSize})`, t);
    }
  });
  return ids;
}

/** Checks the prompt: a non-empty array (or typed array) of token ids that fits the context. */
export function checkPrompt(fn: string, prompt: unknown, model: MultiTokenModel): number[] {
  const ids = toIds(fn, 'prompt', prompt, model.vocabSize);
  if (ids.length === 0) fail(RangeError, fn, 'prompt', 'must contain at least one token', ids);
  if (ids.length > model.maxLength) {
    fail(RangeError, fn, 'prompt.length', `must be at most the model's context (maxLength = ${model.maxLength})`, ids.length);
  }
  return ids;
}
