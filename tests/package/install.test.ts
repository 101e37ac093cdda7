/**
 * The package installs the ways the README's Install section says, into an empty app that brings
 * its own tfjs (tfjs-core, tfjs-layers and the cpu backend, from the registry through npm's
 * cache), and works there from ESM and from CommonJS: a small model built with the package's
 * `multiTokenHead` tied to the app's embedding, greedy and speculative decoding (identical
 * tokens), `parameterReport`, and the `tfjs-mtp/models` subpath.
 *
 * - The tarball: `npm pack` of this checkout, then `npm install <file>.tgz`.
 * - Git: `npm install git+file://<clone>`, where the clone is this checkout as it stands (HEAD plus
 *   the working tree's changes, committed in the temporary clone only; one commit deep, so each of
 *   npm's own clones of it copies one tree, not the history). npm clones it, installs its
 *   devDependencies, runs `prepare` (which builds `dist/`) and installs what `npm pack` gives.
 * - A link (`npm install ../tfjs-mtp`, here the symlink npm would make) resolves tfjs from the
 *   checkout's own node_modules: a second copy of tfjs-layers, which the package names.
 *
 * One temporary app serves all three, one install after another. The tarball is packed with
 * `--ignore-scripts` from the `dist/` that `npm test` builds first.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../tools/browser/bundle.js';

const run = promisify(execFile);

/**
 * The environment of the npm and node processes: without the `npm_*` variables that `npm test`
 * sets for its own run (they would steer the inner npm: its project, its command), keeping the
 * settings that say where the cache and the registry are.
 */
const KEEP = /^npm_config_(cache|registry|userconfig|globalconfig|proxy|https_proxy|noproxy|strict_ssl|cafile|ca)$/i;
const ENV = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key) || KEEP.test(key)));
/** npm flags of every install: reuse the cache, skip the network round trips that add nothing here. */
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];

/** The tfjs version this checkout develops against, installed into the app. */
const TFJS = (JSON.parse(readFileSync(join(ROOT, 'node_modules/@tensorflow/tfjs-core/package.json'), 'utf8')) as { version: string }).version;

/** The app's program, after its imports: the README's quick start in miniature; prints one JSON line. */
const PROGRAM = `
async function main() {
  await tf.setBackend('cpu');
  const V = 16, D = 8, k = 3;
  const ids = tfl.input({ shape: [null], dtype: 'int32' });
  const embed = tfl.layers.embedding({ inputDim: V, outputDim: D });
  const hidden = tfl.layers.dense({ units: D, activation: 'tanh' }).apply(embed.apply(ids));
  const logits = multiTokenHead({ numHeads: k, vocabSize: V, tiedTo: embed }).apply(hidden); // [batch, seq, k, V]
  const mtp = fromLayersModel(tfl.model({ inputs: ids, outputs: logits }));
  const greedy = await greedyDecode(mtp, [1, 2, 3], { maxNewTokens: 8 });
  const fast = await speculativeDecode(mtp, [1, 2, 3], { maxNewTokens: 8 });
  return {
    backend: tf.getBackend(),
    tokens: greedy.tokens.length,
    same: fast.tokens.join() === greedy.tokens.join(),
    shared: parameterReport({ vocabSize: 32000, hiddenSize: 4096, numHeads: 4 }).shared,
    bytes: Array.from(byteTokenizer.encode('hi')),
  };
}
main().then(
  (result) => console.log(JSON.stringify(result)),
  (error) => console.log(JSON.stringify({ error: error.message })),
);
`;

const ESM = `import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { fromLayersModel, greedyDecode, multiTokenHead, parameterReport, speculativeDecode } from 'tfjs-mtp';
import { byteTokenizer } from 'tfjs-mtp/models';
${PROGRAM}`;

const CJS = `require('@tensorflow/tfjs-backend-cpu');
const tf = require('@tensorflow/tfjs-core');
const tfl = require('@tensorflow/tfjs-layers');
const { fromLayersModel, greedyDecode, multiTokenHead, parameterReport, speculativeDecode } = require('tfjs-mtp');
const { byteTokenizer } = require('tfjs-mtp/models');
${PROGRAM}`;

/** What the app prints when it works (the README's table: 181,415,936 shared parameters). */
const WORKS = { backend: 'cpu', tokens: 8, same: true, shared: 181_415_936, bytes: [104, 105] };

let base: string; // the temporary directory: the app, the tarball, the clone
let app: string;

async function npm(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('npm', args, { cwd, env: ENV, maxBuffer: 64 << 20 });
  return stdout;
}

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', args, { cwd, env: ENV, maxBuffer: 64 << 20 });
  return stdout;
}

/** Runs the app's ESM and CJS programs; returns what each printed. */
async function runApp(): Promise<{ esm: unknown; cjs: unknown }> {
  const [esm, cjs] = await Promise.all(
    ['main.mjs', 'main.cjs'].map(async (file) => {
      const { stdout } = await run(process.execPath, [file], { cwd: app, env: ENV });
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as unknown;
    }),
  );
  return { esm, cjs };
}

