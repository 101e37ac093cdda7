/**
 * `npx tsx bench/tree_browser.ts` — tree drafting in the browser (issue #13 §4): on WebGL and
 * WebGPU in headless Chromium (SwiftShader: software rendering on the CPU, so the milliseconds say
 * how the GPU backends' kernels scale with the rows, not what a real GPU does), what one tree
 * forward costs per node budget (`measureTreeCosts`) and τ, nodes per step, ms per step and
 * speedup of the chain and of trees of a few budgets against cached greedy, output checked equal
 * to greedy's. Prints markdown tables; `--json FILE` writes them. The page is
 * bench/tree_browser_page.ts, served with tools/browser's bundler and server.
 *
 *     npx tsx bench/tree_browser.ts [--model DIR] [--heads FILE] [--backends webgl,webgpu] [--prompts 2] [--tokens 32] [--repeats 1] [--json out.json]
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import type { TreeOption } from '../src/index.js';
import { parseCommandLine } from '../tools/args.js';
import { bundlePage, WASM_DIR } from '../tools/browser/bundle.js';
import { launchChromium } from '../tools/browser/chromium.js';
import { startStaticServer } from '../tools/browser/server.js';
import { heldOutStoryPrompts } from '../tools/bench_model.js';
import { REFERENCE_CHECKPOINT } from '../tools/checkpoint.js';
import { heldOutPrompts } from '../tools/corpus.js';
import { llama2cFiles } from '../tools/llama2c_files.js';
import type { ModelSource, Prompts, TreeBenchPage, TreeBenchRun } from './tree_browser_page.js';

const BROWSER_BACKENDS = ['webgl', 'webgpu'] as const;

const COMMAND = {
  name: 'tree_browser',
  usage: 'npx tsx bench/tree_browser.ts [options]',
  summary: 'Tree drafting in Chromium (WebGL, WebGPU): tree forward cost per node budget, and τ / speed of the chain and of trees against cached greedy.',
  options: {
    model: { type: 'string', default: REFERENCE_CHECKPOINT, help: 'folder with model.json + weights.bin, or a llama2.c .bin + tok*.bin (e.g. stories260K)' },
    heads: { type: 'string', default: '', help: 'a draft-heads file (exportDraftHeads) for a llama2.c --model' },
    backends: { type: 'strings', default: BROWSER_BACKENDS, choices: BROWSER_BACKENDS, help: 'backends to measure, in order' },
    prompts: { type: 'number', default: 2, integer: true, min: 1, help: 'prompts (held-out TypeScript, or held-out story openings with --heads)' },
    tokens: { type: 'number', default: 32, integer: true, min: 1, help: 'new tokens per prompt' },
    repeats: { type: 'number', default: 1, integer: true, min: 1, help: 'repeats per drafting (round-robin; medians)' },
    json: { type: 'string', default: '', help: 'also write the results to this JSON file' },
  },
} as const;

/** The draftings measured (null = the chain). */
const DRAFTINGS: [string, TreeOption | null][] = [
  ['chain', null],
  ['dynamic topK 4, 3 nodes', { topK: 4, maxNodes: 3 }],
  ['dynamic topK 4, 6 nodes', { topK: 4, maxNodes: 6 }],
  ['dynamic topK 4, 12 nodes', { topK: 4, maxNodes: 12 }],
  ['dynamic topK 8, 32 nodes', { topK: 8, maxNodes: 32 }],
  ["'auto'", 'auto'],
];

/** Node budgets of the cost table. */
const BUDGETS = [1, 2, 4, 6, 8, 12, 16, 24, 32];

/** The commit measured, and whether src/ differed from it. */
function codeVersion(): { commit: string; dirty: boolean } | null {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', '--untracked-files=no', '--', 'src').length > 0 };
  } catch {
    return null;
  }
}

const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');

