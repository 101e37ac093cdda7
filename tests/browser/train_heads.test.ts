/**
 * The example page's "Train draft heads" panel works for a person, in Chromium on webgl: served
 * with stories260K (read from `<repo>/../shared/models/stories260K/`; the suite skips without it,
 * or fails under CI), it trains identity-initialised mlp heads by self-distillation on the page's
 * backend (short texts, set in the panel's fields, so that the model writes them in seconds); the
 * held-out τ shown rises above the untrained heads' while a heartbeat in the page
 * keeps ticking (no gap of half a second once steps run); Stop, clicked mid-training, takes effect within seconds and keeps
 * the best heads; the trained model joins the Model list, its race is identical to greedy, and
 * the download link offers the heads file (read back here with `readDraftHeads`: trained on webgl,
 * stopped by the signal).
 */
import { buffer } from 'node:stream/consumers';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExampleServer } from '../../examples/browser/serve.js';
import type { LaneResult } from '../../examples/browser/main.js';
import type { TrainPanelState } from '../../examples/browser/train_panel.js';
import { readDraftHeads } from '../../src/models/draft_heads.js';
import { browserSuiteEnabled } from '../../tools/browser/chromium.js';
import { STORIES_DIR, storiesAvailable } from '../helpers/stories.js';
import { checkpointForTests, openBrowser } from './harness.js';

const SUITE = 'tests/browser/train_heads';
/**
 * The training budget. Stop comes as soon as τ has risen (~10–15 s in on SwiftShader), so the budget
 * is slack for a loaded machine; it also sets the panel's evaluation interval (a fifteenth of it,
 * at least 1.5 s), so that τ is estimated every few training steps.
 */
const BUDGET_SECONDS = 30;
/**
 * Texts the model writes: 32 of 48 tokens, written together (48 token steps of the batch: ~7 s on
 * SwiftShader; half the budget bounds it); a batch and learning rate that move τ within ten steps
 * of training (~0.3 s each on SwiftShader).
 */
const TUNING = { corpus: '1536', length: '48', batch: '256', learningRate: '0.02' };
/** The panel's τ must have risen at least this far above the untrained heads' before Stop is clicked. */
const RISE = 0.2;
/** Largest gap of the page's heartbeat once training steps run (ms). */
const MAX_GAP_MS = 500;
/**
 * …and before it (ms): building the model, and WebGL compiling each new shader program
 * synchronously at its first use (the generation step, the evaluation, the training step), take
 * ~0.3–0.9 s at a time on SwiftShader.
 */
const MAX_WARMUP_GAP_MS = 1500;
/** Stop must end training within this (ms): the step in flight and a held-out evaluation or two. */
const STOP_WITHIN_MS = 3000;
/** Tokens each lane of the race decodes. */
const RACE_TOKENS = 8;

type Heartbeat = { maxGap: Record<string, number>; ticks: number };

/**
 * Starts a setTimeout heartbeat in the page recording the largest gap between ticks: per panel
 * phase before the first training step, then as `steps` (training and evaluating).
 */
async function startHeartbeat(page: Page): Promise<() => Promise<Heartbeat>> {
  await page.evaluate(() => {
    const beat = { maxGap: {} as Record<string, number>, ticks: 0 };
    (window as unknown as { heartbeat: typeof beat }).heartbeat = beat;
    const phaseNow = () => {
      const card = document.getElementById('train-card')!;
      if (card.dataset.phase !== 'training' && card.dataset.phase !== 'evaluating') return card.dataset.phase!;
      return (JSON.parse(card.dataset.state!) as { step: number }).step > 0 ? 'steps' : `${card.dataset.phase} (warm-up)`;
    };
    let last = performance.now();
    let phase = phaseNow();
    const tick = () => {
      const now = performance.now();
      beat.maxGap[phase] = Math.max(beat.maxGap[phase] ?? 0, now - last); // the gap belongs to the phase that was running when it began
      beat.ticks += 1;
      last = now;
      phase = phaseNow();
      setTimeout(tick, 10);
    };
    setTimeout(tick, 10);
  });
  return () => page.evaluate(() => structuredClone((window as unknown as { heartbeat: Heartbeat }).heartbeat));
}

