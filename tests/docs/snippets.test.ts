/**
 * Docs that run as written: every ```ts block in README.md and docs/*.md is executed against
 * the built package (npm test builds dist/ first), with `tfjs-mtp` resolved to dist/. A block
 * whose first line is `// not run: <reason>` is skipped (browser-only code, for instance).
 *
 * The blocks run one after another in one Node process (tests/docs/run_snippets.ts), each a
 * module of its own: a block fails on an error it throws or leaves unhandled, or on an error it
 * writes to stderr.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { RESULTS_MARKER, type SnippetResult } from './run_snippets.js';

const root = resolve(__dirname, '../..');
const run = promisify(execFile);

function snippets(file: string): { index: number; code: string }[] {
  const text = readFileSync(join(root, file), 'utf8');
  const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m, index) => ({ index, code: m[1] }));
  return blocks.filter((b) => !b.code.startsWith('// not run:'));
}

const files = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const cases = files.flatMap((file) => snippets(file).map((s) => ({ file, ...s, path: join(root, '.tmp', 'snippets', `${file.replace(/[/.]/g, '_')}_${s.index}.mts`) })));

describe('documentation snippets', () => {
  const results = new Map<string, SnippetResult>();

  beforeAll(async () => {
    mkdirSync(join(root, '.tmp', 'snippets'), { recursive: true });
    for (const { code, path } of cases) {
      const source = code
        .replaceAll("from 'tfjs-mtp/models'", `from '${join(root, 'dist/models.js')}'`)
        .replaceAll("from 'tfjs-mtp'", `from '${join(root, 'dist/index.js')}'`);
      writeFileSync(path, source);
    }
    const runner = join(root, 'tests/docs/run_snippets.ts');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', runner, ...cases.map((c) => c.path)], { cwd: root, timeout: 600_000, maxBuffer: 64 << 20 }).catch(
      (e: { stdout?: string; message: string }) => ({ stdout: e.stdout ?? `runner failed: ${e.message}` }),
    );
    const at = stdout.lastIndexOf(RESULTS_MARKER);
    if (at >= 0) for (const r of JSON.parse(stdout.slice(at + RESULTS_MARKER.length)) as SnippetResult[]) results.set(r.file, r);
  }, 600_000);

  it('finds snippets to run', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('$file block $index runs', ({ path }) => {
    const result = results.get(path);
    expect(result, 'the runner stopped before this block (see the log above)').toBeDefined();
    expect(result!.error ?? '', 'the error it threw').toBe('');
    expect(result!.stderr).not.toMatch(/Error/);
  });
});
