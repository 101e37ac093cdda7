/**
 * Chromium launcher shared by the browser tests and the example: the system Chromium (Debian's
 * `chromium` package) driven by playwright-core, headless, with WebGPU enabled. No GPU is needed:
 * WebGL2 and WebGPU run on SwiftShader (software), so keep browser workloads small.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Where the browser is; `CHROMIUM_PATH` overrides it. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Launch flags. `--enable-unsafe-webgpu` exposes `navigator.gpu` on Linux; the rest keep a
 * headless run quiet and offline. Never `--user-data-dir` (Playwright owns the profile) nor
 * `--use-angle=vulkan` (it breaks WebGL on SwiftShader).
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
  '--enable-unsafe-webgpu',
];

/** Whether the Chromium binary is installed. */
export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

/** Launches headless Chromium (throws with the install command when it is missing). */
export async function launchChromium(options: { headless?: boolean } = {}): Promise<Browser> {
  if (!chromiumAvailable()) {
    throw new Error(`launchChromium: no Chromium at ${CHROMIUM_PATH}; install it with \`apt-get update && apt-get install -y chromium\` or set CHROMIUM_PATH.`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: options.headless ?? true, args: CHROMIUM_ARGS });
}

/**
 * Decides whether a browser suite runs. Chromium present: true. Missing: a loud warning and
 * false (the suite skips) — except under CI (`process.env.CI` set), where it throws so that a
 * CI machine without the browser fails instead of passing silently.
 */
export function browserSuiteEnabled(suite: string): boolean {
  if (chromiumAvailable()) return true;
  const message = `${suite}: Chromium not found at ${CHROMIUM_PATH} (install: apt-get update && apt-get install -y chromium).`;
  if (process.env.CI) throw new Error(`${message} CI is set, so the browser suite fails instead of skipping.`);
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! SKIPPING BROWSER TESTS — ${message}\n${bar}\n`);
  return false;
}
