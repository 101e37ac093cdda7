/**
 * `TokenChunk.tree`: a tree step's chunk reports the tree it verified — node tokens, parents
 * (−1 = the root), the accepted path — so a view can draw it. The path's tokens are what the
 * chunk commits before the verifier's own token (a prefix of that when decoding ends inside the
 * step), the parents form a tree listed parents first, chain steps have no tree, every consumer
 * gets its own copy, and nothing leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { blockwiseStream, greedyStream, speculativeDecode, speculativeStream, type MultiTokenModel, type TokenChunk, type TreeOption } from '../../src/decoding/index.js';
import { withSequentialHeads } from '../../src/models/draft_heads.js';
import { CachedTransformer } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { randomizeWeights } from '../helpers/layers.js';
import { expectNoLeak } from '../helpers/leak.js';
import { tinyTransformer } from '../helpers/models.js';

beforeAll(useCpu);

const TREES: [string, TreeOption][] = [
  ['static', [[0], [1], [2], [0, 0], [0, 1], [1, 0], [0, 0, 0], [0, 1, 0]]],
  ['dynamic', { topK: 3, maxNodes: 12 }],
];
const PROMPTS = [[1], [5, 9, 2], [3, 17, 4, 4, 29], [30, 2, 2, 7, 11, 0, 13]];

/** Every chunk of a stream, and its result. */
async function collect(stream: AsyncGenerator<TokenChunk, unknown>): Promise<TokenChunk[]> {
  const chunks: TokenChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

/** Asserts that `tree` is a tree listed parents first and that `accepted` is a root-to-node path in it. */
function expectValidTree(tree: NonNullable<TokenChunk['tree']>): void {
  expect(tree.parents.length).toBe(tree.tokens.length);
  tree.parents.forEach((p, i) => {
    expect(Number.isInteger(p)).toBe(true);
    expect(p).toBeGreaterThanOrEqual(-1);
    expect(p).toBeLessThan(i); // a parent comes before its children, so there is no cycle
  });
  tree.accepted.forEach((node, d) => {
    expect(node).toBeGreaterThanOrEqual(0);
    expect(node).toBeLessThan(tree.tokens.length);
    expect(tree.parents[node]).toBe(d === 0 ? -1 : tree.accepted[d - 1]); // each step goes one level down
  });
}

/**
 * Streams `tree` decodes of every prompt and checks each chunk's tree against what it commits;
 * returns how many steps kept a path below the root.
 */
async function checkChunks(model: MultiTokenModel, tree: TreeOption): Promise<number> {
  let keptPaths = 0;
  await expectNoLeak(async () => {
    for (const prompt of PROMPTS) {
      const chunks = await collect(speculativeStream(model, prompt, { maxNewTokens: 40, tree }));
      const full = await speculativeDecode(model, prompt, { maxNewTokens: 40, tree });
      expect(chunks.flatMap((c) => c.tokens)).toEqual(full.tokens);
      expect(chunks[0]!.tree).toEqual({ tokens: [], parents: [], accepted: [] }); // the prompt's forward drafts nothing yet
      chunks.forEach((chunk, i) => {
        const t = chunk.tree!;
        expectValidTree(t);
        const pathTokens = t.accepted.map((node) => t.tokens[node]!);
        if (i < chunks.length - 1) {
          expect(chunk.tokens.slice(0, -1)).toEqual(pathTokens); // not cut: the path, then the verifier's token
          expect(chunk.sources.slice(0, -1)).toEqual(pathTokens.map((_t, d) => d + 1)); // node depth d drafted by offset d
        } else {
          expect(chunk.tokens.slice(0, t.accepted.length)).toEqual(pathTokens.slice(0, chunk.tokens.length)); // possibly cut
        }
        keptPaths += t.accepted.length > 0 ? 1 : 0;
      });
      expect(chunks.reduce((n, c) => n + c.tree!.tokens.length, 0)).toBe(full.stats.draftNodes); // the same nodes the stats count
    }
  });
  return keptPaths;
}

describe.each(TREES)('%s tree', (_, tree) => {
  it('every chunk reports a valid tree whose accepted path is what it commits before the verifier token', async () => {
    const layers = tinyTransformer({ mtpHeads: 4, maxLength: 24 });
    const model = new CachedTransformer(layers);
    expect(await checkChunks(model, tree)).toBeGreaterThan(0); // some steps kept a path below the root
    model.dispose();
    layers.dispose();
  });

  it('a step cut short by the token budget commits a prefix of its accepted path', async () => {
    const layers = tinyTransformer({ mtpHeads: 4, maxLength: 24 });
    const model = new CachedTransformer(layers);
    let cutInsidePath = 0;
    for (let budget = 1; budget <= 16; budget++) {
      const chunks = await collect(speculativeStream(model, [5, 9, 2], { maxNewTokens: budget, tree }));
      const last = chunks.at(-1)!;
      const t = last.tree!;
      expect(chunks.reduce((n, c) => n + c.tokens.length, 0)).toBe(budget);
      expect(last.tokens.slice(0, t.accepted.length)).toEqual(t.accepted.map((node) => t.tokens[node]!).slice(0, last.tokens.length));
      if (last.tokens.length <= t.accepted.length) cutInsidePath++;
    }
    expect(cutInsidePath).toBeGreaterThan(0); // the budget fell inside an accepted path at least once
    model.dispose();
    layers.dispose();
  });
});

it('with sequential modules (a tree grown the EAGLE-2 way), chunks report the grown tree the same way', async () => {
  const base = tinyTransformer({ mtpHeads: 1, maxLength: 24 });
  const layers = withSequentialHeads(base, 4, 8); // shares base's trunk: disposing layers frees both
  const head = layers.getLayer('mtp_head');
  randomizeWeights({ weights: head.weights.filter((w) => w.originalName.includes('module')) }, 11, 0.4);
  const model = new CachedTransformer(layers);
  expect(model.headTree).toBeDefined();
  expect(await checkChunks(model, { topK: 3, maxNodes: 12 })).toBeGreaterThan(0);
  model.dispose();
  layers.dispose();
});

it('chain steps, greedy and blockwise chunks carry no tree', async () => {
  const layers = tinyTransformer({ mtpHeads: 3, maxLength: 24 });
  const model = new CachedTransformer(layers);
  const streams = [speculativeStream(model, [2, 3], { maxNewTokens: 12 }), greedyStream(model, [2, 3], { maxNewTokens: 6 }), blockwiseStream(model, [2, 3], { maxNewTokens: 12 })];
  for (const stream of streams) {
    const chunks = await collect(stream);
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) expect('tree' in chunk).toBe(false);
  }
  model.dispose();
  layers.dispose();
});

