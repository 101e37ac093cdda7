/**
 * `npm run demo -- --hf <folder>` (examples/node/demo.ts, spawned with tsx as npm runs it) on a
 * Hugging Face folder written by the test: a SmolLM2-shaped model with random weights on the
 * GPT-2 vocabulary, in two shards, with generation_config.json and the GPT-2 tokenizer.json (read
 * in place). It tokenizes the prompt with that tokenizer, decodes greedily and speculatively with
 * identical output, names the EOS it stops at; with `--heads` (trained here) it attaches them. Bad
 * flags exit 2 naming the flag.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hfFolderFiles } from '../../src/cli/hf_folder.js';
import { loadHfLlama, loadHfTokenizer, trainDraftHeads, writeDraftHeads } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { GPT2_TOKENIZER_DIR, gpt2Available, randomWeights, SMOL_GPT2, writeHfFolder } from '../helpers/hf_models.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const run = promisify(execFile);

/** Runs the demo as `npm run demo -- …` does (tsx); resolves to its exit code and output. */
async function demo(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'examples/node/demo.ts', ...args], { cwd: ROOT, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** The demo's exit: 0, or 1 only for its own "measurement error" verdict (a speedup above τ: timing noise on a busy machine). */
function expectRan(result: { code: number; stdout: string; stderr: string }): void {
  const noise = result.code === 1 && result.stdout.includes('measurement error:');
  expect(result.code === 0 || noise, `exit ${result.code}\n${result.stderr}`).toBe(true);
}

describe.skipIf(!gpt2Available('tests/examples/demo_hf'))('npm run demo -- --hf <folder>', () => {
  let dir: string;
  beforeAll(() => {
    dir = writeHfFolder(join(mkdtempSync(join(tmpdir(), 'tfjs-mtp-demo-')), 'smol-gpt2'), {
      hf: SMOL_GPT2.hf,
      weights: randomWeights(SMOL_GPT2.config, 11),
      shards: 2,
      generationConfig: { bos_token_id: 50256, eos_token_id: 50256 },
    });
  });
  afterAll(() => rmSync(resolve(dir, '..'), { recursive: true, force: true }));

  it('tokenizes with tokenizer.json, decodes greedy and speculative identically, names the EOS it stops at', async () => {
    const result = await demo(['--hf', dir, '--tokens', '12', '--prompt', 'Hello world, this is']); // the demo's default backend, wasm (cpu takes over twice as long over V = 50,257)
    expectRan(result);
    const tokenizer = loadHfTokenizer(readFileSync(join(GPT2_TOKENIZER_DIR, 'tokenizer.json')));
    const ids = tokenizer.encode('Hello world, this is');
    expect(result.stdout).toContain('tfjs-mtp demo — backend wasm, Hugging Face llama model smol-gpt2, offsets 1…3 untrained, stops at "<|endoftext|>" (V = 50257, D = 32, k = 4, context 256)');
    expect(result.stdout).toContain(`prompt (${ids.length} tokens):\nHello world, this is\n`);
    expect(result.stdout).toContain('identical to greedy: yes');
    expect(result.stdout).toMatch(/τ \(tokens per forward\): \d\.\d\d \(\d+ tokens in \d+ forwards; greedy: \d+\)/);
    expect(result.stdout).toContain('tokens are tokenizer.json pieces');
  });

  it('--heads: draft heads trained for the folder attach (k, kind and width from the file)', async () => {
    await useCpu();
    const { model } = await loadHfLlama(hfFolderFiles(dir), { mtpHeads: 3, headKind: 'mlp', headHiddenSize: 8 });
    const sequences = [Array.from({ length: 24 }, (_, i) => (i * 977) % 50257)];
    const heads = writeDraftHeads(await trainDraftHeads(model, { sequences, steps: 1, batchSize: 4, heldOut: 0 })); // one small step: what matters is the file, not how well it drafts
    model.dispose();
    writeFileSync(join(dir, '..', 'heads.bin'), heads);
    const result = await demo(['--hf', dir, '--heads', join(dir, '..', 'heads.bin'), '--tokens', '8']);
    expectRan(result);
    expect(result.stdout).toContain('Hugging Face llama model smol-gpt2, draft heads heads.bin, stops at "<|endoftext|>" (V = 50257, D = 32, k = 3, context 256)');
    expect(result.stdout).toContain('identical to greedy: yes');
  });

  it('bad flags exit 2 naming the flag', async () => {
    const missing = await demo(['--hf', join(dir, 'nothing')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`demo: --hf must be a Hugging Face model folder holding config.json, model.safetensors and tokenizer.json, but ${join(dir, 'nothing', 'config.json')} does not exist.`);
    const both = await demo(['--hf', dir, '--llama2c', dir]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('demo: --llama2c and --hf are two models: give one.');
  });
});
