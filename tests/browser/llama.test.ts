/**
 * A real pretrained model in the browser: on webgl and webgpu (SwiftShader here), a page fetches
 * stories260K over HTTP — the llama2.c files through `loadLlama2c`'s URL inputs, and the same
 * weights in Hugging Face layout (written by this test) through `loadHfLlama` — and greedy
 * decoding with the KV cache must reproduce the README's reference text token for token (the
 * llama2.c files: the whole text; the Hugging Face copy, the same model as Node's hf_llama shows
 * with its logits and the whole text: its first {@link HF_TOKENS} tokens, which any error of its
 * URL loading in the browser changes); no tensor may leak and the decode may not read GPU data
 * back synchronously. (Speculative = greedy on these backends is tests/browser/parity's; in Node
 * it is checked on this model too.)
 *
 * Chromium or the stories260K files missing: the suite skips with a loud warning, or fails when
 * `CI` is set.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../tools/browser/bundle.js';
import { browserSuiteEnabled } from '../../tools/browser/chromium.js';
import { parseLlama2c } from '../../src/models/llama2c.js';
import { referenceGreedy, type ReferenceConfig } from '../helpers/llama_reference.js';
import { readStories, STORIES_DIR, storiesAvailable, storiesReference, toHfLayout, writeSafetensors, type StoriesReference } from '../helpers/stories.js';
import { startHarness, type BrowserHarness } from './harness.js';
import type { BackendName } from './pages/backend.js';
import type { LlamaFiles, LlamaPage, LlamaRun } from './pages/llama_page.js';

const BACKENDS: BackendName[] = ['webgl', 'webgpu'];
const LOADERS = ['llama2c', 'hf'] as const;
/** Where the Hugging Face copy is written for the server (inside the git-ignored .tmp/, never committed). */
const HF_DIR = join(ROOT, '.tmp/browser-llama');
/**
 * New tokens the Hugging Face copy decodes on each backend: its loading is what this run checks
 * (the decode is the llama2.c run's, over the same kernels), and a decode on SwiftShader costs
 * ~1 s a token.
 */
const HF_TOKENS = 16;
const FILES: LlamaFiles = { checkpoint: '/stories/stories260K.bin', tokenizer: '/stories/tok512.bin', hfConfig: '/hf/config.json', hfSafetensors: '/hf/model.safetensors' };

type PageResult = { backend: string; detail: string; runs: Record<(typeof LOADERS)[number], LlamaRun>; errors: string[] };

const enabled = browserSuiteEnabled('tests/browser/llama') && storiesAvailable('tests/browser/llama');

describe.skipIf(!enabled)('stories260K in the browser (Chromium)', () => {
  let harness: BrowserHarness;
  let ref: StoriesReference;
  let expectedIds: number[];
  const pages = new Map<BackendName, Promise<PageResult>>();

  async function runPage(backend: BackendName): Promise<PageResult> {
    const { page, errors } = await harness.open('llama');
    try {
      const info = await page.evaluate((b) => (globalThis as unknown as { llama: LlamaPage }).llama.init(b), backend);
      const runs = {} as PageResult['runs'];
      for (const loader of LOADERS) {
        runs[loader] = await page.evaluate(
          ([l, files, prompt, n]) => (globalThis as unknown as { llama: LlamaPage }).llama.run(l, files, prompt, n),
          [loader, FILES, ref.prompt, loader === 'hf' ? HF_TOKENS : ref.steps + 1 - ref.promptIds.length] as const,
        );
      }
      return { ...info, runs, errors };
    } finally {
      await page.close();
    }
  }

  beforeAll(async () => {
    ref = storiesReference();
    const parsed = parseLlama2c(readStories('checkpoint'));
    expectedIds = referenceGreedy(parsed.config as ReferenceConfig, parsed.weights, ref.promptIds, ref.steps);
    const hf = toHfLayout(parsed, 'F32');
    mkdirSync(HF_DIR, { recursive: true });
    writeFileSync(join(HF_DIR, 'config.json'), JSON.stringify(hf.config));
    writeFileSync(join(HF_DIR, 'model.safetensors'), writeSafetensors(hf.tensors));
    harness = await startHarness('tests/browser/pages/llama_page.ts', { mounts: { '/stories/': STORIES_DIR, '/hf/': HF_DIR } });
    for (const backend of BACKENDS) {
      const run = runPage(backend);
      run.catch(() => undefined); // reported by that backend's hook; never an unhandled rejection
      pages.set(backend, run);
    }
  }, 300_000);

  afterAll(async () => {
    await Promise.allSettled(pages.values());
    await harness?.close();
  });

  describe.each(BACKENDS)('%s', (backend) => {
    let result: PageResult;
    beforeAll(async () => {
      result = await pages.get(backend)!;
      console.log(`${backend}: ${result.detail}`);
      expect(result.backend).toBe(backend);
    }, 600_000); // SwiftShader on a loaded machine is slow; the pages run concurrently

    it('llama2c loader: greedy decoding reproduces the README text', () => {
      const run = result.runs.llama2c;
      console.log(`${backend} llama2c: greedy ${run.greedyTokensPerSecond.toFixed(1)} tokens/s (SwiftShader, shaders compiled on the way)`);
      expect(run.prompt).toEqual(ref.promptIds);
      expect([...run.prompt, ...run.greedy]).toEqual(expectedIds);
      expect(run.text).toBe(ref.greedyText);
    });

    it(`hf loader: greedy decoding reproduces the README text's first ${HF_TOKENS} tokens`, () => {
      const run = result.runs.hf;
      console.log(`${backend} hf: greedy ${run.greedyTokensPerSecond.toFixed(1)} tokens/s`);
      expect(run.prompt).toEqual(ref.promptIds);
      expect([...run.prompt, ...run.greedy]).toEqual(expectedIds.slice(0, ref.promptIds.length + HF_TOKENS));
      expect(run.text.length).toBeGreaterThan(ref.prompt.length);
      expect(ref.greedyText.startsWith(run.text), `"${run.text}" begins the README text`).toBe(true);
    });

    it.each(LOADERS)('%s loader: no tensor leaks, no synchronous GPU readback, no page errors', (loader) => {
      const run = result.runs[loader];
      expect(run.numTensors.after).toBe(run.numTensors.before);
      expect(run.syncDownloads).toBe(0);
      expect(result.errors).toEqual([]);
    });
  });
});
