/**
 * Node side of the browser suites: bundles a page entry, serves it (with the wasm binaries under
 * `/wasm/`) on 127.0.0.1, launches Chromium, and opens pages that fail the test on any page
 * error. One `BrowserHarness` per test file; `close()` in `afterAll`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { Browser, Page } from 'playwright-core';
import { defaultCheckpoint } from '../../examples/browser/serve.js';
import { saveCheckpoint } from '../../scripts/lib/checkpoint.js';
import { createTransformer } from '../../src/models/index.js';
import { bundlePage, WASM_DIR } from '../../scripts/browser/bundle.js';
import { launchChromium } from '../../scripts/browser/chromium.js';
import { startStaticServer, type StaticServer } from '../../scripts/browser/server.js';

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

/**
 * The committed checkpoint (fixtures/<name>/) when there is one; otherwise an untrained reference
 * transformer saved to a temporary directory, with a loud warning. `cleanup` removes the latter.
 */
export async function checkpointForTests(suite: string): Promise<{ dir: string; trained: boolean; cleanup: () => void }> {
  const committed = defaultCheckpoint();
  if (committed !== null) return { dir: committed, trained: true, cleanup: () => undefined };
  console.warn(`\n!!! ${suite}: no committed checkpoint under fixtures/; using an UNTRAINED transformer (expect τ ≈ 1).\n`);
  await tf.setBackend('cpu');
  const dir = mkdtempSync(join(tmpdir(), 'tfjs-mtp-ckpt-'));
  const model = createTransformer({ seed: 1 });
  await saveCheckpoint(model, dir);
  model.dispose();
  return { dir, trained: false, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
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
