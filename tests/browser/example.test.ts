/**
 * The browser example works for a person: served by examples/browser/serve.ts, loaded in
 * Chromium, it decodes on webgl, shows coloured text and statistics, draws the last step's draft
 * tree with its accepted path when decoding with a tree, races greedy against a chain and a tree
 * of drafts with identical outputs, leaves a screenshot in test-output/, and on wasm its Stop
 * button stops a long decode mid-way while the page keeps responding; the tree view and the tree
 * lane are checked on wasm too. Every race shows its progress in the status line while it warms
 * up and runs (lane i of n, tokens so far). In a Chromium without WebGL (`--disable-gpu
 * --disable-software-rasterizer`: no GPU and no SwiftShader, so no WebGL context of any kind) the
 * page falls back to the next backend that starts and says so.
 *
 * It decodes with the committed checkpoint (fixtures/tslib-k4), which is required: the suite
 * fails in `beforeAll` when it is missing. Served with `--llama2c` (stories260K, read from
 * `<repo>/../shared/models/stories260K/`) and `--heads` (the committed trained sequential draft
 * heads), the page offers that model with the heads first, then without, and its continuation of
 * `Once upon a time` is the reference text of the model's README; the race with the trained heads
 * keeps drafts (fewer forwards than tokens).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExampleServer } from '../../examples/browser/serve.js';
import { ROOT } from '../../tools/browser/bundle.js';
import { browserSuiteEnabled, CHROMIUM_ARGS, CHROMIUM_PATH } from '../../tools/browser/chromium.js';
import { STORIES_DIR, storiesAvailable, storiesReference } from '../helpers/stories.js';
import type { LaneResult } from '../../examples/browser/main.js';
import { defaultTree } from '../../src/decoding/index.js';
import { checkpointForTests, openBrowser } from './harness.js';

const SCREENSHOTS = join(ROOT, 'test-output');
/** The committed trained draft heads for stories260K the llama2.c block serves. */
const STORIES_HEADS = join(ROOT, 'fixtures/stories260k-heads/sequential-k4.bin');

/** The race verdict: a speedup per speculative lane, then the identity verdict. */
const VERDICT = (tokens: number) => new RegExp(`^chain \\d+\\.\\d\\d× \\(${tokens} → \\d+ forwards\\), tree \\d+\\.\\d\\d× \\(${tokens} → \\d+ forwards\\) vs greedy; outputs identical ✓$`);

/** A tree wider than the chain (whose 3 drafts a 3-node default tree would match), so the lanes and the drawing differ. */
const TREE_NODES = '6';

/**
 * Starts recording every text the status line shows (a MutationObserver in the page: each text
 * node set, however many land between two observer callbacks); returns a reader of the record.
 */
async function recordStatus(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const texts: string[] = [];
    (window as unknown as { statusTexts: string[] }).statusTexts = texts;
    new MutationObserver((records) => {
      for (const r of records) r.addedNodes.forEach((node) => texts.push(node.textContent ?? ''));
    }).observe(document.getElementById('status')!, { childList: true });
  });
  return () => page.evaluate(() => [...(window as unknown as { statusTexts: string[] }).statusTexts]);
}

/**
 * Checks that a race reported its progress before it finished: each lane's warm-up (lane i of n,
 * then its tokens so far), then each timed lane, in order, then the end.
 */
function expectRaceProgress(texts: string[], tokens: number): void {
  const lanes = ['greedy', 'chain', 'tree'];
  const first = (pattern: RegExp) => texts.findIndex((t) => pattern.test(t));
  const steps = [
    ...lanes.flatMap((lane, i) => [
      new RegExp(`^Warming up lane ${i + 1} of 3 \\(${lane}\\): an untimed run`),
      new RegExp(`^Warming up lane ${i + 1} of 3 \\(${lane}\\): \\d+ of ${tokens} tokens \\(untimed\\)…$`),
    ]),
    ...lanes.map((lane, i) => new RegExp(`^Racing lane ${i + 1} of 3 \\(${lane}\\)…$`)),
    /^Race done on /,
  ];
  const at = steps.map(first);
  expect(at.every((i) => i >= 0), `status texts: ${JSON.stringify(texts)}`).toBe(true);
  expect(at).toEqual([...at].sort((a, b) => a - b)); // in that order
}

