/**
 * A real pretrained model in the browser: on webgl and webgpu (SwiftShader here), a page fetches
 * stories260K over HTTP — the llama2.c files through `loadLlama2c`'s URL inputs, and the same
 * weights in Hugging Face layout (written by this test) through `loadHfLlama` — and decoding with
 * the KV cache must reproduce the README's reference text token for token: greedily, one token
 * per forward (its first {@link GREEDY_TOKENS} tokens), and with greedy acceptance and a
 * drafter proposing the README text, its whole text from either loader (verification keeps a
 * drafted token only where it is the model's argmax, so any kernel or loading error along the text
 * changes the output). No tensor may leak and no decode may read GPU data back synchronously.
 * (Speculative = greedy on these backends is tests/browser/parity's; in Node it is checked on
 * this model too.)
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
 * New tokens of the one-token-per-forward greedy decode of the llama2.c files: its one-row cached
 * step, checked against the text's first tokens. The whole text is the drafted decode's: a
 * one-row forward costs ~0.5 s on WebGPU/SwiftShader (a forward over 8 drafted rows ~0.1 s), and
 * on WebGL each new cache length compiles a program or two the first time (~0.1 s). The Hugging
 * Face copy decodes the drafted text only: its loading is what that run checks.
 */
const GREEDY_TOKENS = 4;
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
        const request = { prompt: ref.prompt, greedyTokens: loader === 'hf' ? 0 : GREEDY_TOKENS, textIds: expectedIds };
        runs[loader] = await page.evaluate(([l, files, r]) => (globalThis as unknown as { llama: LlamaPage }).llama.run(l, files, r), [loader, FILES, request] as const);
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

    it(`llama2c loader: greedy decoding, one token per forward, reproduces the README text's first ${GREEDY_TOKENS} tokens`, () => {
      const run = result.runs.llama2c;
      const n = GREEDY_TOKENS;
      console.log(`${backend} llama2c: greedy ${run.greedy!.tokensPerSecond.toFixed(1)} tokens/s over ${n} tokens (SwiftShader, shaders compiled on the way)`);
      expect(run.prompt).toEqual(ref.promptIds);
      const greedy = run.greedy!;
      expect(greedy.tokens).toHaveLength(n);
      expect(greedy.forwards).toBe(n); // one token per forward
      expect([...run.prompt, ...greedy.tokens]).toEqual(expectedIds.slice(0, ref.promptIds.length + n));
    });

    it.each(LOADERS)('%s loader: drafting the README text, greedy acceptance writes the whole text', (loader) => {
      const run = result.runs[loader];
      console.log(`${backend} ${loader}: the drafted decode ${run.drafted.tokensPerSecond.toFixed(1)} tokens/s, ${run.drafted.forwards} forwards`);
      expect(run.prompt).toEqual(ref.promptIds);
      expect([...run.prompt, ...run.drafted.tokens]).toEqual(expectedIds);
      expect(run.text).toBe(ref.greedyText);
      // the drafts were kept: several tokens per forward (every one of them checked against the model's argmax)
      expect(run.drafted.forwards).toBeLessThan(run.drafted.tokens.length / 4);
    });

    it.each(LOADERS)('%s loader: no tensor leaks, no synchronous GPU readback, no page errors', (loader) => {
      const run = result.runs[loader];
      for (const d of [run.greedy, run.drafted].filter((x) => x !== null)) {
        expect(d.numTensors.after).toBe(d.numTensors.before);
        expect(d.syncDownloads).toBe(0);
      }
      expect(result.errors).toEqual([]);
    });
  });
});
