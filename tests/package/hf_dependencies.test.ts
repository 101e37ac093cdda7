/**
 * `@huggingface/tokenizers` and `@huggingface/jinja` belong to the models subpath only: the built
 * root entry (`dist/index.js`, `dist/index.cjs` and every chunk they load) neither contains nor
 * imports them, so an app that brings its own model never loads them; `dist/models.*` imports
 * them as externals (dependencies, not bundled), and both of its builds run `loadHfTokenizer`
 * (the packages' ESM and CJS entry points) on the real llama2 file.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../tools/browser/bundle.js';

const run = promisify(execFile);
const HF_PACKAGES = ['@huggingface/tokenizers', '@huggingface/jinja'];
const LLAMA2 = resolve(ROOT, '../shared/tokenizers/llama2/tokenizer.json');

/** The built files an entry loads: itself and, transitively, the relative chunks it imports or requires. */
function loadedFiles(entry: string): Map<string, string> {
  const files = new Map<string, string>();
  const visit = (name: string) => {
    if (files.has(name)) return;
    const code = readFileSync(join(ROOT, 'dist', name), 'utf8');
    files.set(name, code);
    for (const [, chunk] of code.matchAll(/(?:from |require\()['"]\.\/([^'"]+)['"]/g)) visit(chunk!);
  };
  visit(entry);
  return files;
}

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist/index.js'))) {
    throw new Error('tests/package: dist/index.js is missing; run `npm run build` first (`npm test` does).');
  }
});

describe('the Hugging Face packages stay in the models subpath', () => {
  it.each(['index.js', 'index.cjs'])('dist/%s and its chunks neither contain nor import them', (entry) => {
    const files = loadedFiles(entry);
    for (const [name, code] of files) for (const pkg of HF_PACKAGES) expect(code.includes(pkg), `${name} mentions ${pkg}`).toBe(false);
  });

  it.each([
    ['models.js', /import \{[^}]*\} from '@huggingface\/(tokenizers|jinja)'/g],
    ['models.cjs', /require\('@huggingface\/(tokenizers|jinja)'\)/g],
  ])('dist/%s imports both as externals', (entry, pattern) => {
    const code = readFileSync(join(ROOT, 'dist', entry), 'utf8');
    expect([...code.matchAll(pattern)].map((m) => m[1]).sort()).toEqual(['jinja', 'tokenizers']);
    expect(code).not.toContain('var DictionarySplitter'); // the library's own code is not bundled in
  });

  it.runIf(existsSync(LLAMA2)).each([
    ['ESM', `import { loadHfTokenizer } from ${JSON.stringify(join(ROOT, 'dist/models.js'))}; import { readFileSync } from 'node:fs';`],
    ['CJS', `const { loadHfTokenizer } = require(${JSON.stringify(join(ROOT, 'dist/models.cjs'))}); const { readFileSync } = require('node:fs');`],
  ])('the %s build loads and runs a tokenizer', async (kind, header) => {
    const source = `${header}\nconst tok = loadHfTokenizer(readFileSync(${JSON.stringify(LLAMA2)}));\nconsole.log(JSON.stringify(tok.encode('Hello world')));`;
    const { stdout } = await run(process.execPath, [kind === 'ESM' ? '--input-type=module' : '--input-type=commonjs', '-e', source], { cwd: ROOT, timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual([1, 15043, 3186]);
  });
});
