/**
 * Measures the browser example's race (greedy vs chain vs tree lanes) in headless Chromium: serves
 * the example (serve.ts), and for each model, backend and node budget presses Race on every prompt
 * preset the page offers, reading each race's lanes from the race table (`data-results`, the rows
 * main.ts shows: τ, tok/s, speedup, nodes per step, identical to greedy). Every race warms up all
 * its lanes first (the page does), so compiling GPU programs is not timed. Prints one table row
 * per model × backend × lane, summed over the presets and repeats, and the best-of-repeats
 * figures (each preset's fastest run of each lane: on a loaded machine the sums carry its
 * hiccups), and saves the raw races too.
 *
 *     npx tsx examples/browser/race.ts [--backends webgl,wasm] [--tokens 48] [--repeats 1[,n per backend]]
 *         [--nodes 6] [--llama2c DIR] [--heads FILE] [--out bench/results/<name>.json]
 *
 * Models: the default checkpoint (the first fixtures/<name>/, tslib-k4) and, when `--llama2c` is
 * given (default: ../shared/models/stories260K, when present), that model with the `--heads` draft
 * heads. WebGL runs on SwiftShader here (no GPU): its numbers say how the lanes compare on the
 * same software device, not what a real GPU does.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseCommandLine } from '../../tools/args.js';
import { ROOT } from '../../tools/browser/bundle.js';
import { launchChromium } from '../../tools/browser/chromium.js';
import type { LaneResult } from './main.js';
import { startExampleServer } from './serve.js';

const { backends, tokens, repeats, nodes, llama2c, heads, out } = parseCommandLine({
  name: 'example:browser race',
  usage: 'npx tsx examples/browser/race.ts [options]',
  summary: "Runs the browser example's greedy / chain / tree race in headless Chromium on every prompt preset and prints τ, tok/s, speedup, nodes per step and identity per lane.",
  options: {
    backends: { type: 'strings', default: ['webgl', 'wasm'], choices: ['webgl', 'webgpu', 'wasm', 'cpu'], help: 'backends to race on' },
    tokens: { type: 'number', default: 48, integer: true, min: 1, help: 'new tokens per race' },
    repeats: { type: 'numbers', default: [1], help: 'races per prompt preset: one value, or one per backend' },
    nodes: { type: 'numbers', default: [], help: "tree node budgets ([]: the page's default, the backend's defaultTree().maxNodes)" },
    llama2c: { type: 'string', default: join(ROOT, '../shared/models/stories260K'), help: 'llama2.c model folder raced with --heads ("" or missing: none)' },
    heads: { type: 'string', default: join(ROOT, 'fixtures/stories260k-heads/sequential-k4.bin'), help: 'draft-heads file for the --llama2c model' },
    out: { type: 'string', default: '', help: 'JSON file for the results ("": print only)' },
  },
} as const);

/** One model × backend × budget × lane, summed over its races. */
interface Summary {
  model: string;
  backend: string;
  treeNodes: number;
  lane: LaneResult['lane'];
  races: number;
  tokens: number;
  forwards: number;
  tau: number;
  tokensPerSecond: number;
  /** Σ greedy wall time / Σ this lane's wall time. */
  speedup: number;
  /** Tokens per second over each preset's fastest run of this lane. */
  bestTokensPerSecond: number;
  /** Σ over presets of greedy's fastest wall time / Σ of this lane's fastest. */
  bestSpeedup: number;
  nodesPerStep: number;
  identical: boolean;
}

/** Σ over presets of lane `i`'s fastest wall time, and the tokens of those runs. */
function best(races: LaneResult[][], presets: string[], i: number): { ms: number; tokens: number } {
  let ms = 0;
  let tokens = 0;
  for (const preset of new Set(presets)) {
    const runs = races.filter((_, r) => presets[r] === preset).map((r) => r[i]!);
    const fastest = runs.reduce((a, b) => (b.wallTimeMs < a.wallTimeMs ? b : a));
    ms += fastest.wallTimeMs;
    tokens += fastest.tokens;
  }
  return { ms, tokens };
}

function summarise(model: string, backend: string, treeNodes: number, races: LaneResult[][], presets: string[]): Summary[] {
  const greedyMs = races.reduce((t, r) => t + r[0]!.wallTimeMs, 0);
  const greedyBest = best(races, presets, 0);
  return races[0]!.map(({ lane }, i) => {
    const rows = races.map((r) => r[i]!);
    const sum = (f: (r: LaneResult) => number) => rows.reduce((t, r) => t + f(r), 0);
    const forwards = sum((r) => r.forwards);
    const fastest = best(races, presets, i);
    return {
      model,
      backend,
      treeNodes,
      lane,
      races: rows.length,
      tokens: sum((r) => r.tokens),
      forwards,
      tau: sum((r) => r.tokens) / forwards,
      tokensPerSecond: (1000 * sum((r) => r.tokens)) / sum((r) => r.wallTimeMs),
      speedup: greedyMs / sum((r) => r.wallTimeMs),
      bestTokensPerSecond: (1000 * fastest.tokens) / fastest.ms,
      bestSpeedup: greedyBest.ms / fastest.ms,
      nodesPerStep: sum((r) => r.nodesPerStep * r.forwards) / forwards,
      identical: rows.every((r) => r.identical),
    };
  });
}