/** Clicks Race, waits for it, and returns the race table's rows (checked: three lanes on `backend`, all identical to greedy, progress shown). */
async function raceRows(page: Page, backend: string, tokens: number): Promise<LaneResult[]> {
  await page.fill('#tree-nodes', TREE_NODES);
  const statusTexts = await recordStatus(page);
  await page.click('#race');
  await page.waitForFunction(() => /^(Race done|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 240_000 });
  expect(await page.textContent('#status')).toBe(`Race done on ${backend}.`);
  expectRaceProgress(await statusTexts(), tokens);
  const rows = JSON.parse((await page.getAttribute('#race-table', 'data-results')) ?? '[]') as LaneResult[];
  expect(rows.map((r) => r.lane)).toEqual(['greedy', 'chain', 'tree']);
  for (const r of rows) {
    expect(r.backend).toBe(backend); // tf.getBackend() when the race ended
    expect(r.tokens).toBe(tokens);
    expect(r.identical).toBe(true);
    expect(r.tau).toBeCloseTo(r.tokens / r.forwards, 10);
  }
  expect(rows[0]!.nodesPerStep).toBe(0);
  expect(rows[2]!.nodesPerStep).toBeGreaterThan(rows[1]!.nodesPerStep); // a tree verifies more nodes per step than the chain
  expect(await page.locator('#race-table tr[data-lane]').count()).toBe(3);
  expect(await page.textContent('#race-verdict')).toMatch(VERDICT(tokens));
  return rows;
}

/** One line per lane, for the log. */
const describeRows = (rows: LaneResult[]) =>
  rows.map((r) => `${r.lane} τ ${r.tau.toFixed(2)} ${r.tokensPerSecond.toFixed(1)} tok/s ${r.speedup.toFixed(2)}× ${r.nodesPerStep.toFixed(1)} nodes/step`).join(' | ');

/**
 * Generates with a dynamic tree and checks the drawing of the last step's tree against the text:
 * the accepted nodes (highlighted) carry the step's kept drafts in order, the verifier's token
 * hangs under the path's end, the root is the token before the step, and the step kept a path.
 */
async function checkTreeView(page: Page, backend: string, tokens: number): Promise<void> {
  await page.selectOption('#drafting', 'tree');
  await page.fill('#tree-nodes', TREE_NODES);
  await page.fill('#max-new', String(tokens));
  await page.click('#generate');
  await page.waitForFunction(() => /^(Done|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 240_000 });
  expect(await page.textContent('#status')).toMatch(new RegExp(`^Done: ${tokens} tokens in \\d+ forwards .* on ${backend}\\.$`));
  expect(await page.isVisible('#tree-view svg')).toBe(true);
  const caption = (await page.textContent('#tree-caption')) ?? '';
  const view = await page.evaluate(() => {
    const spans = Array.from(document.querySelectorAll<HTMLElement>('#output .t'));
    const lastStep = spans.at(-1)!.dataset.step!;
    const step = spans.filter((s) => s.dataset.step === lastStep);
    const before = spans.filter((s) => Number(s.dataset.step) < Number(lastStep)).at(-1);
    const nodes = Array.from(document.querySelectorAll<SVGGElement>('#tree-view g.node'));
    const tokensOf = (cls: string) => nodes.filter((g) => g.classList.contains(cls)).map((g) => ({ token: Number(g.dataset.token), depth: Number(g.dataset.depth) }));
    return {
      lastStep: Number(lastStep),
      stepTokens: step.map((s) => Number(s.dataset.token)),
      tokenBefore: before === undefined ? null : Number(before.dataset.token),
      root: tokensOf('root'),
      kept: tokensOf('kept').sort((a, b) => a.depth - b.depth),
      verifier: tokensOf('verifier'),
      tried: tokensOf('tried').length,
      heavyEdges: document.querySelectorAll('#tree-view path.edge.kept').length,
    };
  });
  console.log(`example tree view (${backend}): ${caption} | kept ${view.kept.length}, tried ${view.tried}`);
  expect(caption).toMatch(new RegExp(`^Step ${view.lastStep}: \\d+ draft nodes? verified in one forward; kept ${view.kept.length}`));
  expect(view.kept.length).toBeGreaterThan(0); // the last step kept a path below the root
  expect(view.kept.map((n) => n.depth)).toEqual(view.kept.map((_, d) => d + 1));
  expect(view.root).toHaveLength(1);
  if (view.tokenBefore !== null) expect(view.root[0]!.token).toBe(view.tokenBefore);
  if (view.verifier.length === 1) {
    expect([...view.kept.map((n) => n.token), view.verifier[0]!.token]).toEqual(view.stepTokens); // the path, then the verifier's token
    expect(view.heavyEdges).toBe(view.kept.length + 1);
  } else {
    expect(view.kept.map((n) => n.token).slice(0, view.stepTokens.length)).toEqual(view.stepTokens); // the budget ended decoding inside the step
  }
  expect(view.tried).toBeGreaterThan(0); // a tree: candidates beside the path
}


