/**
 * esbuild bundling of browser entry points (test pages, the example). `tfjs-mtp` and
 * `tfjs-mtp/models` resolve to the TypeScript sources, so no build step is needed and a page
 * always runs the code under test; tfjs and its backends are bundled in from node_modules.
 *
 * Bundles are cached in the git-ignored `.tmp/browser/bundles/`, one file per entry and options,
 * with the size and modification time of every file that went into it: a bundle is reused only
 * while all of them are unchanged (the browser tests serve the example page from several files;
 * each bundle of it takes about a second).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Directory holding the wasm backend's binaries, to mount for `setWasmPaths`. */
export const WASM_DIR = join(ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');

/** Where bundles are cached. */
const CACHE_DIR = join(ROOT, '.tmp/browser/bundles');

/** A bundled page script. */
export interface PageBundle {
  /** The ES module source. */
  code: string;
  /** Its size in bytes. */
  bytes: number;
}

/** A cached bundle: its code and, per input file (absolute path), `size:mtimeMs` when it was built. */
interface CachedBundle {
  inputs: Record<string, string>;
  code: string;
}

/** `size:mtimeMs` of `path`, or null when it is gone. */
function stamp(path: string): string | null {
  try {
    const info = statSync(path);
    return `${info.size}:${info.mtimeMs}`;
  } catch {
    return null;
  }
}

/** The cached bundle at `file` if every one of its inputs is unchanged, else null. */
function readCache(file: string): string | null {
  let cached: CachedBundle;
  try {
    cached = JSON.parse(readFileSync(file, 'utf8')) as CachedBundle;
  } catch {
    return null;
  }
  return Object.entries(cached.inputs).every(([path, was]) => stamp(path) === was) ? cached.code : null;
}

/** Bundles `entry` (a path relative to the repo root or absolute) into one browser ES module. */
export async function bundlePage(entry: string, options: { minify?: boolean; sourcemap?: boolean } = {}): Promise<PageBundle> {
  const entryPath = resolve(ROOT, entry);
  const minify = options.minify ?? false;
  const sourcemap = options.sourcemap ?? false;
  // the key: the entry, the options and this file (the build settings below)
  const key = createHash('sha256').update(JSON.stringify({ entryPath, minify, sourcemap })).update(readFileSync(fileURLToPath(import.meta.url))).digest('hex').slice(0, 24);
  const file = join(CACHE_DIR, `${key}.json`);
  const hit = readCache(file);
  if (hit !== null) return { code: hit, bytes: Buffer.byteLength(hit) };
  const result = await build({
    entryPoints: [entryPath],
    bundle: true,
    write: false,
    metafile: true,
    absWorkingDir: ROOT,
    format: 'esm',
    platform: 'browser',
    target: 'es2022', // top-level await, as in the docs' page snippet
    minify,
    sourcemap: sourcemap ? 'inline' : false,
    logLevel: 'silent',
    alias: {
      'tfjs-mtp/models': join(ROOT, 'src/models/index.ts'),
      'tfjs-mtp': join(ROOT, 'src/index.ts'),
    },
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const code = result.outputFiles[0].text;
  const inputs: Record<string, string> = {};
  for (const input of Object.keys(result.metafile.inputs)) {
    const path = resolve(ROOT, input);
    const was = stamp(path);
    if (was !== null) inputs[path] = was;
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, JSON.stringify({ inputs, code } satisfies CachedBundle));
  renameSync(partial, file); // whole or absent, whoever reads it
  return { code, bytes: Buffer.byteLength(code) };
}
