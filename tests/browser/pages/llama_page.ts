/**
 * Browser entry of the pretrained-model suite: exposes `window.llama` to the Node test. One page
 * = one backend: it fetches stories260K (the llama2.c files, or the Hugging Face copy the test
 * wrote) over HTTP with the loaders' URL inputs, then decodes the README prompt greedily through
 * the KV cache, counting live tensors and synchronous GPU readbacks around the decode.
 * (Speculative = greedy in the browser is the parity suite's. On webgl the page sets
 * WEBGL_USE_SHAPES_UNIFORMS, so a new cache length does not compile new shaders.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { greedyDecode } from '../../../src/decoding/index.js';
import { CachedTransformer, loadHfLlama, loadLlama2c, Llama2cTokenizer } from '../../../src/models/index.js';
import { countSyncDownloads, useBackend, type BackendInfo, type BackendName } from './backend.js';

/** Where the page finds the files (URLs on the test server). */
export interface LlamaFiles {
  checkpoint: string;
  tokenizer: string;
  hfConfig: string;
  hfSafetensors: string;
}

/** What one decode run produced. */
export interface LlamaRun {
  /** Prompt ids (BOS first) and the greedy continuation's ids. */
  prompt: number[];
  greedy: number[];
  /** The decoded text of prompt + greedy continuation. */
  text: string;
  /** Greedy tokens/s. */
  greedyTokensPerSecond: number;
  /** `tf.memory().numTensors` before the decode and after it. */
  numTensors: { before: number; after: number };
  /** Synchronous GPU→CPU downloads during the decode. */
  syncDownloads: number;
}

/** The page's API. */
export interface LlamaPage {
  init(backend: BackendName): Promise<BackendInfo>;
  run(loader: 'llama2c' | 'hf', files: LlamaFiles, prompt: string, maxNewTokens: number): Promise<LlamaRun>;
}

let downloads: () => number = () => 0;

const api: LlamaPage = {
  async init(backend) {
    // Shapes as uniforms: one compiled shader serves every cache length (without it each new
    // length compiles new shaders — minutes on SwiftShader). What docs/performance.md tells apps.
    if (backend === 'webgl') tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true);
    const info = await useBackend(backend);
    downloads = countSyncDownloads();
    return info;
  },
  async run(loader, files, text, maxNewTokens) {
    const { model, tokenizer } =
      loader === 'llama2c'
        ? await loadLlama2c(files.checkpoint, { tokenizer: files.tokenizer, mtpHeads: 4 })
        : { ...(await loadHfLlama({ config: files.hfConfig, safetensors: files.hfSafetensors }, { mtpHeads: 4 })), tokenizer: undefined };
    const cached = new CachedTransformer(model);
    try {
      // the Hugging Face copy has no tokenizer of its own: the same tok512.bin
      const tok = tokenizer ?? Llama2cTokenizer.fromBytes(new Uint8Array(await (await fetch(files.tokenizer)).arrayBuffer()), cached.vocabSize);
      const prompt = tok.encode(text);
      const before = tf.memory().numTensors;
      const reads = downloads();
      const greedy = await greedyDecode(cached, prompt, { maxNewTokens });
      cached.truncate(0);
      return {
        prompt,
        greedy: greedy.tokens,
        text: tok.decode([...prompt, ...greedy.tokens]),
        greedyTokensPerSecond: greedy.stats.tokensPerSecond,
        numTensors: { before, after: tf.memory().numTensors },
        syncDownloads: downloads() - reads,
      };
    } finally {
      cached.dispose();
      model.dispose();
    }
  },
};

(globalThis as unknown as { llama: LlamaPage }).llama = api;