function git(...args: string[]): string {
  return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

const withStories = llama2c !== '' && existsSync(llama2c);
const loadAtStart = loadavg()[0]!; // other work on the machine slows every lane; recorded with the results
const server = await startExampleServer({ ...(withStories ? { llama2c, heads: [heads] } : {}) });
const browser = await launchChromium();
const summaries: Summary[] = [];
const raw: { model: string; backend: string; treeNodes: number; preset: string; lanes: LaneResult[] }[] = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url);
  await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('Ready on'), undefined, { timeout: 120_000 });
  const status = async (pattern: RegExp, timeout = 600_000) => {
    await page.waitForFunction((p) => new RegExp(p).test(document.getElementById('status')?.textContent ?? ''), pattern.source, { timeout });
    const text = (await page.textContent('#status')) ?? '';
    if (text.startsWith('Error')) throw new Error(`race: the page says ${text}`);
  };
  // tslib-k4 (layers) and, with stories260K, the entry with the trained heads (listed first)
  const entries = server.models.map((m, index) => ({ name: m.name, index, raced: m.kind === 'layers' || m.draftHeads !== undefined })).filter((m) => m.raced);
  if (repeats.length !== 1 && repeats.length !== backends.length) throw new Error(`race: --repeats must be one value or one per backend (${backends.length}), but got ${repeats.join(',')}.`);
  if (repeats.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`race: --repeats must be positive integers, but got ${repeats.join(',')}.`);
  for (const entry of entries) {
    for (const [b, backend] of backends.entries()) {
      const times = repeats[repeats.length === 1 ? 0 : b]!;
      const unavailable = async (why: string) => new Error(`race: ${backend} ${why}: ${(await page.textContent('#backend-note')) || 'the page could not start it'}`);
      if (await page.isDisabled(`#backend option[value=${backend}]`)) throw await unavailable('is not available in this browser');
      await page.selectOption('#backend', backend);
      await status(/^(Ready on|Error)/);
      if ((await page.inputValue('#backend')) !== backend) throw await unavailable('could not start, and the page fell back');
      await page.selectOption('#model', String(entry.index));
      await status(new RegExp(`^(Ready on ${backend}|Error)`));
      const budgets = nodes.length > 0 ? nodes : [Number(await page.inputValue('#tree-nodes'))];
      const presets = await page.locator('#presets button').allTextContents();
      for (const budget of budgets) {
        await page.fill('#tree-nodes', String(budget));
        const races: LaneResult[][] = [];
        const raced: string[] = []; // each race's preset
        for (const [p, preset] of presets.entries()) {
          await page.click(`#presets button >> nth=${p}`);
          await page.fill('#max-new', String(tokens));
          for (let r = 0; r < times; r++) {
            await page.click('#race');
            await status(/^(Race done|Error)/);
            const lanes = JSON.parse((await page.getAttribute('#race-table', 'data-results')) ?? '[]') as LaneResult[];
            if (lanes.some((l) => l.backend !== backend)) throw new Error(`race: asked for ${backend}, but the page raced on ${lanes[0]?.backend}.`);
            races.push(lanes);
            raced.push(preset);
            raw.push({ model: entry.name, backend, treeNodes: budget, preset, lanes });
          }
        }
        const rows = summarise(entry.name, backend, budget, races, raced);
        summaries.push(...rows);
        for (const s of rows) {
          console.log(
            `${s.model.padEnd(30)} ${s.backend.padEnd(6)} ${s.lane.padEnd(7)} nodes ${String(s.treeNodes).padStart(3)}  τ ${s.tau.toFixed(2)}  ${s.tokensPerSecond.toFixed(1).padStart(6)} tok/s  ` +
              `${s.speedup.toFixed(2)}×  best ${s.bestTokensPerSecond.toFixed(1).padStart(6)} tok/s ${s.bestSpeedup.toFixed(2)}×  ${s.nodesPerStep.toFixed(1).padStart(4)} nodes/step  ` +
              `${s.identical ? 'identical' : 'DIFFERS'} (${s.races} races)`,
          );
        }
      }
    }
  }
  if (errors.length > 0) throw new Error(`race: page errors: ${errors.join('; ')}`);
  if (out !== '') {
    const path = resolve(ROOT, out);
    mkdirSync(dirname(path), { recursive: true });
    const result = {
      date: new Date().toISOString(),
      code: { commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', '--untracked-files=no', '--', 'src', 'examples/browser').length > 0 },
      command: `npx tsx examples/browser/race.ts ${process.argv.slice(2).join(' ')}`.trim(),
      browser: `Chromium ${browser.version()} (headless; WebGL on SwiftShader, no GPU)`,
      loadAverage1m: { start: loadAtStart, end: loadavg()[0]! },
      tokensPerRace: tokens,
      repeats,
      summaries,
      races: raw,
    };
    writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`saved ${path}`);
  }
} finally {
  await browser.close();
  await server.close();
}