async function main(): Promise<void> {
  const o = parseCommandLine(COMMAND);
  const dir = resolve(o.model);
  const mounts: Record<string, string> = { '/wasm/': WASM_DIR, '/model/': dir };
  let source: ModelSource;
  let prompts: Prompts;
  if (existsSync(join(dir, 'model.json'))) {
    source = { kind: 'layers', modelJson: '/model/model.json' };
    prompts = { ids: heldOutPrompts(o.prompts, 48).map((p) => p.bytes) };
  } else {
    const files = llama2cFiles(dir);
    if (files === null) throw new Error(`tree_browser: --model must hold model.json + weights.bin or a llama2.c .bin with its tok*.bin, but ${dir} has neither.`);
    source = { kind: 'llama2c', checkpoint: `/model/${basename(files.checkpoint)}`, tokenizer: `/model/${basename(files.tokenizer)}` };
    if (o.heads) {
      mounts['/heads/'] = dirname(resolve(o.heads));
      source.draftHeads = `/heads/${basename(o.heads)}`;
    }
    prompts = { texts: heldOutStoryPrompts().slice(0, o.prompts) };
  }
  const bundle = await bundlePage('bench/tree_browser_page.ts');
  const html = '<!doctype html><meta charset="utf-8"><title>tree bench</title><script type="module" src="/page.js"></script>';
  const server = await startStaticServer({ routes: { '/index.html': html, '/page.js': bundle.code }, mounts });
  const browser = await launchChromium();
  const runs: { backend: string; detail: string; run: TreeBenchRun | null; error: string | null; pageErrors: string[] }[] = [];
  try {
    for (const backend of o.backends) {
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      try {
        await page.goto(server.url);
        await page.waitForFunction(() => 'treeBench' in globalThis);
        const info = await page.evaluate((b) => (globalThis as unknown as { treeBench: TreeBenchPage }).treeBench.init(b), backend);
        console.error(`${backend}: ${info.detail}; measuring…`);
        const run = await page.evaluate(
          ([s, p, n, d, b, r]) => (globalThis as unknown as { treeBench: TreeBenchPage }).treeBench.run(s, p, n, d, b, r),
          [source, prompts, o.tokens, DRAFTINGS, BUDGETS, o.repeats] as const,
        );
        runs.push({ backend, detail: info.detail, run, error: null, pageErrors });
      } catch (error) {
        runs.push({ backend, detail: '', run: null, error: String(error), pageErrors });
        console.error(`${backend}: failed: ${String(error)}`);
      } finally {
        await page.close();
      }
    }
  } finally {
    await browser.close();
    await server.close();
  }
  const model = `${basename(dir)}${o.heads ? ` + ${basename(o.heads)}` : ''}`;
  const code = codeVersion();
  console.log(`Model: ${model}; code: ${code ? `${code.commit.slice(0, 7)}${code.dirty ? ' + uncommitted changes in src/' : ''}` : 'unknown'}; Chromium headless (SwiftShader); ${o.prompts} prompts × ${o.tokens} new tokens, median of ${o.repeats} repeats\n`);
  console.log(`Tree forward cost (measureTreeCosts: median ms of a forward over the root + n nodes and offset 0's argmax, one readback):\n`);
  console.log(`| backend | cache length | ${BUDGETS.map((n) => `${n} nodes`).join(' | ')} | 32 ÷ 1 |`);
  console.log(`|---|---:|${BUDGETS.map(() => '---:').join('|')}|---:|`);
  for (const { backend, run } of runs) {
    if (run) console.log(`| ${backend} | ${run.cacheLength} | ${run.costs.map((c) => fmt(c.ms)).join(' | ')} | ${fmt(run.costs.at(-1)!.ms / run.costs[0]!.ms)}× |`);
  }
  console.log('\n| backend | drafting | τ | nodes/step | tokens/s | ms/step | speedup vs greedy | output == greedy | sync readbacks |');
  console.log('|---|---|---:|---:|---:|---:|---:|---|---:|');
  for (const { backend, run } of runs) {
    for (const r of run?.results ?? []) {
      console.log(`| ${backend} | ${r.name} | ${fmt(r.tau)} | ${fmt(r.nodesPerStep, 1)} | ${fmt(r.tokensPerSecond, 1)} | ${fmt(r.msPerStep)} | ${fmt(r.speedup)}× | ${r.identicalPrompts === run!.prompts ? 'yes' : '**NO**'} (${r.identicalPrompts}/${run!.prompts}) | ${r.syncDownloads} |`);
    }
  }
  for (const { backend, run, error, pageErrors } of runs) {
    if (run) console.log(`\n${backend}: tensors ${run.numTensors.before} → ${run.numTensors.after}, synchronous GPU readbacks ${run.syncDownloads} (${run.costSyncDownloads} in measureTreeCosts)${pageErrors.length ? `, page errors: ${pageErrors.join('; ')}` : ''}`);
    else console.log(`\n${backend}: not measured — ${error}`);
  }
  if (o.json) {
    writeFileSync(o.json, JSON.stringify({ date: new Date().toISOString(), code: codeVersion(), model, prompts: o.prompts, tokens: o.tokens, repeats: o.repeats, budgets: BUDGETS, runs }, null, 2));
    console.log(`\nwrote ${o.json}`);
  }
}

await main();