it('onToken and the stream each get their own copy of the tree', async () => {
  const layers = tinyTransformer({ mtpHeads: 4, maxLength: 24 });
  const model = new CachedTransformer(layers);
  const seen: TokenChunk[] = [];
  const stream = speculativeStream(model, [3, 17, 4], {
    maxNewTokens: 16,
    tree: { topK: 3, maxNodes: 8 },
    onToken: (chunk) => {
      seen.push(chunk);
      const t = chunk.tree!;
      t.tokens.push(-7); // a consumer that edits its chunk touches only its own copy
      t.parents.fill(99);
      t.accepted.push(-1);
    },
  });
  const chunks = await collect(stream);
  expect(chunks.length).toBe(seen.length);
  chunks.forEach((chunk, i) => {
    expect(chunk.tree).not.toBe(seen[i]!.tree);
    expect(chunk.tree!.tokens).not.toContain(-7);
    expect(chunk.tree!.accepted).not.toContain(-1);
    expectValidTree(chunk.tree!);
  });
  model.dispose();
  layers.dispose();
});

it('no tensor is left behind when a tree stream is aborted after a tree chunk', async () => {
  const layers = tinyTransformer({ mtpHeads: 4, maxLength: 24 });
  const model = new CachedTransformer(layers);
  const controller = new AbortController();
  const before = tf.memory().numTensors;
  const stream = speculativeStream(model, [1, 2], { maxNewTokens: 20, tree: { topK: 3, maxNodes: 12 }, signal: controller.signal });
  let treeChunks = 0;
  await expect(async () => {
    for await (const chunk of stream) {
      if ((chunk.tree?.tokens.length ?? 0) > 0 && ++treeChunks === 2) controller.abort();
    }
  }).rejects.toThrow(/abort/i);
  expect(treeChunks).toBe(2);
  expect(tf.memory().numTensors).toBe(before);
  model.dispose();
  layers.dispose();
});