/**
 * A clone of this checkout as it stands: `git clone --depth 1` (HEAD), then the working tree's
 * modified, added and deleted files applied and committed in the clone. Nothing in this checkout
 * changes.
 */
async function cloneCheckout(dest: string): Promise<void> {
  await git(base, 'clone', '--quiet', '--depth', '1', pathToFileURL(ROOT).href, dest); // a file:// URL: git ignores --depth for a plain path
  const list = async (...flags: string[]) => (await git(ROOT, 'ls-files', '-z', ...flags)).split('\0').filter((f) => f !== '');
  const deleted = new Set(await list('--deleted'));
  for (const file of await list('--modified', '--others', '--exclude-standard')) {
    if (deleted.has(file)) continue;
    mkdirSync(dirname(join(dest, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(dest, file));
  }
  for (const file of deleted) rmSync(join(dest, file), { force: true });
  await git(dest, 'add', '--all');
  await git(dest, '-c', 'user.name=tfjs-mtp tests', '-c', 'user.email=tests@invalid', 'commit', '--quiet', '--allow-empty', '-m', 'the working tree');
}

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist/index.js'))) {
    throw new Error('tests/package: dist/index.js is missing; run `npm run build` first (`npm test` does).');
  }
  base = mkdtempSync(join(tmpdir(), 'tfjs-mtp-install-'));
  app = join(base, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  writeFileSync(join(app, 'main.mjs'), ESM);
  writeFileSync(join(app, 'main.cjs'), CJS);
  await npm(app, 'install', ...NPM_FLAGS, `@tensorflow/tfjs-core@${TFJS}`, `@tensorflow/tfjs-layers@${TFJS}`, `@tensorflow/tfjs-backend-cpu@${TFJS}`);
});

afterAll(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('installing tfjs-mtp into an app', () => {
  it('from a packed tarball (npm pack, then npm install <file>.tgz): ESM and CJS imports decode', async () => {
    const [{ filename }] = JSON.parse(await npm(ROOT, 'pack', '--json', '--ignore-scripts', '--pack-destination', base)) as [{ filename: string }];
    await npm(app, 'install', ...NPM_FLAGS, join(base, filename));
    expect(existsSync(join(app, 'node_modules/tfjs-mtp/dist/index.js'))).toBe(true);
    expect(await runApp()).toEqual({ esm: WORKS, cjs: WORKS });
  });

  it('from git (npm install git+file://<clone>): prepare builds dist/, and ESM and CJS imports decode', async () => {
    const clone = join(base, 'tfjs-mtp');
    await cloneCheckout(clone);
    expect(existsSync(join(clone, 'dist'))).toBe(false); // dist/ is not in git: prepare must build it
    await npm(app, 'install', ...NPM_FLAGS, `git+${pathToFileURL(clone).href}`);
    const installed = join(app, 'node_modules/tfjs-mtp');
    const manifest = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(manifest.dependencies['tfjs-mtp']).toBe(`git+${pathToFileURL(clone).href}`);
    for (const file of ['dist/index.js', 'dist/index.cjs', 'dist/models.js', 'dist/models.cjs', 'dist/index.d.ts']) expect(existsSync(join(installed, file)), file).toBe(true);
    expect(existsSync(join(installed, 'src'))).toBe(false); // what npm pack ships, not the checkout
    expect(await runApp()).toEqual({ esm: WORKS, cjs: WORKS });
  });

  it('prepare without devDependencies (no tsup) leaves dist/ unbuilt with a warning and exits 0', async () => {
    const clone = join(base, 'tfjs-mtp'); // the previous test's clone: no node_modules of its own
    expect(existsSync(join(clone, 'node_modules'))).toBe(false);
    const { stdout, stderr } = await run('npm', ['run', 'prepare'], { cwd: clone, env: ENV });
    expect(stdout + stderr).toContain('tfjs-mtp prepare: dist/ is not built: tsup is missing (devDependencies not installed); run npm install, then npm run build');
    expect(existsSync(join(clone, 'dist'))).toBe(false);
  });

  it('linked (npm install ../tfjs-mtp): the second copy of tfjs-layers is named in the error', async () => {
    const link = join(app, 'node_modules/tfjs-mtp');
    rmSync(link, { recursive: true, force: true });
    symlinkSync(ROOT, link, 'dir'); // what npm install <directory> makes
    const error = {
      error:
        `SharedUnembedding: tiedTo is a layer (Embedding) from another copy of @tensorflow/tfjs-layers (version unknown; this package uses ${TFJS}): ` +
        'install one copy (npm dedupe, or list tfjs as peer dependencies; a linked checkout of tfjs-mtp brings its own: install its `npm pack` tarball instead).',
    };
    expect(await runApp()).toEqual({ esm: error, cjs: error });
  });
});
