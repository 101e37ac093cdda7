/**
 * Node side of the browser suites: bundles a page entry, serves it (with the wasm binaries under
 * `/wasm/`) on 127.0.0.1, launches Chromium, and opens pages that fail the test on any page
 * error. One `BrowserHarness` per test file; `close()` in `afterAll`.
 */
import type { Browser, Page } from 'playwright-core';
import { bundlePage, WASM_DIR } from '../../scripts/browser/bundle.js';
import { launchChromium } from '../../scripts/browser/chromium.js';
import { startStaticServer, type StaticServer } from '../../scripts/browser/server.js';

/** A served page bundle plus a browser. */
export interface BrowserHarness {
  readonly url: string;
  readonly bundleBytes: number;
  /** Opens the page, waits for `globalName` to be defined; page errors are collected in `errors`. */
  open(globalName: string): Promise<{ page: Page; errors: string[] }>;
  close(): Promise<void>;
}

/** Bundles `entry`, serves it as `/page.js` under a blank `index.html`, and launches Chromium. */
export async function startHarness(entry: string): Promise<BrowserHarness> {
  const bundle = await bundlePage(entry);
  const html = '<!doctype html><meta charset="utf-8"><title>tfjs-mtp test page</title><script type="module" src="/page.js"></script>';
  const server: StaticServer = await startStaticServer({ routes: { '/index.html': html, '/page.js': bundle.code }, mounts: { '/wasm/': WASM_DIR } });
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
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => {
        // ANGLE's "GL Driver Message … GPU stall due to ReadPixels" is a SwiftShader performance note on every
        // readback, async ones included; everything else a page warns about is a failure (e.g. tfjs-webgpu's
        // "synchronously reading data from GPU to CPU is poor" warning).
        if ((m.type() === 'error' || m.type() === 'warning') && !m.text().includes('GL Driver Message')) {
          errors.push(`console.${m.type()}: ${m.text()}`);
        }
      });
      await page.goto(server.url);
      await page.waitForFunction((name) => name in globalThis, globalName);
      return { page, errors };
    },
    async close() {
      await browser.close();
      await server.close();
    },
  };
}
