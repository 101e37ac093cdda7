/**
 * The package's `tfjs-mtp` command, as built (`npm test` builds `dist/` first): `train-heads
 * --help` lists the flags; a tiny run on stories260K writes heads.bin, which `loadLlama2c`
 * attaches and which decodes exactly as greedy, and training.json; a bad flag exits 2 naming it;
 * without any tfjs backend installed it exits 1 naming the npm command that installs one.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { CachedTransformer, loadLlama2c } from '../../src/models/index.js';
import { readDraftHeads } from '../../src/models/draft_heads.js';
import { useCpu } from '../helpers/backend.js';
import { readStories, STORIES_DIR, storiesAvailable, storiesReference } from '../helpers/stories.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(ROOT, 'dist/cli.js');
const run = promisify(execFile);

/** Runs the built command; resolves to its exit code and output (a failing exit does not throw). */
async function tfjsMtp(args: string[], cli = CLI): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { cwd: ROOT, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('tfjs-mtp train-heads (dist/cli.js)', () => {
  let out: string;
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error('tests/training: dist/cli.js is missing; run `npm run build` first (`npm test` does).');
    out = mkdtempSync(join(tmpdir(), 'tfjs-mtp-cli-'));
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('is the package bin, an executable ESM file for node', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin).toEqual({ 'tfjs-mtp': './dist/cli.js' });
    expect(readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('--help lists the subcommand and its flags', async () => {
    const top = await tfjsMtp(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('train-heads');
    const help = await tfjsMtp(['train-heads', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/usage: tfjs-mtp train-heads --model <folder or \.bin> --out <dir>/);
    for (const flag of ['--model', '--out', '--kind <mlp|sequential>', '--seconds', '--steps', '--draft-vocab', '--batch-size', '--learning-rate', '--top-k', '--feed <truth|drafts>', '--backend <wasm|cpu>']) expect(help.stdout).toContain(flag);
  });

  it('a bad command line exits 2 naming the flag', async () => {
    const bad = await tfjsMtp(['train-heads', '--model', STORIES_DIR, '--out', out, '--steps', '1.5']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('tfjs-mtp train-heads: --steps must be an integer, but got 1.5.');
    const unknown = await tfjsMtp(['train-heads', '--modle', STORIES_DIR]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--modle'");
    expect((await tfjsMtp(['train-models'])).code).toBe(2);
  });

  it.skipIf(!storiesAvailable('training/train_heads_cli.test.ts'))('--steps 5 on stories260K writes heads.bin (attached by loadLlama2c, decoding as greedy) and training.json', async () => {
    const result = await tfjsMtp(['train-heads', '--model', STORIES_DIR, '--out', out, '--steps', '5', '--hidden', '32', '--corpus-tokens', '1024', '--sequence-tokens', '32', '--batch-size', '256']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^tfjs-mtp train-heads: stories260K\.bin, mlp heads, k = 4, H = 32, on wasm$/m);
    expect(result.stdout).toMatch(/^evaluating step 5\/5 \| loss [\d.]+ \([\d.]+ \/ [\d.]+ \/ [\d.]+\) \| held-out τ [\d.]+/m); // a line per evaluation (and every 10 s)
    expect(result.stdout).toContain(`wrote ${join(out, 'heads.bin')}`);
    const bytes = new Uint8Array(readFileSync(join(out, 'heads.bin')));
    expect(readDraftHeads(bytes).manifest).toMatchObject({ kind: 'mlp', numHeads: 4, headHiddenSize: 32, training: { steps: 5, stoppedBy: 'steps', backend: 'wasm' } });
    const facts = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8')) as Record<string, unknown>;
    expect(facts).toMatchObject({ model: 'stories260K.bin', kind: 'mlp', heads: 4, hidden: 32, steps: 5, corpusSource: 'self-distillation' });
    await useCpu();
    const { model } = await loadLlama2c(readStories('checkpoint'), { draftHeads: bytes });
    const cached = new CachedTransformer(model);
    try {
      const prompt = storiesReference().promptIds;
      const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 24 });
      expect((await speculativeDecode(cached, prompt, { maxNewTokens: 24 })).tokens).toEqual(greedy.tokens);
    } finally {
      cached.dispose();
      model.dispose();
    }
  });

  it('without a tfjs backend installed it exits 1 naming the npm command that installs one', async () => {
    const app = join(out, 'app');
    mkdirSync(join(app, 'node_modules/@tensorflow'), { recursive: true });
    for (const pkg of ['tfjs-core', 'tfjs-layers']) symlinkSync(join(ROOT, 'node_modules/@tensorflow', pkg), join(app, 'node_modules/@tensorflow', pkg), 'dir');
    copyFileSync(CLI, join(app, 'cli.js'));
    const result = await tfjsMtp(['train-heads', '--model', STORIES_DIR, '--out', out, '--steps', '1'], join(app, 'cli.js'));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('install it: npm install @tensorflow/tfjs-backend-wasm.');
  });
});