/**
 * Runs `fn` with the page's CPU slowed tenfold (Chrome's CPU throttling), as on a slow device: on
 * wasm the fused kernels decode the byte-level model's 127 tokens in about half a second — less
 * than a click's round trip on a loaded machine — and a Stop test needs a decode that outlasts it.
 */
async function onSlowDevice(page: Page, fn: () => Promise<void>): Promise<void> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 10 });
  try {
    await fn();
  } finally {
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
    await cdp.detach();
  }
}

type ExampleServer = Awaited<ReturnType<typeof startExampleServer>>;

/** The example served with the committed checkpoint alone: one server (one bundle of the page) for the suites that need nothing else. */
let plainServer: Promise<ExampleServer> | undefined;
const servePlain = (suite: string): Promise<ExampleServer> => (plainServer ??= startExampleServer({ checkpoint: checkpointForTests(suite) }));

afterAll(async () => {
  await (await plainServer?.catch(() => undefined))?.close();
});

describe.skipIf(!browserSuiteEnabled('tests/browser/example'))('browser example (Chromium, webgl)', () => {
  let server: ExampleServer;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    [server, browser] = await Promise.all([servePlain('tests/browser/example'), openBrowser()]);
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
    });
    await page.goto(server.url);
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('Ready on webgl'), undefined, { timeout: 120_000 });
  }, 300_000);

  afterAll(async () => {
    await browser?.close(); // the plain server is the file's (closed after every suite)
  });

  it('generates on webgl: coloured text, τ, tokens/s and per-offset acceptance appear', async () => {
    expect(await page.inputValue('#tree-nodes')).toBe(String(defaultTree('webgl').maxNodes)); // the backend's measured budget is offered
    await page.fill('#max-new', '16');
    await page.click('#generate');
    await page.waitForFunction(() => /^(Done|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 240_000 });
    const status = await page.textContent('#status');
    console.log(`example: ${status}`);
    expect(status).toMatch(/^Done: 16 tokens in \d+ forwards .* on webgl\.$/);
    expect(await page.locator('#output .t').count()).toBe(16); // one span per generated byte
    expect(((await page.textContent('#output .prompt')) ?? '').length).toBeGreaterThan(0);
    expect(await page.textContent('#stat-tau')).toMatch(/^\d\.\d\d$/);
    expect(await page.textContent('#stat-tps')).toMatch(/^\d+\.\d$/);
    expect(await page.textContent('#stat-tokens')).toBe('16');
    const numHeads = await page.locator('#draft option').count();
    expect(await page.locator('#bars .bar').count()).toBe(numHeads - 1);
    expect(await page.locator('#legend > span').count()).toBe(numHeads);
  }, 300_000);

  it('races greedy, chain and tree on webgl: identical outputs, τ, tok/s, speedup, nodes per step', async () => {
    // 8 tokens: each lane decodes twice (an untimed warm-up, then the timed run), and on WebGL each new cache length compiles a program or two the first time
    await page.fill('#max-new', '8');
    const rows = await raceRows(page, 'webgl', 8); // speed is reported, not asserted: SwiftShader is no GPU
    console.log(`example race (webgl): ${describeRows(rows)}`);
    expect(errors).toEqual([]);
  }, 300_000);

  it("with a dynamic tree on webgl: the last step's tree is drawn beside the text, its accepted path highlighted; a screenshot", async () => {
    await checkTreeView(page, 'webgl', 8); // after the race: its warm-up compiled the tree's programs for this prompt and budget
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, 'browser-example.png'), fullPage: true });
    expect(errors).toEqual([]);
  }, 300_000);

  it('on wasm, Stop stops a long decode mid-way and the page keeps responding', async () => {
    await page.selectOption('#backend', 'wasm');
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('Ready on wasm'), undefined, { timeout: 120_000 });
    expect(await page.inputValue('#tree-nodes')).toBe(String(defaultTree('wasm').maxNodes));
    await page.fill('#prompt', '\n'); // one-byte prompt: room for 127 new tokens in the 128-token context
    await page.fill('#max-new', '127');
    await page.selectOption('#draft', '0'); // one token per forward: the longest decode the page can run
    await onSlowDevice(page, async () => {
      await page.click('#generate');
      await page.waitForFunction(() => document.querySelectorAll('#output .t').length >= 3, undefined, { timeout: 120_000 });
      await page.click('#stop', { force: true }); // no actionability wait: the button must take the click while the decode runs
      await page.waitForFunction(() => /^(Stopped|Done|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 60_000 });
    });
    const status = (await page.textContent('#status')) ?? '';
    console.log(`example stop: ${status}`);
    const match = /^Stopped after (\d+) of 127 tokens \(\d+ forwards\) on wasm\.$/.exec(status);
    expect(match, status).not.toBeNull();
    const shown = await page.locator('#output .t').count();
    expect(Number(match![1])).toBe(shown);
    expect(shown).toBeGreaterThanOrEqual(3);
    expect(shown).toBeLessThan(127);
    // Still responsive: the controls are unlocked and a preset button fills the prompt at once.
    expect(await page.isDisabled('#generate')).toBe(false);
    expect(await page.isDisabled('#stop')).toBe(true);
    await page.click('#presets button >> nth=1');
    expect(await page.inputValue('#prompt')).toMatch(/^interface Map<K, V>/);
    expect(errors).toEqual([]);
  }, 300_000);

  it('on wasm, the tree view shows an accepted path and the tree lane is identical to greedy', async () => {
    await page.selectOption('#draft', '3');
    await checkTreeView(page, 'wasm', 24);
    await page.fill('#max-new', '24');
    const rows = await raceRows(page, 'wasm', 24);
    console.log(`example race (wasm): ${describeRows(rows)}`);
    expect(errors).toEqual([]);
  }, 300_000);

  it('on wasm, Stop stops a decode with a large tree mid-way while its tree is drawn', async () => {
    await page.selectOption('#drafting', 'tree');
    await page.fill('#tree-nodes', '256'); // the largest budget: every step verifies all of top-4 ^ depth 1…3 (84 nodes)
    await page.fill('#prompt', '\n');
    await page.fill('#max-new', '127');
    await onSlowDevice(page, async () => {
      await page.click('#generate');
      await page.waitForFunction(() => document.querySelectorAll('#output .t').length >= 3 && document.querySelector('#tree-view svg') !== null, undefined, { timeout: 120_000 });
      await page.click('#stop', { force: true });
      await page.waitForFunction(() => /^(Stopped|Done|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 60_000 });
    });
    const status = (await page.textContent('#status')) ?? '';
    console.log(`example stop (tree): ${status} | ${await page.textContent('#tree-caption')}`);
    const match = /^Stopped after (\d+) of 127 tokens \(\d+ forwards\) on wasm\.$/.exec(status);
    expect(match, status).not.toBeNull();
    expect(Number(match![1])).toBe(await page.locator('#output .t').count());
    expect(Number(match![1])).toBeLessThan(127);
    expect(await page.textContent('#tree-caption')).toMatch(/^Step \d+: \d+ draft nodes verified in one forward; kept \d+/);
    expect(await page.locator('#tree-view g.node').count()).toBeGreaterThan(6);
    expect(await page.isDisabled('#generate')).toBe(false);
    expect(errors).toEqual([]);
  }, 300_000);
});

