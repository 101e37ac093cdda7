/**
 * Docs that run as written: every ```ts block in README.md and docs/*.md is executed against
 * the built package (npm test builds dist/ first), with `tfjs-mtp` resolved to dist/. A block
 * whose first line is `// not run: <reason>` is skipped (browser-only code, for instance).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');
const run = promisify(execFile);

function snippets(file: string): { index: number; code: string }[] {
  const text = readFileSync(join(root, file), 'utf8');
  const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m, index) => ({ index, code: m[1] }));
  return blocks.filter((b) => !b.code.startsWith('// not run:'));
}

const files = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const cases = files.flatMap((file) => snippets(file).map((s) => ({ file, ...s })));

describe('documentation snippets', () => {
  it('finds snippets to run', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('$file block $index runs', async ({ file, index, code }) => {
    const dir = join(root, '.tmp', 'snippets');
    mkdirSync(dir, { recursive: true });
    const source = code
      .replaceAll("from 'tfjs-mtp/models'", `from '${join(root, 'dist/models.js')}'`)
      .replaceAll("from 'tfjs-mtp'", `from '${join(root, 'dist/index.js')}'`);
    const path = join(dir, `${file.replace(/[/.]/g, '_')}_${index}.mts`);
    writeFileSync(path, source);
    const { stderr } = await run(process.execPath, ['--import', 'tsx', path], { cwd: root, timeout: 240_000 });
    expect(stderr).not.toMatch(/Error/);
  });
});
