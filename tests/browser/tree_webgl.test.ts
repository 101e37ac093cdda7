/**
 * Tree drafting on WebGL in real Chromium (SwiftShader): tfjs-backend-webgl's TopK reads its input
 * back synchronously for every vocabulary here, so the tree decoders rank with the library's
 * on-device top-k there (src/internal/topk.ts). Through each ranking path — parallel heads'
 * `headTopK`, sequential modules' `headTree`, the verifier's own top-k under sampling acceptance —
 * a tree decode on webgl must do zero synchronous GPU→CPU downloads and leave no tensor behind,
 * and the greedy trees must equal cached greedy token for token.
 *
 * Chromium missing: the suite skips with a loud warning, or fails when `CI` is set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserSuiteEnabled } from '../../tools/browser/chromium.js';
import type { TransformerConfig } from '../../src/models/index.js';
import { startHarness, type BrowserHarness } from './harness.js';
import type { TreeDecodeRun, TreeWebglPage } from './pages/tree_webgl_page.js';

const CONFIG: TransformerConfig = { vocabSize: 48, maxLength: 64, hiddenSize: 32, numLayers: 1, numAttentionHeads: 2, mlpRatio: 2, mtpHeads: 4, headKind: 'residual', seed: 3 };
const PROMPT = [2, 7, 1, 8];
const NEW_TOKENS = 5;

describe.skipIf(!browserSuiteEnabled('tests/browser/tree_webgl'))('tree drafting on webgl (Chromium)', () => {
  let harness: BrowserHarness;
  let runs: Record<'greedy' | 'headTopK' | 'headTree' | 'sampled', TreeDecodeRun>;
  let errors: string[];
  let probe = { tfTopk: 0, topk2d: 0 };

  beforeAll(async () => {
    harness = await startHarness('tests/browser/pages/tree_webgl_page.ts');
    const opened = await harness.open('treeWebgl');
    errors = opened.errors;
    const info = await opened.page.evaluate(() => (globalThis as unknown as { treeWebgl: TreeWebglPage }).treeWebgl.init('webgl'));
    expect(info.backend).toBe('webgl');
    probe = info.probe;
    runs = await opened.page.evaluate(
      ([config, prompt, n]) => (globalThis as unknown as { treeWebgl: TreeWebglPage }).treeWebgl.run(config, 23, prompt, n),
      [CONFIG, PROMPT, NEW_TOKENS] as const,
    );
    await opened.page.close();
    console.log(`webgl decodes (ms): ${Object.entries(runs).map(([name, r]) => `${name} ${r.ms.toFixed(0)}`).join(', ')}`);
  }, 120_000);

  afterAll(async () => {
    await harness?.close();
  });

  it("webgl's tf.topk reads back synchronously (seen by the counter); topk2d does not", () => {
    expect(probe.tfTopk).toBe(1); // the counter works here, so the zeros below can fail
    expect(probe.topk2d).toBe(0);
  });

  it.each(['greedy', 'headTopK', 'headTree', 'sampled'] as const)('%s: no synchronous readback, no tensor left behind', (name) => {
    const r = runs[name];
    expect(r.tokens).toHaveLength(NEW_TOKENS);
    expect(r.syncDownloads).toBe(0);
    expect(r.numTensors.after).toBe(r.numTensors.before);
  });

  it('greedy trees equal cached greedy', () => {
    expect(runs.headTopK.tokens).toEqual(runs.greedy.tokens);
    expect(runs.headTree.tokens).toEqual(runs.greedy.tokens);
  });

  it('the page raised no error', () => {
    expect(errors).toEqual([]);
  });
});
