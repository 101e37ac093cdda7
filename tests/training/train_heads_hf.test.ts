/**
 * Draft-head training commands on a Hugging Face folder (config.json + shards + tokenizer.json),
 * written by the test with random weights: `npm run train:heads -- --model <folder>` (generic
 * openings and held-out prompts through the folder's tokenizer.json, τ measured on a fresh load
 * with the written file) and the package's `tfjs-mtp train-heads --model <folder>` (as built).
 * Each writes heads.bin that `loadHfLlama(files, { draftHeads })` attaches, decoding as greedy.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hfFolderFiles } from '../../src/cli/hf_folder.js';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { CachedTransformer, loadHfLlama } from '../../src/models/index.js';
import { readDraftHeads } from '../../src/models/draft_heads.js';
import { useCpu } from '../helpers/backend.js';
import { gpt2Available, randomWeights, SMOL_GPT2, writeHfFolder } from '../helpers/hf_models.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const run = promisify(execFile);

/** Runs node with `args` in the repository; resolves to the exit code and output (a failing exit does not throw). */
async function node(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, args, { cwd: ROOT, timeout: 180_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Attaches `heads` to the folder's model and checks speculative decoding equals greedy; returns the heads' manifest. */
async function attachAndDecode(dir: string, heads: Uint8Array, prompt: number[]): Promise<ReturnType<typeof readDraftHeads>['manifest']> {
  await useCpu();
  const { model } = await loadHfLlama(hfFolderFiles(dir), { draftHeads: heads });
  const cached = new CachedTransformer(model);
  try {
    const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 16 });
    expect((await speculativeDecode(cached, prompt, { maxNewTokens: 16 })).tokens).toEqual(greedy.tokens);
  } finally {
    cached.dispose();
    model.dispose();
  }
  return readDraftHeads(heads).manifest;
}

describe('draft-head training commands on a Hugging Face folder', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'tfjs-mtp-hf-heads-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it.skipIf(!gpt2Available('tests/training/train_heads_hf'))('npm run train:heads -- --model <folder>: generic openings and prompts through tokenizer.json, heads.bin attaches, τ measured, output = greedy', async () => {
    const dir = writeHfFolder(join(tmp, 'smol-gpt2'), { hf: SMOL_GPT2.hf, weights: randomWeights(SMOL_GPT2.config, 3), shards: 2 });
    const out = join(tmp, 'script-out');
    const args = ['--model', dir, '--out', out, '--steps', '3', '--seconds', '120', '--hidden', '16', '--corpusTokens', '128', '--sequenceTokens', '16', '--batch', '16', '--greedyShare', '1', '--tauTokens', '8'] // one generation batch of 8 sequences of 16 tokens: each token step costs a forward over a 50,257-word vocabulary
    const result = await node(['--import', 'tsx', 'scripts/train_heads.ts', ...args]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^model: .*smol-gpt2 \(smol-gpt2\), kind mlp, k = 4, H = 16, backend wasm; 35 openings$/m);
    expect(result.stdout).toMatch(/^speculativeDecode on 6 held-out prompts × 8 tokens: τ = \d\.\d\d, .*, output identical to greedy$/m);
    const facts = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8')) as { modelFile: string; steps: number };
    expect(facts).toMatchObject({ modelFile: 'smol-gpt2', steps: 3 });
    const manifest = await attachAndDecode(dir, new Uint8Array(readFileSync(join(out, 'heads.bin'))), [15496, 995]); // GPT-2 "Hello world"
    expect(manifest).toMatchObject({ numHeads: 4, kind: 'mlp', headHiddenSize: 16, base: { vocabSize: 50257, hiddenSize: 32 } });
  });

  const CLI = join(ROOT, 'dist/cli.js');
  it('tfjs-mtp train-heads --model <folder> (dist/cli.js): heads.bin attaches, output = greedy', async () => {
    if (!existsSync(CLI)) throw new Error('tests/training: dist/cli.js is missing; run `npm run build` first (`npm test` does).');
    const small = { ...SMOL_GPT2.hf, vocab_size: 96, bos_token_id: 0, eos_token_id: 0 };
    const dir = writeHfFolder(join(tmp, 'smol-96'), { hf: small, weights: randomWeights({ ...SMOL_GPT2.config, vocabSize: 96 }, 4), gpt2Tokenizer: false });
    const out = join(tmp, 'cli-out');
    const result = await node([CLI, 'train-heads', '--model', dir, '--out', out, '--kind', 'sequential', '--heads', '3', '--hidden', '8', '--steps', '3', '--corpus-tokens', '512', '--sequence-tokens', '32', '--batch-size', '64']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^tfjs-mtp train-heads: smol-96, sequential heads, k = 3, H = 8, on wasm$/m);
    const facts = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8')) as Record<string, unknown>;
    expect(facts).toMatchObject({ model: 'smol-96', modelFolder: dir, kind: 'sequential', heads: 3, hidden: 8, steps: 3 });
    const manifest = await attachAndDecode(dir, new Uint8Array(readFileSync(join(out, 'heads.bin'))), [1, 2, 3]);
    expect(manifest).toMatchObject({ numHeads: 3, kind: 'sequential', headHiddenSize: 8, base: { vocabSize: 96 } });
  });
});
