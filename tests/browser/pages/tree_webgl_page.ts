/**
 * Browser entry of the tree-drafting checks of tests/browser/parity.test.ts (run in its webgl
 * page, after the parity cases): exposes `window.treeWebgl`. On one backend
 * (webgl here) it builds a small transformer from fixed weights, then decodes one prompt with
 * cached greedy and with tree drafting through each ranking path — parallel heads' `headTopK`
 * (greedy), sequential modules' `headTree` (greedy, EAGLE-2 growth) and the verifier's own top-k
 * of the drafting logits (sampling acceptance, a static tree) — counting synchronous GPU→CPU
 * downloads and live tensors around each decode.
 */
import * as tf from '@tensorflow/tfjs-core';
import { greedyDecode, speculativeDecode } from '../../../src/decoding/index.js';
import { CachedTransformer, withSequentialHeads, type TransformerConfig } from '../../../src/models/index.js';
import { topk2d } from '../../../src/internal/topk.js';
import { countSyncDownloads, useBackend, type BackendInfo, type BackendName } from './backend.js';
import { buildTransformer, fixedWeights, setFixedWeights } from './models.js';

/** One decode's outcome. */
export interface TreeDecodeRun {
  tokens: number[];
  syncDownloads: number;
  numTensors: { before: number; after: number };
  /** Wall time of the decode (SwiftShader: mostly shader compilation on first use). */
  ms: number;
}

/** The page's API. */
export interface TreeWebglPage {
  /**
   * Selects the backend and installs the sync-download counter; `probe` counts the downloads of
   * `tf.topk` and of the library's `topk2d` on a device-resident `[2, 48]` tensor, k = 4.
   */
  init(backend: BackendName): Promise<BackendInfo & { probe: { tfTopk: number; topk2d: number } }>;
  /** Greedy, then the three tree decodes, on `config` with `fixedWeights(seed)`. */
  run(config: TransformerConfig, seed: number, prompt: number[], maxNewTokens: number): Promise<Record<'greedy' | 'headTopK' | 'headTree' | 'sampled', TreeDecodeRun>>;
}

/** Width of the sequential modules' MLP (freshly initialised: the trees' drafts are mostly rejected, which still runs every path). */
const SEQUENTIAL_WIDTH = 16;

let downloads: () => number = () => 0;

/** Runs `decode`, counting downloads and tensors around it. */
async function counted(decode: () => Promise<{ tokens: number[] }>): Promise<TreeDecodeRun> {
  const before = tf.memory().numTensors;
  const reads = downloads();
  const start = performance.now();
  const { tokens } = await decode();
  const ms = performance.now() - start;
  return { tokens: Array.from(tokens), syncDownloads: downloads() - reads, numTensors: { before, after: tf.memory().numTensors }, ms };
}

const api: TreeWebglPage = {
  async init(backend) {
    const info = await useBackend(backend);
    downloads = countSyncDownloads();
    const x = tf.tidy(() => tf.square(tf.reshape(tf.range(0, 96), [2, 48]))) as tf.Tensor2D; // computed on the device
    const count = (rank: () => tf.Tensor[]) => {
      const before = downloads();
      tf.dispose(rank());
      return downloads() - before;
    };
    const probe = { tfTopk: count(() => Object.values(tf.topk(x, 4))), topk2d: count(() => Object.values(topk2d(x, 4))) };
    x.dispose();
    return { ...info, probe };
  },
  async run(config, seed, prompt, maxNewTokens) {
    const base = buildTransformer(config);
    setFixedWeights(base, fixedWeights(base, seed));
    const sequential = withSequentialHeads(base, config.mtpHeads ?? 4, SEQUENTIAL_WIDTH);
    const parallel = new CachedTransformer(base);
    const eagle = new CachedTransformer(sequential);
    const tree = { topK: 4, maxNodes: 4 };
    const paths = [[0], [1], [0, 0]]; // a static tree: a fixed block shape, so SwiftShader compiles fewer programs
    try {
      return {
        greedy: await counted(() => greedyDecode(parallel, prompt, { maxNewTokens })),
        headTopK: await counted(() => speculativeDecode(parallel, prompt, { maxNewTokens, tree })),
        headTree: await counted(() => speculativeDecode(eagle, prompt, { maxNewTokens, tree })),
        sampled: await counted(() => speculativeDecode(parallel, prompt, { maxNewTokens, tree: paths, acceptance: 'sampling', temperature: 1, seed: 7 })),
      };
    } finally {
      parallel.dispose();
      eagle.dispose();
      base.dispose();
    }
  },
};

(globalThis as unknown as { treeWebgl: TreeWebglPage }).treeWebgl = api;
