/**
 * The browser example with a Hugging Face folder (`npm run example:browser -- --hf <folder>
 * --hfHeads <file>`), in Chromium on webgl: a SmolLM2-shaped model with random weights on the
 * GPT-2 vocabulary, in two shards, with the GPT-2 tokenizer.json (read in place) and a
 * generation_config.json whose eos_token_id is the third token the model writes after the prompt.
 * The page loads the folder by URL with a draft-heads file written here (its first model entry: the
 * model's fresh mlp heads, exported; what is checked is that the page loads the file), encodes
 * the prompt with the tokenizer, decodes the same tokens node's greedy decoding gives and stops at
 * that EOS; the race of greedy, chain and tree is identical.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LaneResult } from '../../examples/browser/main.js';
import { startExampleServer } from '../../examples/browser/serve.js';
import { hfFolderFiles } from '../../src/cli/hf_folder.js';
import { greedyDecode } from '../../src/decoding/index.js';
import { CachedTransformer, exportDraftHeads, loadHfLlama, loadHfTokenizer } from '../../src/models/index.js';
import { browserSuiteEnabled } from '../../tools/browser/chromium.js';
import { useCpu } from '../helpers/backend.js';
import { GPT2_TOKENIZER_DIR, gpt2Available, randomWeights, SMOL_GPT2, writeHfFolder } from '../helpers/hf_models.js';
import { checkpointForTests, openBrowser } from './harness.js';

const SUITE = 'tests/browser/example_hf';
const PROMPT = 'Hello world, this is';
/** The model stops after this many tokens: its EOS is set to the token it writes there. */
const STOP_AFTER = 3;

describe.skipIf(!browserSuiteEnabled(SUITE) || !gpt2Available(SUITE))('browser example with a Hugging Face folder (Chromium, webgl)', () => {
  let tmp: string;
  let server: Awaited<ReturnType<typeof startExampleServer>>;
  let browser: Browser;
  let page: Page;
  let expected: { promptIds: number[]; tokens: number[] };
  const errors: string[] = [];

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'tfjs-mtp-page-hf-'));
    const dir = writeHfFolder(join(tmp, 'smol-gpt2'), { hf: SMOL_GPT2.hf, weights: randomWeights(SMOL_GPT2.config, 21), shards: 2 });
    // node: a draft-heads file for the folder, and its greedy continuation (cpu)
    await useCpu();
    const tokenizer = loadHfTokenizer(readFileSync(join(GPT2_TOKENIZER_DIR, 'tokenizer.json')));
    const promptIds = tokenizer.encode(PROMPT);
    const { model } = await loadHfLlama(hfFolderFiles(dir), { mtpHeads: 3, headKind: 'mlp', headHiddenSize: 8 });
    const heads = await exportDraftHeads(model); // training them on cpu takes seconds at this vocabulary (50257)
    const cached = new CachedTransformer(model);
    const greedy = await greedyDecode(cached, promptIds, { maxNewTokens: 8, stopTokens: [] });
    cached.dispose();
    model.dispose();
    const eos = greedy.tokens[STOP_AFTER - 1]!;
    expect(greedy.tokens.slice(0, STOP_AFTER - 1)).not.toContain(eos); // it first appears there
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 50256, eos_token_id: eos }));
    writeFileSync(join(tmp, 'heads.bin'), heads);
    expected = { promptIds, tokens: greedy.tokens.slice(0, STOP_AFTER) };

    [server, browser] = await Promise.all([startExampleServer({ checkpoint: checkpointForTests(SUITE), hf: dir, hfHeads: [join(tmp, 'heads.bin')] }), openBrowser()]);
    page = await browser.newPage();
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
    });
    await page.goto(server.url);
    await page.waitForFunction(() => /^(Ready on webgl|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 120_000 });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('lists the folder with its heads file first, then without; loads it by URL with the heads', async () => {
    expect(server.models.map((m) => `${m.kind}:${m.name}`)).toEqual(['hf:smol-gpt2 + heads', 'hf:smol-gpt2', 'layers:tslib-k4']);
    expect(await page.textContent('#status')).toMatch(/^Ready on webgl/);
    const info = (await page.textContent('#model-info')) ?? '';
    expect(info).toContain('smol-gpt2 + heads:');
    expect(info).toContain('k = 3 heads (trained draft heads heads.bin)');
    expect(info).toContain('vocabulary 50257 (BPE, tokenizer.json), context 256 tokens');
  });

  it("generates from the prompt as tokenizer.json encodes it, node's greedy tokens, and stops at generation_config.json's EOS", async () => {
    await page.fill('#prompt', PROMPT);
    await page.fill('#max-new', '12');
    await page.click('#generate');
    await page.waitForFunction(() => /^(Done|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 120_000 });
    expect(await page.textContent('#status')).toMatch(new RegExp(`^Done: ${STOP_AFTER} tokens in \\d+ forwards .* on webgl\\.$`));
    expect(await page.textContent('#output .prompt')).toBe(PROMPT);
    const tokens = await page.$$eval('#output .t', (spans) => spans.map((s) => Number((s as HTMLElement).dataset.token)));
    expect(tokens).toEqual(expected.tokens);
  });

  it('races greedy, chain and tree with the heads: identical outputs, stopped at the EOS', async () => {
    await page.fill('#max-new', '12');
    await page.click('#race');
    await page.waitForFunction(() => /^(Race done|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 180_000 });
    expect(await page.textContent('#status')).toBe('Race done on webgl.');
    const rows = JSON.parse((await page.getAttribute('#race-table', 'data-results')) ?? '[]') as LaneResult[];
    expect(rows.map((r) => [r.lane, r.tokens, r.identical])).toEqual([
      ['greedy', STOP_AFTER, true],
      ['chain', STOP_AFTER, true],
      ['tree', STOP_AFTER, true],
    ]);
    expect(errors).toEqual([]);
  });
});
