/**
 * Argument checks shared by the decoders. Every message names the function, the argument, the
 * constraint and the value received, e.g.
 * `speculativeDecode: options.topP must be in (0, 1], but got 1.5.`
 */
import type { MultiTokenModel } from './model.js';

/** Renders a received value for an error message (short, unambiguous). */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return value.length > 8 ? `an array of length ${value.length}` : `[${value.map(show).join(', ')}]`;
  if (typeof value === 'function') return 'a function';
  return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
}

/** Throws `new Kind("fn: arg constraint, but got value.")`. */
export function fail(
  Kind: new (message: string) => Error,
  fn: string,
  arg: string,
  constraint: string,
  value: unknown,
): never {
  throw new Kind(`${fn}: ${arg} ${constraint}, but got ${show(value)}.`);
}

const isPositiveInt = (x: unknown): boolean => typeof x === 'number' && Number.isInteger(x) && x > 0;

/** Checks that `model` implements {@link MultiTokenModel}. */
export function checkModel(fn: string, model: MultiTokenModel): void {
  if (model === null || typeof model !== 'object') fail(TypeError, fn, 'model', 'must be a MultiTokenModel', model);
  for (const method of ['forward', 'headLogits', 'truncate'] as const) {
    if (typeof model[method] !== 'function') fail(TypeError, fn, `model.${method}`, 'must be a function', model[method]);
  }
  if (!isPositiveInt(model.numHeads)) fail(TypeError, fn, 'model.numHeads', 'must be a positive integer', model.numHeads);
  if (!isPositiveInt(model.vocabSize)) fail(TypeError, fn, 'model.vocabSize', 'must be a positive integer', model.vocabSize);
  if (!(model.maxLength === Infinity || isPositiveInt(model.maxLength))) {
    fail(TypeError, fn, 'model.maxLength', 'must be a positive integer or Infinity', model.maxLength);
  }
}

/** Checks the prompt: a non-empty array of integer ids in [0, vocabSize) that fits the context. */
export function checkPrompt(fn: string, prompt: readonly number[], model: MultiTokenModel): number[] {
  const ids = ArrayBuffer.isView(prompt) ? Array.from(prompt as unknown as ArrayLike<number>) : prompt;
  if (!Array.isArray(ids)) fail(TypeError, fn, 'prompt', 'must be an array of token ids', prompt);
  if (ids.length === 0) fail(RangeError, fn, 'prompt', 'must contain at least one token', ids);
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= model.vocabSize) {
      fail(RangeError, fn, `prompt[${i}]`, `must be an integer token id in [0, ${model.vocabSize})`, t);
    }
  }
  if (ids.length > model.maxLength) {
    fail(RangeError, fn, 'prompt.length', `must be at most the model's context (maxLength = ${model.maxLength})`, ids.length);
  }
  return ids.slice();
}
