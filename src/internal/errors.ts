/**
 * The one way this library words a bad argument: `fn: arg constraint, but got value.`, e.g.
 * `speculativeDecode: options.topP must be in (0, 1], but got 1.5.` Shared by the layers, the
 * decoders and the models; pure functions, no module state, so sharing it never ties one
 * entry point's chunk to another's side effects.
 */

/** Nesting of arrays rendered element by element; deeper ones are summarised (so a value nested 10⁵ deep renders in a line). */
const SHOWN_DEPTH = 4;

/** Renders a received value for an error message (short, unambiguous, never huge). */
export function show(value: unknown): string {
  return showAt(value, 0);
}

function showAt(value: unknown, depth: number): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 61)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return value.length > 8 || depth >= SHOWN_DEPTH ? `an array of length ${value.length}` : `[${value.map((v) => showAt(v, depth + 1)).join(', ')}]`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of length ${(value as unknown as ArrayLike<unknown>).length ?? value.byteLength}`;
  if (typeof value === 'function') return 'a function';
  return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
}

/** Throws `new Kind("fn: arg constraint, but got value.")`. */
export function fail(Kind: new (message: string) => Error, fn: string, arg: string, constraint: string, value: unknown): never {
  throw new Kind(`${fn}: ${arg} ${constraint}, but got ${show(value)}.`);
}

/**
 * Returns `value` if it is an integer in `[min, max]`; otherwise throws a `TypeError` (not a
 * number) or a `RangeError` (out of range) naming `fn`, `arg`, the bound and the value.
 */
export function checkInteger(fn: string, arg: string, value: unknown, min: number, max: number): number {
  const what = min !== 1 ? `an integer in [${min}, ${max}]` : max === Number.MAX_SAFE_INTEGER ? 'a positive integer' : `a positive integer at most ${max}`;
  if (typeof value !== 'number' || !Number.isInteger(value)) fail(TypeError, fn, arg, `must be ${what}`, value);
  if (value < min || value > max) fail(RangeError, fn, arg, `must be ${what}`, value);
  return value;
}

/** Returns `value` if it is an integer in `[1, max]` (unbounded by default); throws naming `arg` otherwise. */
export function checkPositiveInteger(fn: string, arg: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  return checkInteger(fn, arg, value, 1, max);
}

/** Returns `value` if it is a boolean; throws a `TypeError` naming `arg` otherwise (`"yes"` is not `true`). */
export function checkBoolean(fn: string, arg: string, value: unknown): boolean {
  if (typeof value !== 'boolean') fail(TypeError, fn, arg, 'must be a boolean', value);
  return value;
}

/** Returns `value` if it is a finite number in `[min, max]`; throws naming `arg` otherwise (`"0.1"` is not a number). */
export function checkFiniteNumber(fn: string, arg: string, value: unknown, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(TypeError, fn, arg, 'must be a finite number', value);
  if (value < min || value > max) fail(RangeError, fn, arg, `must be a number in [${min}, ${max}]`, value);
  return value;
}

/**
 * Throws a `RangeError` unless a weight of `shape` has at most {@link SIZE_LIMITS}`.matrixElements`
 * elements; called before the weight is created, so an absurd size fails instead of exhausting memory.
 */
export function checkWeightSize(fn: string, weight: string, shape: readonly number[]): void {
  const elements = shape.reduce((a, b) => a * b, 1);
  if (elements > SIZE_LIMITS.matrixElements) {
    throw new RangeError(`${fn}: ${weight} [${shape.join(', ')}] must have at most ${SIZE_LIMITS.matrixElements} elements, but got ${elements}.`);
  }
}

/**
 * Upper bounds of every size field, checked before anything is allocated. Each is far above any
 * real model (k ≤ 64 heads; vocabularies to 2²⁰ — the largest in use are ~2.6·10⁵; hidden sizes
 * to 65,536; contexts to 2²⁰ positions), and far below what would exhaust memory silently.
 * Not public: the errors state each bound.
 * @internal
 */
export const SIZE_LIMITS = {
  /** Multi-token heads k. */
  numHeads: 64,
  /** Vocabulary size V. */
  vocabSize: 1 << 20,
  /** Hidden size D (and any MLP or head width). */
  hiddenSize: 1 << 16,
  /** Transformer blocks. */
  numLayers: 1024,
  /** Attention heads per block. */
  attentionHeads: 1024,
  /** Context positions. */
  maxLength: 1 << 20,
  /** MLP width as a multiple of the hidden size. */
  mlpRatio: 64,
  /** Elements of one weight matrix (2³¹, tfjs' own typed-array limit). */
  matrixElements: 2 ** 31,
  /** Bytes of a JSON file a loader reads, e.g. a tokenizer.json (the largest real ones are ~35 MB); text counts UTF-16 units. */
  jsonFileBytes: 64 * 2 ** 20,
} as const;
