/**
 * `Tokenizer`: the one shape every tokenizer of `tfjs-mtp/models` has — the byte tokenizer
 * (`byteTokenizer`), llama2.c's (`Llama2cTokenizer`) and Hugging Face `tokenizer.json` files
 * (`loadHfTokenizer`). Demos, benches and training take a `Tokenizer` and never ask which one.
 *
 * The defaults make `decode(encode(text)) === text` for text without special-token strings:
 * `encode` adds the special tokens the tokenizer adds to a prompt (BOS for Llama), and `decode`
 * drops special tokens. Text that spells special tokens (`"<|endoftext|>"`) round-trips with
 * `encode(text, { addSpecialTokens: false })` and `decode(ids, { skipSpecialTokens: false })`.
 */

/** Options of {@link Tokenizer.encode}. @inline */
export interface TokenizerEncodeOptions {
  /** Add the special tokens the tokenizer adds around a text (Llama: BOS first; GPT-2: none). Default true. */
  addSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.decode}. @inline */
export interface TokenizerDecodeOptions {
  /** Render the ids of {@link Tokenizer.specialIds} as nothing. Default true. */
  skipSpecialTokens?: boolean;
}

/** One message of a chat, for {@link Tokenizer.applyChatTemplate}. @inline */
export interface ChatMessage {
  /** `system`, `user`, `assistant`, or a role the template knows. */
  role: string;
  /** The message text. */
  content: string;
}

/** Options of {@link Tokenizer.applyChatTemplate}. @inline */
export interface ChatTemplateOptions {
  /** End with the template's opening of an assistant turn, so the model writes the reply. Default false. */
  addGenerationPrompt?: boolean;
  /** Which of several named templates (`tokenizer_config.json`'s list form). Default: the one named `default`. */
  template?: string;
  /** Further variables the template reads (e.g. `tools`, `documents`, a date). */
  variables?: Record<string, unknown>;
}

/** What every tokenizer of the models subpath does. */
export interface Tokenizer {
  /** Number of ids V: every id is an integer in [0, V). */
  readonly vocabSize: number;
  /** Beginning-of-sequence id, or null when the tokenizer has none. */
  readonly bosId: number | null;
  /** End-of-sequence id, or null when the tokenizer has none. */
  readonly eosId: number | null;
  /** The ids `decode` skips by default (BOS, EOS and other control tokens), ascending. */
  readonly specialIds: readonly number[];
  /** Token ids of `text`, with the tokenizer's special tokens unless `addSpecialTokens: false`. */
  encode(text: string, options?: TokenizerEncodeOptions): number[];
  /** Text of `ids`; special tokens render as nothing unless `skipSpecialTokens: false`. */
  decode(ids: ArrayLike<number>, options?: TokenizerDecodeOptions): string;
  /**
   * The prompt text of a chat, by the tokenizer's chat template (Hugging Face tokenizers; throws
   * when the tokenizer_config.json had none). Encode it with `addSpecialTokens: false`: the
   * template writes the special tokens itself.
   */
  applyChatTemplate?(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
}

/** Whether `ids` is what `decode` takes: an array or a typed array (not a string, not a DataView). */
export function isIdList(ids: unknown): ids is ArrayLike<number> {
  return Array.isArray(ids) || (ArrayBuffer.isView(ids) && !(ids instanceof DataView));
}