describe.skipIf(!browserSuiteEnabled('tests/browser/example (no WebGL)'))('browser example in a Chromium without WebGL (--disable-gpu --disable-software-rasterizer)', () => {
  let server: ExampleServer;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    server = await servePlain('tests/browser/example (no WebGL)');
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS, '--disable-gpu', '--disable-software-rasterizer'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
    });
    await page.goto(server.url);
  }, 300_000);

  afterAll(async () => {
    await browser?.close(); // the plain server is the file's (closed after every suite)
  });

  it('falls back from webgl to the next backend that starts, says so beside the controls, and decodes there', async () => {
    const contexts = await page.evaluate(() => (['webgl2', 'webgl'] as const).flatMap((kind) => [document.createElement('canvas').getContext(kind), new OffscreenCanvas(1, 1).getContext(kind)]));
    expect(contexts).toEqual([null, null, null, null]); // the flags took: no WebGL, on or off screen
    await page.waitForFunction(() => /^(Ready on|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 120_000 });
    const status = (await page.textContent('#status')) ?? '';
    const backend = /^Ready on (webgpu|wasm|cpu)\. Type a prompt and press Generate\.$/.exec(status)?.[1];
    expect(backend, status).toBeDefined();
    const note = (await page.textContent('#backend-note')) ?? '';
    console.log(`example without WebGL: ${status} | ${note}`);
    expect(note).toMatch(new RegExp(`^webgl (is|and webgpu are) not available in this browser \\(tfjs could not start (it|them)\\), so the page uses ${backend}\\.$`));
    expect(await page.isVisible('#backend-note')).toBe(true);
    expect(await page.inputValue('#backend')).toBe(backend);
    expect(await page.isDisabled('#backend option[value=webgl]')).toBe(true);
    expect(await page.textContent('#backend option[value=webgl]')).toBe('webgl (unavailable)');
    expect(await page.textContent('#model-info')).toContain(`Backend: ${backend}.`);
    await page.fill('#max-new', '8');
    await page.click('#generate');
    await page.waitForFunction(() => /^(Done|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 240_000 });
    expect(await page.textContent('#status')).toMatch(new RegExp(`^Done: 8 tokens in \\d+ forwards .* on ${backend}\\.$`));
    expect(errors).toEqual([]);
  }, 300_000);
});

