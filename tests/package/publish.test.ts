/**
 * The published package is what it claims: publint (strict) and Are-The-Types-Wrong find
 * nothing, and the tarball holds the build, its types and the docs — and no tests, sources or
 * fixtures. One `npm pack` of the built package (`npm test` builds `dist/` first) serves all three:
 * publint reads that tarball in this process, attw's CLI reads it from disk.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../tools/browser/bundle.js';

const run = promisify(execFile);

/** Runs a CLI from node_modules/.bin in the repo; resolves with its exit code and output. */
async function cli(command: string, args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(join(ROOT, 'node_modules/.bin', command), args, { cwd: ROOT, maxBuffer: 64 << 20, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

let dir: string; // holds the tarball
let tarball: string;
let pack: { files: { path: string }[]; size: number; unpackedSize: number };

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist/index.js'))) {
    throw new Error('tests/package: dist/index.js is missing; run `npm run build` first (`npm test` does).');
  }
  dir = mkdtempSync(join(tmpdir(), 'tfjs-mtp-publish-'));
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, maxBuffer: 64 << 20 });
  const [packed] = JSON.parse(stdout) as [typeof pack & { filename: string }];
  pack = packed;
  tarball = join(dir, packed.filename);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('publishing', () => {
  it('publint (strict) reports nothing', async () => {
    const bytes = readFileSync(tarball);
    const { messages, pkg } = await publint({ pack: { tarball: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) }, strict: true, level: 'suggestion' });
    const lines = messages.map((m) => `${m.type}: ${formatMessage(m, pkg, { color: false }) ?? m.code}`);
    console.log(lines.length === 0 ? 'publint: no messages' : lines.join('\n'));
    expect(lines).toEqual([]);
  });

  it('attw finds no type resolution problem in any entry point of the tarball', async () => {
    const { code, output } = await cli('attw', [tarball, '--format', 'json']);
    const report = JSON.parse(output.slice(output.indexOf('{'))) as {
      analysis: { problems: unknown[]; entrypoints: Record<string, unknown> };
    };
    console.log(`attw entry points: ${Object.keys(report.analysis.entrypoints).join(', ')}`);
    expect(Object.keys(report.analysis.entrypoints)).toEqual(['.', './models', './package.json']);
    expect(report.analysis.problems).toEqual([]);
    expect(code).toBe(0);
  });

  it('npm pack ships dist, types, README, CHANGELOG and LICENSE, and no tests, sources or fixtures', async () => {
    const files = pack.files.map((f) => f.path).sort();
    console.log(`npm pack: ${files.length} files, ${pack.size} B packed, ${pack.unpackedSize} B unpacked\n  ${files.join('\n  ')}`);
    for (const required of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE']) expect(files).toContain(required);
    for (const entry of ['index', 'models']) {
      for (const ext of ['js', 'cjs', 'd.ts', 'd.cts']) expect(files).toContain(`dist/${entry}.${ext}`);
    }
    expect(files.filter((f) => !['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE'].includes(f) && !f.startsWith('dist/'))).toEqual([]);
    expect(files.filter((f) => /(^|\/)(tests?|src|fixtures|examples|scripts|bench)\/|\.test\.|\.tgz$/.test(f))).toEqual([]);
  });
});
