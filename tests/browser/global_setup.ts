/**
 * Global setup of the browser tier (vitest.config.ts): one Chromium for every browser test file
 * (a Playwright browser server the files connect to) and one bundle of the test pages
 * (tests/browser/pages/all_pages.ts), instead of one of each per file. Both are handed to the
 * files with vitest's `provide`; tests/browser/harness.ts uses them. It also bundles the example
 * page (examples/browser/main.ts, as serve.ts does) into the bundle cache, which the files that
 * serve the example read instead of bundling it each. No Chromium installed: nothing
 * is provided, and the suites skip or fail as `browserSuiteEnabled` decides.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { TestProject } from 'vitest/node';
import { bundlePage, ROOT } from '../../tools/browser/bundle.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH, chromiumAvailable } from '../../tools/browser/chromium.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The shared Chromium's Playwright endpoint ('' when none was launched). */
    chromiumWsEndpoint: string;
    /** The file holding the bundle of tests/browser/pages/all_pages.ts ('' when none was built). */
    pagesBundle: string;
  }
}

/** The entry bundled once; harness.ts serves it for any of the pages it imports. */
export const ALL_PAGES_ENTRY = 'tests/browser/pages/all_pages.ts';
/** The example page's entry, bundled as examples/browser/serve.ts bundles it. */
const EXAMPLE_ENTRY = 'examples/browser/main.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (!chromiumAvailable()) {
    project.provide('chromiumWsEndpoint', '');
    project.provide('pagesBundle', '');
    return async () => {};
  }
  const [server, bundle] = await Promise.all([
    chromium.launchServer({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS }),
    bundlePage(ALL_PAGES_ENTRY),
    bundlePage(EXAMPLE_ENTRY, { minify: true }),
  ]);
  const file = join(ROOT, '.tmp', 'browser', 'all_pages.js');
  mkdirSync(join(ROOT, '.tmp', 'browser'), { recursive: true });
  writeFileSync(file, bundle.code);
  project.provide('chromiumWsEndpoint', server.wsEndpoint());
  project.provide('pagesBundle', file);
  return async () => {
    await server.close();
  };
}