describe.skipIf(!browserSuiteEnabled('tests/browser/example (llama2c)') || !storiesAvailable('tests/browser/example (llama2c)'))(
  'browser example with a llama2.c model (stories260K, Chromium, webgl)',
  () => {
    let server: ExampleServer;
    let browser: Browser;
    let page: Page;
    const errors: string[] = [];

    beforeAll(async () => {
      [server, browser] = await Promise.all([startExampleServer({ checkpoint: checkpointForTests('tests/browser/example (llama2c)'), llama2c: STORIES_DIR, heads: [STORIES_HEADS] }), openBrowser()]);
      page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
      });
      await page.goto(server.url);
      await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('Ready on webgl'), undefined, { timeout: 120_000 });
    }, 300_000);

    afterAll(async () => {
      await browser?.close();
      await server?.close();
    });

    it('offers stories260K with its trained heads first and continues the README prompt with the reference text, coloured per token', async () => {
      const reference = storiesReference();
      expect(await page.locator('#model option').allTextContents()).toEqual(['stories260K + sequential-k4 (llama2.c)', 'stories260K (llama2.c)', 'tslib-k4 (byte-level)']);
      expect(await page.inputValue('#prompt')).toBe(reference.prompt);
      expect(await page.textContent('#model-info')).toMatch(
        /^stories260K \+ sequential-k4: \d+k parameters, k = 4 heads \(trained draft heads sequential-k4\.bin\), vocabulary 512 \(BPE, tok512\.bin\), context 512 tokens\./,
      );
      await page.fill('#max-new', '16');
      await page.click('#generate');
      await page.waitForFunction(() => /^(Done|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 240_000 });
      expect(await page.textContent('#status')).toMatch(/^Done: 16 tokens in \d+ forwards .* on webgl\.$/);
      expect(await page.locator('#output .t').count()).toBe(16); // one span per generated BPE token
      const text = (await page.textContent('#output')) ?? '';
      console.log(`example (llama2c): ${text}`);
      expect(text.length).toBeGreaterThan(reference.prompt.length + 16); // pieces are longer than a byte
      expect(reference.greedyText.startsWith(text)).toBe(true);
      expect(errors).toEqual([]);
    }, 300_000);

    it('races greedy, chain and tree with the trained heads: identical outputs, drafts kept', async () => {
      await page.fill('#max-new', '8');
      const rows = await raceRows(page, 'webgl', 8);
      console.log(`example race (llama2c, webgl): ${describeRows(rows)}`);
      // trained heads keep drafts: the held-out τ is ~2.8, so 8 tokens take well under 8 forwards
      expect(rows[1]!.forwards).toBeLessThanOrEqual(6);
      expect(rows[2]!.forwards).toBeLessThanOrEqual(6);
      expect(errors).toEqual([]);
    }, 300_000);
  },
);
