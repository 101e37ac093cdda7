/**
 * The checks `loadHfTokenizer` makes on `tokenizer.json` and `tokenizer_config.json` before
 * `@huggingface/tokenizers` sees them: the source is bounded in size and nesting, the fields the
 * library reads without checking (`model`, its `type`, `vocab` and `merges`, `added_tokens`) have
 * their types and bounded ids, and a file of another kind (a config.json, the two files swapped)
 * is refused naming the field it lacks. Errors start with `where` (the function and the argument).
 */
import { SIZE_LIMITS, fail, show } from '../internal/errors.js';
import { MAX_JSON_DEPTH, checkJsonText } from '../internal/json.js';

/** A JSON file as `loadHfTokenizer` takes it: parsed, its text, or its UTF-8 bytes. @inline */
export type HfJsonSource = Record<string, unknown> | string | Uint8Array | ArrayBuffer;

/** The tokenizer models `@huggingface/tokenizers` implements. */
export const HF_MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram'] as const;

/** Most merges of a BPE model (real files hold about one to two per vocabulary entry). */
const MAX_MERGES = 4 * SIZE_LIMITS.vocabSize;

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => value !== null && typeof value === 'object' && !Array.isArray(value) && !ArrayBuffer.isView(value);

/** The parsed JSON object of `source`, its size and nesting checked first. */
export function readHfJson(source: unknown, where: string): Json {
  let text: string;
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    if (source.byteLength > SIZE_LIMITS.jsonFileBytes) fail(RangeError, where, 'file', `must be at most SIZE_LIMITS.jsonFileBytes = ${SIZE_LIMITS.jsonFileBytes} bytes`, source.byteLength);
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(source);
    } catch {
      throw new Error(`${where}: file must be UTF-8 text, but it holds invalid UTF-8.`);
    }
  } else if (typeof source === 'string') {
    if (source.length > SIZE_LIMITS.jsonFileBytes) fail(RangeError, where, 'text', `must be at most SIZE_LIMITS.jsonFileBytes = ${SIZE_LIMITS.jsonFileBytes} characters long`, source.length);
    text = source;
  } else if (isObject(source)) {
    checkDepth(source, where);
    return source;
  } else {
    return fail(TypeError, where, 'file', 'must be a parsed JSON object, its text or its UTF-8 bytes (Uint8Array or ArrayBuffer)', source);
  }
  checkJsonText(text, where, '');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${where}: must be JSON, but parsing failed (${(error as Error).message}).`);
  }
  if (!isObject(json)) fail(TypeError, where, 'file', 'must hold a JSON object', json);
  return json;
}

/** Throws unless the parsed `json` nests at most MAX_JSON_DEPTH levels (a cycle never ends, so it fails too). */
function checkDepth(json: Json, where: string): void {
  const stack: Array<[unknown, number]> = [[json, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (depth > MAX_JSON_DEPTH) throw new Error(`${where}: must nest arrays and objects at most ${MAX_JSON_DEPTH} levels deep, but got deeper nesting (or a cycle).`);
    for (const child of Object.values(value as object)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
}

/** Checks an id of the vocabulary: an integer in [0, SIZE_LIMITS.vocabSize). */
function checkId(where: string, field: string, id: unknown): void {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= SIZE_LIMITS.vocabSize) {
    fail(RangeError, where, field, `must be an integer in [0, SIZE_LIMITS.vocabSize = ${SIZE_LIMITS.vocabSize})`, id);
  }
}

/** `a.b["c d"]` of an object key. */
const keyPath = (base: string, key: string) => (/^[A-Za-z_$][\w$]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`);

/**
 * Checks a parsed `tokenizer.json` and returns it with the optional top-level fields the library
 * requires filled in (`added_tokens: []`, pipeline stages `null`); the input is not modified.
 */