const panelState = async (page: Page): Promise<TrainPanelState> => JSON.parse((await page.getAttribute('#train-card', 'data-state')) ?? '{}') as TrainPanelState;

describe.skipIf(!browserSuiteEnabled(SUITE) || !storiesAvailable(SUITE))('the example page trains draft heads (stories260K, Chromium, webgl)', () => {
  let server: Awaited<ReturnType<typeof startExampleServer>>;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    server = await startExampleServer({ checkpoint: checkpointForTests(SUITE), llama2c: STORIES_DIR });
    browser = await openBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 1100 }, acceptDownloads: true });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
    });
    await page.goto(server.url);
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('Ready on webgl'), undefined, { timeout: 60_000 });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('trains mlp heads on webgl while the page responds; Stop keeps the best heads; the race is identical to greedy; the file downloads', async () => {
    expect(await page.textContent('#model-info')).toMatch(/^stories260K: .*Backend: webgl\.$/); // tf.getBackend() after loading: the page runs on webgl
    expect(await page.textContent('#train-base')).toBe('stories260K');
    await page.fill('#max-new', String(RACE_TOKENS));
    await page.fill('#train-seconds', String(BUDGET_SECONDS));
    await page.selectOption('#train-kind', 'mlp');
    await page.fill('#train-width', '64');
    await page.selectOption('#train-k', '4');
    expect(await page.isChecked('#train-self')).toBe(true); // self-distillation: the model writes its own text
    await page.fill('#train-corpus', TUNING.corpus);
    await page.fill('#train-length', TUNING.length);
    await page.fill('#train-batch', TUNING.batch);
    await page.fill('#train-lr', TUNING.learningRate);
    const heartbeat = await startHeartbeat(page);
    const t0 = Date.now();
    await page.click('#train');

    // Training on webgl: the held-out τ shown rises above the untrained heads' (identity mlp heads: τ ≈ 1.0–1.3).
    await page.waitForFunction(
      (rise) => {
        const state = JSON.parse(document.getElementById('train-card')?.dataset.state ?? '{}') as TrainPanelState;
        if (state.phase === 'error' || state.phase === 'done') return true;
        return state.taus.length >= 2 && state.taus.at(-1)!.tau > state.taus[0]!.tau + rise;
      },
      RISE,
      { timeout: (BUDGET_SECONDS + 30) * 1000, polling: 250 },
    );
    const live = await panelState(page);
    const readout = (await page.textContent('#train-readout')) ?? '';
    console.log(`train panel, ${((Date.now() - t0) / 1000).toFixed(1)} s after Train: ${readout} | τ at (s): ${live.taus.map((t) => `${t.seconds.toFixed(1)} ${t.tau.toFixed(2)}`).join(', ')}`);
    expect(live.phase, live.message).toMatch(/^(training|evaluating)$/); // still training: the budget has not run out
    expect(live.backend).toBe('webgl');
    expect(live.taus[0]!.tau).toBeGreaterThanOrEqual(1);
    expect(live.taus[0]!.tau).toBeLessThan(1.4);
    expect(readout).toMatch(new RegExp(String.raw`^Step \d+, loss \d+\.\d{3} \(offsets [\d.]+ \/ [\d.]+ \/ [\d.]+\), [\d.]+k positions\/s · held-out τ \d\.\d\d → \d\.\d\d \(best \d\.\d\d\) · \d+ s of ${BUDGET_SECONDS} s on webgl$`));
    expect(await page.locator('#train-spark polyline').count()).toBe(1);
    expect(await page.isDisabled('#train')).toBe(true);
    expect(await page.isDisabled('#race')).toBe(true); // the page's controls are locked while training

    // Stop, mid-training: it takes effect within seconds and the best heads are kept.
    const clicked = Date.now();
    await page.click('#train-stop', { force: true, timeout: 2000 }); // no actionability wait: the button must take the click while training runs
    await page.waitForFunction(() => /^(stopped|done|error)$/.test(document.getElementById('train-card')?.dataset.phase ?? ''), undefined, { timeout: 30_000 });
    const stopMs = Date.now() - clicked;
    const beat = await heartbeat();
    const state = await panelState(page);
    console.log(`train panel stop: ${stopMs} ms after the click; ${state.message} | heartbeat max gap per phase (ms): ${JSON.stringify(beat.maxGap)}, ${beat.ticks} ticks`);
    expect(state.phase, state.message).toBe('stopped');
    expect(stopMs).toBeLessThan(STOP_WITHIN_MS);
    expect(state.result!.stoppedBy).toBe('signal');
    expect(state.result!.tau!).toBeGreaterThan(state.taus[0]!.tau + RISE); // the kept heads are better than the untrained ones
    expect(state.result!.tau!).toBeCloseTo(Math.max(...state.taus.map((t) => t.tau)), 6); // …and the best evaluated
    expect(state.message).toMatch(/^Stopped after \d+ steps: the best heads so far are kept \(held-out τ \d\.\d\d → \d\.\d\d\)\.$/);
    expect(beat.maxGap['steps']!, 'heartbeat gap once training steps run').toBeLessThan(MAX_GAP_MS);
    for (const [phase, gap] of Object.entries(beat.maxGap)) expect(gap, `heartbeat gap while ${phase}`).toBeLessThan(MAX_WARMUP_GAP_MS); // loading the model and the first use of each program

    // The trained model is the page's model now; the controls are unlocked.
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.endsWith('Ready on webgl.'), undefined, { timeout: 30_000 });
    const entry = 'stories260K + trained mlp-k4-w64';
    expect(await page.locator('#model option:checked').textContent()).toBe(`${entry} (llama2.c)`);
    expect(await page.textContent('#model-info')).toMatch(new RegExp(`^${entry.replace(/\+/g, '\\+')}: \\d+k parameters, k = 4 heads \\(trained draft heads stories260K-mlp-k4-w64\\.bin\\).*Backend: webgl\\.$`));
    expect(await page.isDisabled('#train')).toBe(false);
    expect(await page.isDisabled('#train-stop')).toBe(true);

    // The download link offers the heads file: read back, it is the kept heads, trained on webgl.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#train-download')]);
    expect(download.suggestedFilename()).toBe('stories260K-mlp-k4-w64.bin');
    const bytes = new Uint8Array(await buffer(await download.createReadStream())); // the tier's Chromium is remote: the file comes as a stream
    expect(bytes.length).toBe(state.result!.bytes);
    const heads = readDraftHeads(bytes);
    const training = heads.manifest.training as { backend: string; stoppedBy: string; heldOut: { tau: number } };
    expect([heads.manifest.kind, heads.manifest.numHeads, heads.manifest.headHiddenSize]).toEqual(['mlp', 4, 64]);
    expect(training.backend).toBe('webgl'); // tf.getBackend() in the page when training ended
    expect(training.stoppedBy).toBe('signal');
    expect(training.heldOut.tau).toBeCloseTo(state.result!.tau!, 6);
    // The Model entry's own URL (used to reload it after a backend switch) serves the same file.
    const served = await page.evaluate(async () => {
      const url = (document.getElementById('train-download') as HTMLAnchorElement).href;
      return (await (await fetch(`${url}#stories260K-mlp-k4-w64.bin`)).arrayBuffer()).byteLength;
    });
    expect(served).toBe(bytes.length);

    // The race with the new heads: every lane writes greedy's text.
    await page.click('#train-race');
    await page.waitForFunction(() => /^(Race done|Error)/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 90_000 });
    expect(await page.textContent('#status')).toBe('Race done on webgl.');
    const rows = JSON.parse((await page.getAttribute('#race-table', 'data-results')) ?? '[]') as LaneResult[];
    console.log(`train panel race: ${rows.map((r) => `${r.lane} τ ${r.tau.toFixed(2)} (${r.forwards} forwards)`).join(' | ')}; ${((Date.now() - t0) / 1000).toFixed(1)} s since Train`);
    expect(rows.map((r) => r.lane)).toEqual(['greedy', 'chain', 'tree']);
    for (const r of rows) {
      expect(r.backend).toBe('webgl');
      expect(r.tokens).toBe(RACE_TOKENS);
      expect(r.identical).toBe(true);
    }
    expect(rows[1]!.forwards).toBeLessThan(rows[0]!.forwards); // the new heads' drafts are kept
    expect(await page.textContent('#race-verdict')).toMatch(/outputs identical ✓$/);
    expect(errors).toEqual([]);
  }, 300_000);
});
