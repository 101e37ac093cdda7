/**
 * Node side of the browser suites: bundles a page entry, serves it (with the wasm binaries under
 * `/wasm/`) on 127.0.0.1, opens Chromium, and opens pages that fail the test on any page error.
 * One `BrowserHarness` per test file; `close()` in `afterAll`.
 *
 * In the browser tier, Chromium and the bundle of the test pages come from the tier's global
 * setup (tests/browser/global_setup.ts): the harness connects to the one Chromium (closing only
 * disconnects) and serves the one bundle for any page it holds. Otherwise it launches and bundles
 * its own.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { inject } from 'vitest';
import { bundlePage, ROOT, WASM_DIR } from '../../tools/browser/bundle.js';
import { launchChromium } from '../../tools/browser/chromium.js';
import { startStaticServer, type StaticServer } from '../../tools/browser/server.js';

/** The page entries tests/browser/pages/all_pages.ts bundles (served from the tier's one bundle). */
const IN_ALL_PAGES = ['tests/browser/pages/parity_page.ts', 'tests/browser/pages/llama_page.ts', 'tests/browser/pages/tree_webgl_page.ts'];

/** The page script for `entry`: the tier's bundle when it holds the page, else a bundle of its own. */
async function pageScript(entry: string): Promise<{ code: string; bytes: number }> {
  const shared = inject('pagesBundle');
  if (shared && IN_ALL_PAGES.includes(relative(ROOT, resolve(ROOT, entry)).split('\\').join('/'))) {
    const code = readFileSync(shared, 'utf8');
    return { code, bytes: Buffer.byteLength(code) };
  }
  return bundlePage(entry);
}

/**
 * The tier's Chromium when there is one (connected: `close()` disconnects), else a Chromium of
 * this file's own (`close()` ends it).
 */
export async function openBrowser(): Promise<Browser> {
  const endpoint = inject('chromiumWsEndpoint');
  return endpoint ? chromium.connect(endpoint) : launchChromium();
}

/** A served page bundle plus a browser. */
export interface BrowserHarness {
  readonly url: string;
  readonly bundleBytes: number;
  /**
   * Opens the page, waits for `globalName` to be defined (if given); page errors and warnings are
   * collected in `errors`, every console message in `logs`.
   */
  open(globalName?: string): Promise<{ page: Page; errors: string[]; logs: string[] }>;
  close(): Promise<void>;
}

/** The committed checkpoint the browser suites decode with. */
export const TEST_CHECKPOINT = join(ROOT, 'fixtures/tslib-k4');

/**
 * The committed checkpoint directory (fixtures/tslib-k4/, `model.json` + `weights.bin`). It is
 * required: throws, naming `suite`, when either file is missing.
 */
export function checkpointForTests(suite: string): string {
  const missing = ['model.json', 'weights.bin'].filter((file) => !existsSync(join(TEST_CHECKPOINT, file)));
  if (missing.length > 0) {
    throw new Error(
      `${suite}: the committed checkpoint is missing (${missing.map((file) => join(TEST_CHECKPOINT, file)).join(', ')}); ` +
        'restore fixtures/tslib-k4/ from git (e.g. `git checkout -- fixtures/tslib-k4`) or retrain it with `npm run train`.',
    );
  }
  return TEST_CHECKPOINT;
}

/** Options of {@link startHarness}. */
export interface HarnessOptions {
  /** Body of the served `index.html` (before the page script). */
  body?: string;
  /** Extra directories to serve, as in `startStaticServer`. */
  mounts?: Record<string, string>;
}

/** Bundles `entry` (or takes the tier's bundle), serves it as `/page.js` under `index.html`, and opens Chromium. */
export async function startHarness(entry: string, options: HarnessOptions = {}): Promise<BrowserHarness> {
  const bundle = await pageScript(entry);
  const html = `<!doctype html><meta charset="utf-8"><title>tfjs-mtp test page</title>${options.body ?? ''}<script type="module" src="/page.js"></script>`;
  const server: StaticServer = await startStaticServer({
    routes: { '/index.html': html, '/page.js': bundle.code },
    mounts: { '/wasm/': WASM_DIR, ...options.mounts },
  });
  let browser: Browser;
  try {
    browser = await openBrowser();
  } catch (error) {
    await server.close();
    throw error;
  }
  return {
    url: server.url,
    bundleBytes: bundle.bytes,
    async open(globalName) {
      const page = await browser.newPage();
      const errors: string[] = [];
      const logs: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => {
        logs.push(m.text());
        // ANGLE's "GL Driver Message … GPU stall due to ReadPixels" is a SwiftShader performance note on every
        // readback, async ones included; everything else a page warns about is a failure (e.g. tfjs-webgpu's
        // "synchronously reading data from GPU to CPU is poor" warning).
        if ((m.type() === 'error' || m.type() === 'warning') && !m.text().includes('GL Driver Message')) {
          errors.push(`console.${m.type()}: ${m.text()}`);
        }
      });
      await page.goto(server.url);
      if (globalName !== undefined) await page.waitForFunction((name) => name in globalThis, globalName);
      return { page, errors, logs };
    },
    async close() {
      await browser.close();
      await server.close();
    },
  };
}
