/**
 * esbuild bundling of browser entry points (test pages, the example). `tfjs-mtp` and
 * `tfjs-mtp/models` resolve to the TypeScript sources, so no build step is needed and a page
 * always runs the code under test; tfjs and its backends are bundled in from node_modules.
 */
import { build } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Directory holding the wasm backend's binaries, to mount for `setWasmPaths`. */
export const WASM_DIR = join(ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');

/** A bundled page script. */
export interface PageBundle {
  /** The ES module source. */
  code: string;
  /** Its size in bytes. */
  bytes: number;
}

/** Bundles `entry` (a path relative to the repo root or absolute) into one browser ES module. */
export async function bundlePage(entry: string, options: { minify?: boolean; sourcemap?: boolean } = {}): Promise<PageBundle> {
  const result = await build({
    entryPoints: [resolve(ROOT, entry)],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022', // top-level await, as in the docs' page snippet
    minify: options.minify ?? false,
    sourcemap: options.sourcemap ? 'inline' : false,
    logLevel: 'silent',
    alias: {
      'tfjs-mtp/models': join(ROOT, 'src/models/index.ts'),
      'tfjs-mtp': join(ROOT, 'src/index.ts'),
    },
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const code = result.outputFiles[0].text;
  return { code, bytes: Buffer.byteLength(code) };
}
