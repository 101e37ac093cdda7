/**
 * The browser snippet in docs/browser.md runs as written, in Chromium on webgl: its first ```ts
 * block is bundled (with `tfjs-mtp` resolved to the sources), served next to the committed
 * checkpoint (fixtures/tslib-k4, required) under `checkpoint/`, and must write text into
 * `#output` and log τ — without page errors. (The docs snippet runner in tests/docs skips it: it
 * is marked `// not run` there because it needs a page.)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../tools/browser/bundle.js';
import { browserSuiteEnabled } from '../../tools/browser/chromium.js';
import { checkpointForTests, startHarness, type BrowserHarness } from './harness.js';

/** The first ```ts block of docs/browser.md. */
function pageSnippet(): string {
  const text = readFileSync(join(ROOT, 'docs/browser.md'), 'utf8');
  const block = /^```ts\n([\s\S]*?)^```$/m.exec(text);
  if (block === null) throw new Error('docs/browser.md: no ```ts block found.');
  return block[1];
}

describe.skipIf(!browserSuiteEnabled('tests/browser/docs'))('docs/browser.md page snippet (Chromium, webgl)', () => {
  let harness: BrowserHarness;

  beforeAll(async () => {
    const checkpoint = checkpointForTests('tests/browser/docs');
    const entry = join(ROOT, '.tmp', 'browser-docs-snippet.ts');
    mkdirSync(join(ROOT, '.tmp'), { recursive: true });
    const source = `export {};\n${pageSnippet()}`;
    if (!existsSync(entry) || readFileSync(entry, 'utf8') !== source) writeFileSync(entry, source); // unchanged: the cached bundle of it stays valid
    harness = await startHarness(entry, { body: '<pre id="output"></pre>', mounts: { '/checkpoint/': checkpoint } });
  }, 300_000);

  afterAll(async () => {
    await harness?.close();
  });

  it('streams text into #output and logs τ', async () => {
    const { page, errors, logs } = await harness.open();
    await page.waitForEvent('console', { predicate: (m) => m.text().startsWith('τ = '), timeout: 240_000 });
    const text = (await page.textContent('#output')) ?? '';
    console.log(`docs snippet: ${logs.find((l) => l.startsWith('τ = '))}; output ${JSON.stringify(text.slice(0, 60))}…`);
    expect(text.length).toBeGreaterThan(0);
    expect(logs.find((l) => l.startsWith('τ = '))).toMatch(/^τ = \d\.\d\d tokens per forward$/);
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);
});
