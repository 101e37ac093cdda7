/**
 * Node side of the browser suites: bundles a page entry, serves it (with the wasm binaries under
 * `/wasm/`) on 127.0.0.1, launches Chromium, and opens pages that fail the test on any page
 * error. One `BrowserHarness` per test file; `close()` in `afterAll`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { bundlePage, ROOT, WASM_DIR } from '../../tools/browser/bundle.js';
import { launchChromium } from '../../tools/browser/chromium.js';
import { startStaticServer, type StaticServer } from '../../tools/browser/server.js';

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

/** Bundles `entry`, serves it as `/page.js` under `index.html`, and launches Chromium. */
export async function startHarness(entry: string, options: HarnessOptions = {}): Promise<BrowserHarness> {
  const bundle = await bundlePage(entry);
  const html = `<!doctype html><meta charset="utf-8"><title>tfjs-mtp test page</title>${options.body ?? ''}<script type="module" src="/page.js"></script>`;
  const server: StaticServer = await startStaticServer({
    routes: { '/index.html': html, '/page.js': bundle.code },
    mounts: { '/wasm/': WASM_DIR, ...options.mounts },
  });
  let browser: Browser;
  try {
    browser = await launchChromium();
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
