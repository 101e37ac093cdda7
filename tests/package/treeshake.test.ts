/**
 * The package is tree-shakeable, as `"sideEffects": false` claims: an app that imports only the
 * decoder gets no layer classes (although both use src/internal/errors.ts, so they share a chunk
 * of dist/: no layer module has a load-time side effect), an app that imports only the layer gets
 * no decoder, and an app that imports only the loss gets neither. Bundles
 * are made by esbuild from the *built* package (`dist/`, resolved through `exports` exactly as an
 * app would see it), with tfjs external; sizes are printed for the record.
 */
import { build, type BuildOptions, type Metafile } from 'esbuild';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../tools/browser/bundle.js';

/** Source of a layer class, by the names that would appear in its code. */
const LAYER_MARKERS = ['MultiTokenHead', 'SharedUnembedding', 'LightweightOffsetHead'];
/** Source of the decoders: each decoder names itself in its argument errors. */
const DECODER_MARKERS = ['speculativeDecode', 'greedyDecode', 'blockwiseDecode', 'fromLayersModel', 'speculativeLoop'];

interface AppBundle {
  code: string;
  minifiedBytes: number;
  metafile: Metafile;
}

let app: string; // a temporary app directory whose node_modules/tfjs-mtp links to the repo

/** Bundles `source` as an app entry; returns the readable bundle and the minified size. */
async function bundleApp(name: string, source: string): Promise<AppBundle> {
  const entry = join(app, `${name}.js`);
  writeFileSync(entry, source);
  const common: BuildOptions = {
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    external: ['@tensorflow/*'],
    logLevel: 'silent',
  };
  const readable = await build({ ...common, write: false, metafile: true });
  const minified = await build({ ...common, write: false, minify: true });
  return { code: readable.outputFiles[0].text, minifiedBytes: minified.outputFiles[0].contents.byteLength, metafile: readable.metafile };
}

/** `input: bytes in output` lines of a metafile (esbuild's paths: relative to the repo, the working directory). */
function inputs(metafile: Metafile): string {
  const [output] = Object.values(metafile.outputs);
  return Object.entries(output.inputs)
    .map(([path, { bytesInOutput }]) => `    ${path.startsWith('..') ? `<app>/${basename(path)}` : path}: ${bytesInOutput} B`)
    .join('\n');
}

function found(code: string, markers: readonly string[]): string[] {
  return markers.filter((m) => code.includes(m));
}

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist/index.js'))) {
    throw new Error('tests/package: dist/index.js is missing; run `npm run build` first (`npm test` does).');
  }
  app = mkdtempSync(join(tmpdir(), 'tfjs-mtp-app-'));
  mkdirSync(join(app, 'node_modules'));
  symlinkSync(ROOT, join(app, 'node_modules/tfjs-mtp'), 'dir');
});

afterAll(() => {
  if (app) rmSync(app, { recursive: true, force: true });
});

describe('tree-shaking of the built package (esbuild, tfjs external)', () => {
  it('an app importing only speculativeDecode bundles no layer classes', async () => {
    const b = await bundleApp('decode_only', "import { speculativeDecode } from 'tfjs-mtp';\nexport const run = speculativeDecode;\n");
    console.log(`speculativeDecode only: ${b.code.length} B readable, ${b.minifiedBytes} B minified\n${inputs(b.metafile)}`);
    expect(b.code).toContain('speculativeDecode'); // the import really resolved to the package
    expect(found(b.code, LAYER_MARKERS)).toEqual([]);
  });

  it('an app importing only MultiTokenHead bundles no decoder', async () => {
    const b = await bundleApp('layer_only', "import { MultiTokenHead } from 'tfjs-mtp';\nexport const Head = MultiTokenHead;\n");
    console.log(`MultiTokenHead only: ${b.code.length} B readable, ${b.minifiedBytes} B minified\n${inputs(b.metafile)}`);
    expect(b.code).toContain('MultiTokenHead');
    expect(found(b.code, DECODER_MARKERS)).toEqual([]);
  });

  it('an app importing only multiTokenLoss bundles no layer class and no decoder', async () => {
    const b = await bundleApp('loss_only', "import { multiTokenLoss } from 'tfjs-mtp';\nexport const loss = multiTokenLoss;\n");
    console.log(`multiTokenLoss only: ${b.code.length} B readable, ${b.minifiedBytes} B minified\n${inputs(b.metafile)}`);
    expect(b.code).toContain('multiTokenLoss');
    expect(found(b.code, [...LAYER_MARKERS, ...DECODER_MARKERS])).toEqual([]);
  });

  it('the whole package, for comparison, contains both', async () => {
    const b = await bundleApp('everything', "export * from 'tfjs-mtp';\n");
    console.log(`everything from 'tfjs-mtp': ${b.code.length} B readable, ${b.minifiedBytes} B minified`);
    expect(found(b.code, LAYER_MARKERS)).toEqual(LAYER_MARKERS);
    expect(found(b.code, DECODER_MARKERS)).toEqual(DECODER_MARKERS);
  });
});
