/**
 * Hugging Face tokenizers: `loadHfTokenizer(tokenizerJson, tokenizerConfig?)` reads a
 * `tokenizer.json` (BPE — byte-level like GPT-2 or with byte fallback like Llama —, WordPiece,
 * Unigram) and, optionally, its `tokenizer_config.json`, and returns an {@link HfTokenizer}: the
 * project's {@link Tokenizer} on `@huggingface/tokenizers` (the tokenizers of transformers.js),
 * with chat templates rendered by `@huggingface/jinja`. Only the models subpath imports them.
 *
 * As transformers.js: `encode` adds what the file's post-processor adds (Llama: `<s>` first;
 * GPT-2 and Falcon: nothing), special-token strings in the text become their ids, and chat
 * templates see `messages`, `add_generation_prompt` and the config's special tokens. Where
 * tokenizer_config.json sets `add_bos_token`/`add_eos_token`, BOS/EOS are added exactly when true
 * (as transformers' Llama, Gemma and GPT-NeoX tokenizers do; transformers.js ignores the flags).
 * Two defaults differ from transformers.js, so that `decode(encode(text)) === text`: `decode`
 * skips special tokens unless `skipSpecialTokens: false`, and never applies
 * `clean_up_tokenization_spaces` (which turns `"a , b"` into `"a, b"`) unless
 * `cleanUpTokenizationSpaces: true`.
 *
 * Reference: huggingface/tokenizers.js (`Tokenizer`), transformers.js `apply_chat_template`.
 */
import { Template } from '@huggingface/jinja';
import { Tokenizer as LibraryTokenizer } from '@huggingface/tokenizers';
import { fail } from '../internal/errors.js';
import { chatTemplates, checkTokenizerConfig, checkTokenizerJson, readHfJson, tokenContent, tokenId, type HfJsonSource } from './hf_json.js';
import { isIdList, type ChatMessage, type ChatTemplateOptions, type Tokenizer, type TokenizerDecodeOptions, type TokenizerEncodeOptions } from './tokenizer_interface.js';

export { type HfJsonSource } from './hf_json.js';

/** Options of {@link HfTokenizer.decode}. @inline */
export interface HfDecodeOptions extends TokenizerDecodeOptions {
  /** Apply transformers' `clean_up_tokenization_spaces` (`" ,"` → `","`, `" 's"` → `"'s"`, …): lossy. Default false. */
  cleanUpTokenizationSpaces?: boolean;
}

/** The special-token fields of tokenizer_config.json a chat template sees, as transformers.js passes them. */
const TEMPLATE_TOKENS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

/** Where `encode` adds BOS and EOS: what the post-processor adds, and what it should add. */
interface SpecialPlacement {
  templateBos: boolean;
  templateEos: boolean;
  addBos: boolean;
  addEos: boolean;
}

