/**
 * Browser entry of the pretrained-model suite: exposes `window.llama` to the Node test. One page
 * = one backend: it fetches stories260K (the llama2.c files, or the Hugging Face copy the test
 * wrote) over HTTP with the loaders' URL inputs, then decodes the README prompt through the KV
 * cache twice, counting live tensors and synchronous GPU readbacks around each decode:
 *
 * - greedily, one token per forward, for as many tokens of the text as asked;
 * - with greedy acceptance and a drafter that proposes the README's own continuation, 7 tokens
 *   a forward, for the whole text. Verification keeps a drafted token only where it is the
 *   model's argmax (and commits the argmax where it is not), so the decode writes the README
 *   text exactly when greedy decoding would, in an eighth of the forwards (a forward costs
 *   ~0.5 s on WebGPU/SwiftShader).
 *
 * (Speculative = greedy in the browser is the parity suite's. On webgl the page sets
 * WEBGL_USE_SHAPES_UNIFORMS, so a new cache length does not compile new shaders.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { greedyDecode, speculativeDecode, type DecodeResult, type Drafter } from '../../../src/decoding/index.js';
import { CachedTransformer, loadHfLlama, loadLlama2c, Llama2cTokenizer } from '../../../src/models/index.js';
import { countSyncDownloads, useBackend, type BackendInfo, type BackendName } from './backend.js';

/** Where the page finds the files (URLs on the test server). */
export interface LlamaFiles {
  checkpoint: string;
  tokenizer: string;
  hfConfig: string;
  hfSafetensors: string;
}

/** What to decode: the README prompt, how many tokens to decode greedily, and the text's ids to draft from. */
export interface LlamaRequest {
  prompt: string;
  /** New tokens of the one-token-per-forward greedy decode (0: none). */
  greedyTokens: number;
  /** The README text's ids, prompt (BOS first) included: the drafter proposes what follows the committed tokens in it. */
  textIds: number[];
}

/** One decode, as plain data, with what happened around it. */
export interface LlamaDecode {
  tokens: number[];
  forwards: number;
  tokensPerSecond: number;
  /** `tf.memory().numTensors` before the decode and after it. */
  numTensors: { before: number; after: number };
  /** Synchronous GPU→CPU downloads during the decode. */
  syncDownloads: number;
}

/** What one loader's run produced. */
export interface LlamaRun {
  /** Prompt ids (BOS first). */
  prompt: number[];
  /** The decoded text of the prompt and the whole drafted decode. */
  text: string;
  /** The greedy decode, or null when none was asked for. */
  greedy: LlamaDecode | null;
  /** The decode drafting the README text (greedy acceptance): its whole continuation. */
  drafted: LlamaDecode;
}

/** The page's API. */
export interface LlamaPage {
  init(backend: BackendName): Promise<BackendInfo>;
  run(loader: 'llama2c' | 'hf', files: LlamaFiles, request: LlamaRequest): Promise<LlamaRun>;
}

/** Most tokens a drafter other than the heads may propose per step (`DECODE_DEFAULTS.maxDraftLength`). */
const DRAFT_LENGTH = 7;

let downloads: () => number = () => 0;

/** Proposes the tokens that follow the committed ones in `text`, while the committed ones are a prefix of it. */
function textDrafter(text: readonly number[]): Drafter {
  return {
    name: 'readme-text',
    propose: ({ tokens, maxDepth }) => (tokens.every((t, i) => t === text[i]) ? text.slice(tokens.length, tokens.length + maxDepth) : null),
  };
}

/** Runs `decode`, counting live tensors and synchronous downloads around it. */
async function counted(decode: () => Promise<DecodeResult>): Promise<LlamaDecode> {
  const before = tf.memory().numTensors;
  const reads = downloads();
  const r = await decode();
  return { tokens: r.tokens, forwards: r.stats.forwards, tokensPerSecond: r.stats.tokensPerSecond, numTensors: { before, after: tf.memory().numTensors }, syncDownloads: downloads() - reads };
}

const api: LlamaPage = {
  async init(backend) {
    // Shapes as uniforms: one compiled shader serves every cache length (without it each new
    // length compiles new shaders — minutes on SwiftShader). What docs/performance.md tells apps.
    if (backend === 'webgl') tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true);
    const info = await useBackend(backend);
    downloads = countSyncDownloads();
    return info;
  },
  async run(loader, files, { prompt: text, greedyTokens, textIds }) {
    const { model, tokenizer } =
      loader === 'llama2c'
        ? await loadLlama2c(files.checkpoint, { tokenizer: files.tokenizer, mtpHeads: 4 })
        : { ...(await loadHfLlama({ config: files.hfConfig, safetensors: files.hfSafetensors }, { mtpHeads: 4 })), tokenizer: undefined };
    const cached = new CachedTransformer(model);
    try {
      // the Hugging Face copy has no tokenizer of its own: the same tok512.bin
      const tok = tokenizer ?? Llama2cTokenizer.fromBytes(new Uint8Array(await (await fetch(files.tokenizer)).arrayBuffer()), cached.vocabSize);
      const prompt = tok.encode(text);
      const greedy = greedyTokens === 0 ? null : await counted(() => greedyDecode(cached, prompt, { maxNewTokens: greedyTokens }));
      cached.truncate(0);
      const maxNewTokens = textIds.length - prompt.length;
      const drafted = await counted(() => speculativeDecode(cached, prompt, { maxNewTokens, drafter: textDrafter(textIds), draftLength: DRAFT_LENGTH }));
      cached.truncate(0);
      return { prompt, text: tok.decode([...prompt, ...drafted.tokens]), greedy, drafted };
    } finally {
      cached.dispose();
      model.dispose();
    }
  },
};

(globalThis as unknown as { llama: LlamaPage }).llama = api;