export function checkTokenizerJson(json: Json, where: string): Json {
  const model = json.model;
  if (!isObject(model)) fail(Error, where, 'model', 'must be an object (the tokenizer model: is this a tokenizer.json?)', model);
  const type = model.type;
  if (!(HF_MODEL_TYPES as readonly unknown[]).includes(type)) fail(Error, where, 'model.type', `must be one of ${HF_MODEL_TYPES.join(', ')}`, type);
  const vocab = model.vocab;
  if (type === 'Unigram') {
    if (!Array.isArray(vocab)) fail(Error, where, 'model.vocab', 'must be an array of [piece, score] pairs (a Unigram model)', vocab);
    if (vocab.length > SIZE_LIMITS.vocabSize) fail(RangeError, where, 'model.vocab', `must have at most SIZE_LIMITS.vocabSize = ${SIZE_LIMITS.vocabSize} entries`, vocab.length);
    vocab.forEach((entry: unknown, i) => {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'number') fail(Error, where, `model.vocab[${i}]`, 'must be a [piece, score] pair', entry);
    });
  } else {
    if (!isObject(vocab)) fail(Error, where, 'model.vocab', `must be an object of piece: id (a ${String(type)} model)`, vocab);
    const pieces = Object.keys(vocab);
    if (pieces.length > SIZE_LIMITS.vocabSize) fail(RangeError, where, 'model.vocab', `must have at most SIZE_LIMITS.vocabSize = ${SIZE_LIMITS.vocabSize} entries`, pieces.length);
    for (const piece of pieces) checkId(where, keyPath('model.vocab', piece), vocab[piece]);
  }
  if (type === 'BPE') {
    const merges = model.merges;
    if (!Array.isArray(merges)) fail(Error, where, 'model.merges', 'must be an array (a BPE model)', merges);
    if (merges.length > MAX_MERGES) fail(RangeError, where, 'model.merges', `must have at most ${MAX_MERGES} entries (4 · SIZE_LIMITS.vocabSize)`, merges.length);
    merges.forEach((merge: unknown, i) => {
      const ok = typeof merge === 'string' ? merge.includes(' ') : Array.isArray(merge) && merge.length === 2 && typeof merge[0] === 'string' && typeof merge[1] === 'string';
      if (!ok) fail(Error, where, `model.merges[${i}]`, 'must be "left right" or a [left, right] pair of strings', merge);
    });
  }
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) fail(Error, where, 'added_tokens', 'must be an array', added);
  if (added.length > SIZE_LIMITS.vocabSize) fail(RangeError, where, 'added_tokens', `must have at most SIZE_LIMITS.vocabSize = ${SIZE_LIMITS.vocabSize} entries`, added.length);
  added.forEach((token: unknown, i) => {
    if (!isObject(token) || typeof token.content !== 'string' || token.content === '') fail(Error, where, `added_tokens[${i}].content`, 'must be a non-empty string', isObject(token) ? token.content : token);
    checkId(where, `added_tokens[${i}].id`, token.id);
  });
  const stages = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const;
  for (const stage of stages) {
    const value = json[stage] ?? null;
    if (value !== null && (!isObject(value) || typeof value.type !== 'string')) fail(Error, where, stage, 'must be null or an object with a string type', value);
  }
  return { ...json, added_tokens: added, ...Object.fromEntries(stages.map((stage) => [stage, json[stage] ?? null])) };
}

/** The content of a special-token `value` of tokenizer_config.json, at `field` (a string, `{ content }`, or null/absent). */
export function tokenContent(value: unknown, where: string, field: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  return fail(Error, where, field, 'must be a token string or an object with a string content', value);
}

/** Checks a parsed `tokenizer_config.json`: the fields read here have their types; a tokenizer.json given in its place is refused. */
export function checkTokenizerConfig(config: Json, where: string): void {
  if (isObject(config.model) && 'vocab' in config.model) fail(Error, where, 'model', 'must be absent: this is a tokenizer.json, not a tokenizer_config.json (are the two arguments swapped?)', config.model);
  for (const flag of ['add_bos_token', 'add_eos_token'] as const) {
    if (config[flag] !== undefined && config[flag] !== null && typeof config[flag] !== 'boolean') fail(TypeError, where, flag, 'must be a boolean', config[flag]);
  }
  const extra = config.additional_special_tokens;
  if (extra !== undefined && extra !== null && !Array.isArray(extra)) fail(TypeError, where, 'additional_special_tokens', 'must be an array of token strings', extra);
}

/** The named chat templates of tokenizer_config.json's `chat_template`: a string (named `default`) or a list of `{ name, template }`. */
export function chatTemplates(config: Json, where: string): Map<string, string> {
  const value = config.chat_template;
  const templates = new Map<string, string>();
  if (value === undefined || value === null) return templates;
  if (typeof value === 'string') return templates.set('default', value);
  if (!Array.isArray(value)) fail(TypeError, where, 'chat_template', 'must be a template string or a list of { name, template }', value);
  value.forEach((entry: unknown, i) => {
    if (!isObject(entry) || typeof entry.name !== 'string' || typeof entry.template !== 'string') {
      throw new TypeError(`${where}: chat_template[${i}] must be { name: string, template: string }, but got ${show(entry)}.`);
    }
    templates.set(entry.name, entry.template);
  });
  return templates;
}

/** The id of `token` in a checked tokenizer.json (an added token first, then the model's vocabulary), or null. */
export function tokenId(json: Json, token: string): number | null {
  const added = (json.added_tokens as Array<{ id: number; content: string }>).find((t) => t.content === token);
  if (added) return added.id;
  const vocab = (json.model as Json).vocab;
  if (Array.isArray(vocab)) {
    const index = vocab.findIndex((entry: [string, number]) => entry[0] === token);
    return index >= 0 ? index : null;
  }
  return Object.prototype.hasOwnProperty.call(vocab, token) ? ((vocab as Record<string, number>)[token] ?? null) : null;
}