/** A Hugging Face `tokenizer.json` tokenizer (see the module header); make one with {@link loadHfTokenizer}. */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly specialIds: readonly number[];
  private readonly special: ReadonlySet<number>;

  /** @internal Use {@link loadHfTokenizer}. */
  constructor(
    private readonly library: LibraryTokenizer,
    ids: { bosId: number | null; eosId: number | null; specialIds: number[] },
    private readonly placement: SpecialPlacement,
    private readonly templates: ReadonlyMap<string, Template>,
    private readonly templateTokens: Record<string, string>,
  ) {
    let top = -1;
    for (const id of library.get_vocab(true).values()) top = Math.max(top, id);
    this.vocabSize = top + 1;
    this.bosId = ids.bosId;
    this.eosId = ids.eosId;
    this.specialIds = Object.freeze([...new Set(ids.specialIds)].sort((a, b) => a - b));
    this.special = new Set(this.specialIds);
  }

  /** Names of the chat templates tokenizer_config.json gave (a single template is `default`); empty when none. */
  get chatTemplateNames(): string[] {
    return [...this.templates.keys()];
  }

  /**
   * Token ids of `text`: normalized, pre-tokenized and split by the model, special-token
   * strings matched first, and the post-processor's special tokens added (see the module header).
   */
  encode(text: string, options: TokenizerEncodeOptions = {}): number[] {
    if (typeof text !== 'string') fail(TypeError, 'HfTokenizer.encode', 'text', 'must be a string', text);
    const addSpecialTokens = options.addSpecialTokens ?? true;
    const { ids, tokens } = this.library.encode(text, { add_special_tokens: addSpecialTokens });
    const missing = ids.findIndex((id) => typeof id !== 'number');
    if (missing >= 0) fail(Error, 'HfTokenizer.encode', `text's piece ${missing}`, 'must be in the vocabulary (this tokenizer has no unk_token)', tokens[missing]);
    if (!addSpecialTokens) return ids;
    const p = this.placement;
    if (p.templateBos && !p.addBos) ids.shift();
    if (!p.templateBos && p.addBos) ids.unshift(this.bosId!);
    if (p.templateEos && !p.addEos) ids.pop();
    if (!p.templateEos && p.addEos) ids.push(this.eosId!);
    return ids;
  }

  /** Text of `ids` by the file's decoder; special tokens render as nothing unless `skipSpecialTokens: false`. */
  decode(ids: ArrayLike<number>, options: HfDecodeOptions = {}): string {
    if (!isIdList(ids)) fail(TypeError, 'HfTokenizer.decode', 'ids', 'must be an array or a typed array of token ids', ids);
    const skip = options.skipSpecialTokens ?? true;
    const kept: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.library.id_to_token(id) === undefined) {
        fail(RangeError, 'HfTokenizer.decode', `ids[${i}]`, `must be an id of the vocabulary (an integer in [0, vocabSize = ${this.vocabSize}))`, id);
      }
      if (!(skip && this.special.has(id))) kept.push(id);
    }
    if (kept.length === 0) return ''; // the library refuses an empty list
    return this.library.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? false });
  }

  /** The id of a vocabulary piece (e.g. `"▁the"`, `"Ġthe"`, `"<s>"`), or null. */
  tokenToId(token: string): number | null {
    return this.library.token_to_id(token) ?? null;
  }

  /** The piece of an id, or null when the id is not in the vocabulary. */
  idToToken(id: number): string | null {
    return this.library.id_to_token(id) ?? null;
  }

  /**
   * The prompt text of a chat by tokenizer_config.json's chat template, rendered as
   * transformers.js renders it. Encode the result with `addSpecialTokens: false`.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    const fn = 'HfTokenizer.applyChatTemplate';
    if (this.templates.size === 0) throw new Error(`${fn}: this tokenizer has no chat template (tokenizer_config.json has no chat_template, or none was given).`);
    if (!Array.isArray(messages)) fail(TypeError, fn, 'messages', 'must be an array of { role, content }', messages);
    messages.forEach((m: unknown, i) => {
      const message = m as Partial<ChatMessage> | null;
      if (message === null || typeof message !== 'object' || typeof message.role !== 'string') fail(TypeError, fn, `messages[${i}].role`, 'must be a string', message?.role);
      if (typeof message.content !== 'string') fail(TypeError, fn, `messages[${i}].content`, 'must be a string', message.content);
    });
    const name = options.template ?? 'default';
    const template = this.templates.get(name);
    if (template === undefined) fail(Error, fn, 'options.template', `must name one of the templates (${this.chatTemplateNames.join(', ')})`, name);
    try {
      return template.render({ messages, add_generation_prompt: options.addGenerationPrompt ?? false, ...this.templateTokens, ...(options.variables ?? {}) });
    } catch (error) {
      throw new Error(`${fn}: the template ${JSON.stringify(name)} failed: ${(error as Error).message}`);
    }
  }
}

/**
 * Reads a Hugging Face tokenizer. Every field the library reads unchecked is checked first, and a
 * file that is not a tokenizer.json (or not a tokenizer_config.json) is refused naming the file
 * and the field.
 *
 * ```ts
 * const tokenizer = loadHfTokenizer(readFileSync('tokenizer.json'), readFileSync('tokenizer_config.json'));
 * tokenizer.encode('Hello world'); // Llama 2: [1, 15043, 3186]
 * ```
 * @param tokenizerJson `tokenizer.json`: parsed, its text, or its bytes (at most 64 MiB).
 * @param tokenizerConfig `tokenizer_config.json`, the same ways: BOS/EOS tokens, `add_bos_token`,
 *   `add_eos_token`, `chat_template`. Without it `bosId`/`eosId` are null and there is no chat template.
 */
