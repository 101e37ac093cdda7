/**
 * Browser entry of bench/tree_browser.ts: exposes `window.treeBench`. One page = one backend
 * (webgl or webgpu; SwiftShader in headless Chromium). It loads the model over HTTP, measures
 * what a tree forward costs per node budget (`measureTreeCosts`), then decodes the prompts with
 * cached greedy and with each drafting (the chain and trees), round-robin over repeats, checking
 * every output against greedy's and that no tensor is left behind.
 */
import * as tf from '@tensorflow/tfjs-core';
import { greedyDecode, measureTreeCosts, speculativeDecode, type DecodeResult, type TreeCost, type TreeOption } from '../src/decoding/index.js';
import { byteTokenizer, CachedTransformer, loadLlama2c, loadTransformer } from '../src/models/index.js';
import { countSyncDownloads, useBackend, type BackendInfo, type BackendName } from '../tests/browser/pages/backend.js';

/** Where the model is (URLs on the bench's server). */
export type ModelSource = { kind: 'layers'; modelJson: string } | { kind: 'llama2c'; checkpoint: string; tokenizer: string; draftHeads?: string };

/** Prompts: token ids, or text for a llama2.c model (encoded with its tokenizer, BOS first). */
export type Prompts = { ids: number[][] } | { texts: string[] };

/** One drafting's numbers on this backend. */
export interface DraftingResult {
  name: string;
  tau: number;
  nodesPerStep: number;
  /** Wall ms per step (all prompts, median over repeats ÷ forwards). */
  msPerStep: number;
  tokensPerSecond: number;
  /** Speedup against cached greedy, within each repeat, median. */
  speedup: number;
  identicalPrompts: number;
  /** Synchronous GPU→CPU downloads during its timed decodes (the decoders promise none). */
  syncDownloads: number;
}

/** What the page measured. */
export interface TreeBenchRun {
  costs: readonly TreeCost[];
  cacheLength: number;
  results: DraftingResult[];
  prompts: number;
  numTensors: { before: number; after: number };
  /** Synchronous GPU→CPU downloads in the whole run, and in `measureTreeCosts` alone. */
  syncDownloads: number;
  costSyncDownloads: number;
}

/** The page's API. */
export interface TreeBenchPage {
  init(backend: BackendName): Promise<BackendInfo>;
  run(source: ModelSource, prompts: Prompts, maxNewTokens: number, draftings: [string, TreeOption | null][], budgets: number[], repeats: number): Promise<TreeBenchRun>;
}

let downloads: () => number = () => 0;

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const api: TreeBenchPage = {
  async init(backend) {
    const info = await useBackend(backend);
    downloads = countSyncDownloads();
    return info;
  },
  async run(source, prompts, maxNewTokens, draftings, budgets, repeats) {
    const { layers, tokenizer } =
      source.kind === 'layers'
        ? { layers: await loadTransformer(source.modelJson), tokenizer: byteTokenizer }
        : await loadLlama2c(source.checkpoint, { tokenizer: source.tokenizer, ...(source.draftHeads ? { draftHeads: source.draftHeads } : {}) }).then(({ model, tokenizer }) => ({ layers: model, tokenizer: tokenizer! }));
    const model = new CachedTransformer(layers);
    try {
      const ids = 'ids' in prompts ? prompts.ids : prompts.texts.map((t) => tokenizer.encode(t)); // llama2.c: BOS first
      const before = tf.memory().numTensors;
      const reads = downloads();
      // the tree forward's cost per budget, after a prompt in the cache (as mid-decode)
      tf.dispose(model.forward(ids[0]!));
      const cacheLength = model.length;
      const costs = await measureTreeCosts(model, budgets, model.numHeads - 1, { repeats: 5 * repeats, warmup: 3 });
      const costSyncDownloads = downloads() - reads;
      model.truncate(0);
      const runs: [string, (p: number[]) => Promise<DecodeResult>][] = [
        ['greedy (cached)', (p) => greedyDecode(model, p, { maxNewTokens })],
        ...draftings.map(([name, tree]): [string, (p: number[]) => Promise<DecodeResult>] => [name, (p) => speculativeDecode(model, p, { maxNewTokens, ...(tree === null ? {} : { tree }) })]),
      ];
      for (const [, run] of runs) await run(ids[0]!.slice()); // warm-up: shaders for every shape
      const walls = runs.map(() => [] as number[]);
      const last = runs.map(() => [] as DecodeResult[]);
      const syncs = runs.map(() => 0);
      for (let r = 0; r < repeats; r++) {
        for (const [i, [, run]] of runs.entries()) {
          const [t0, d0] = [performance.now(), downloads()];
          const out: DecodeResult[] = [];
          for (const p of ids) out.push(await run(p));
          walls[i]!.push(performance.now() - t0);
          syncs[i]! += downloads() - d0;
          last[i] = out;
        }
      }
      const greedy = last[0]!;
      const tokens = (rs: DecodeResult[]) => rs.reduce((a, x) => a + x.tokens.length, 0);
      const results = runs.map(([name], i) => {
        const rs = last[i]!;
        const forwards = rs.reduce((a, x) => a + x.stats.forwards, 0);
        const n = tokens(rs);
        return {
          name,
          tau: n / forwards,
          nodesPerStep: rs.reduce((a, x) => a + (x.stats.draftNodes ?? 0), 0) / forwards,
          msPerStep: median(walls[i]!) / forwards,
          tokensPerSecond: (1000 * n) / median(walls[i]!),
          speedup: median(walls[i]!.map((w, r) => n / w / (tokens(greedy) / walls[0]![r]!))),
          identicalPrompts: rs.filter((x, p) => x.tokens.join() === greedy[p]!.tokens.join()).length,
          syncDownloads: syncs[i]!,
        };
      });
      model.truncate(0);
      return { costs, cacheLength, results, prompts: ids.length, numTensors: { before, after: tf.memory().numTensors }, syncDownloads: downloads() - reads, costSyncDownloads };
    } finally {
      model.dispose();
      layers.dispose();
    }
  },
};

(globalThis as unknown as { treeBench: TreeBenchPage }).treeBench = api;