export function loadHfTokenizer(tokenizerJson: HfJsonSource, tokenizerConfig?: HfJsonSource): HfTokenizer {
  const fn = 'loadHfTokenizer';
  const json = checkTokenizerJson(readHfJson(tokenizerJson, `${fn}: tokenizerJson`), `${fn}: tokenizerJson`);
  const configWhere = `${fn}: tokenizerConfig`;
  const config = tokenizerConfig === undefined ? {} : readHfJson(tokenizerConfig, configWhere);
  checkTokenizerConfig(config, configWhere);
  // BOS, EOS and the other special tokens, by their ids in this vocabulary
  const idOf = (value: unknown, field: string): number | null => {
    const content = tokenContent(value, configWhere, field);
    if (content === null) return null;
    return tokenId(json, content) ?? fail(Error, configWhere, field, 'must be a token of tokenizerJson', content);
  };
  const bosId = idOf(config.bos_token, 'bos_token');
  const eosId = idOf(config.eos_token, 'eos_token');
  const added = (json.added_tokens as Array<{ id: number; special?: unknown }>).filter((t) => t.special === true).map((t) => t.id);
  const extra = ((config.additional_special_tokens as unknown[] | null | undefined) ?? []).map((token, i) => idOf(token, `additional_special_tokens[${i}]`));
  const specialIds = [...added, ...extra, bosId, eosId].filter((id): id is number => id !== null);
  const placement = specialPlacement(json, config, bosId, eosId, configWhere);
  // chat templates, parsed now so that a broken one fails before the tokenizer is built
  const templates = new Map<string, Template>();
  for (const [name, text] of chatTemplates(config, configWhere)) {
    try {
      templates.set(name, new Template(text));
    } catch (error) {
      throw new Error(`${configWhere}: chat_template ${JSON.stringify(name)} must be a Jinja template, but parsing failed: ${(error as Error).message}`);
    }
  }
  const templateTokens: Record<string, string> = {};
  for (const field of TEMPLATE_TOKENS) {
    const content = tokenContent(config[field], configWhere, field);
    if (content !== null) templateTokens[field] = content;
  }
  let library: LibraryTokenizer;
  try {
    library = new LibraryTokenizer(json, { ...config });
  } catch (error) {
    throw new Error(`${fn}: tokenizerJson could not be built by @huggingface/tokenizers: ${(error as Error).message}`);
  }
  return new HfTokenizer(library, { bosId, eosId, specialIds }, placement, templates, templateTokens);
}

/** Whether the post-processor's template starts with BOS / ends with EOS, and whether tokenizer_config.json's flags want them. */
function specialPlacement(json: Record<string, unknown>, config: Record<string, unknown>, bosId: number | null, eosId: number | null, where: string): SpecialPlacement {
  const post = json.post_processor as { type?: string; single?: unknown } | null;
  const single = post?.type === 'TemplateProcessing' && Array.isArray(post.single) ? (post.single as Array<{ SpecialToken?: { id?: unknown } }>) : [];
  const specialAt = (item: (typeof single)[number] | undefined) => (typeof item?.SpecialToken?.id === 'string' ? tokenId(json, item.SpecialToken.id) : null);
  const templateBos = bosId !== null && specialAt(single[0]) === bosId;
  const templateEos = eosId !== null && single.length > 1 && specialAt(single[single.length - 1]) === eosId;
  const flag = (key: 'add_bos_token' | 'add_eos_token', id: number | null, fallback: boolean): boolean => {
    const value = (config[key] ?? fallback) as boolean;
    if (value && id === null) fail(Error, where, key, `must be false or absent when there is no ${key === 'add_bos_token' ? 'bos_token' : 'eos_token'}`, value);
    return value;
  };
  return { templateBos, templateEos, addBos: flag('add_bos_token', bosId, templateBos), addEos: flag('add_eos_token', eosId, templateEos) };
}
