/**
 * `draftLength: 'auto'` and `tree: 'auto'` (tuner.ts): warm-up order, the size of the most
 * expected tokens per millisecond (0 — an ordinary step — included), periodic probes, memory per
 * model; and in the loop, on models whose step cost is simulated on a fake clock: where every
 * verified row costs its full price (the cpu backend) 'auto' settles on ordinary steps, where rows
 * are nearly free (wasm at small sizes) on the longest drafts — the output identical to greedy
 * decoding either way.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { greedyDecode, speculativeDecode, speculativeStream, type MultiTokenModel } from '../../src/index.js';
import { StepTuner, TUNER_DEFAULTS } from '../../src/decoding/tuner.js';
import { CachedTransformer } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';
import { tinyTransformer } from '../helpers/models.js';
import { TableModel } from '../helpers/toy_models.js';

beforeAll(useCpu);
afterEach(() => vi.restoreAllMocks());

/** A fresh object to key the tuner's memory by (it is only used as a WeakMap key). */
const anyModel = () => ({}) as MultiTokenModel;

describe('StepTuner', () => {
  it('warms up the largest size, then 0, then takes the most tokens per millisecond', () => {
    const t = new StepTuner(anyModel(), 'k', [0, 1, 2, 3], 3);
    const sizes: number[] = [];
    const cost = (d: number) => 1 + d; // every row at full price
    for (let i = 0; i < 2 * TUNER_DEFAULTS.warmup; i++) {
      const d = t.choose((n) => t.expectedChain(n));
      sizes.push(d);
      t.record(d, cost(d));
      if (d > 0) t.observeChain(d, 1); // the first draft kept, the others not: a_1 = 1, a_2 = a_3 = 0
    }
    expect(sizes).toEqual([3, 3, 3, 0, 0, 0]);
    // E(1) / c(1) = 2 / 2 = 1 = E(0) / c(0): ties go to the smaller size; E(3)/c(3) = 2/4
    expect(t.choose((n) => t.expectedChain(n))).toBe(0);
    expect(t.cost(1)).toBeCloseTo(2, 12); // interpolated between the measured 0 and 3
  });

  it('flat costs: the longest drafts; steep costs and a poor drafter: ordinary steps', () => {
    const flat = new StepTuner(anyModel(), 'k', [0, 1, 2, 3], 3);
    for (const d of [0, 0, 0, 3, 3, 3]) flat.record(d, 1);
    for (let i = 0; i < 20; i++) flat.observeChain(3, 2);
    expect(flat.choose((n) => flat.expectedChain(n))).toBe(2); // a_3 = 0: E(3) = E(2) = 3 at the same cost, and ties keep the smaller
    for (let i = 0; i < 20; i++) flat.observeChain(3, 3);
    expect(flat.choose((n) => flat.expectedChain(n))).toBe(3); // now a_3 > 0
    const steep = new StepTuner(anyModel(), 'k', [0, 1, 2, 3], 3);
    for (const d of [0, 0, 0, 3, 3, 3]) steep.record(d, 1 + 3 * d);
    for (let i = 0; i < 20; i++) steep.observeChain(3, 3); // every draft kept: E(3) = 4 at cost 10
    expect(steep.choose((n) => steep.expectedChain(n))).toBe(0);
  });

  it(`probes the size not in use after ${TUNER_DEFAULTS.probeEvery} steps, for two steps, then ever more rarely while the choice holds`, () => {
    const t = new StepTuner(anyModel(), 'k', [0, 1, 2, 3], 3);
    for (const d of [0, 0, 0, 3, 3, 3]) t.record(d, 1);
    for (let i = 0; i < 20; i++) t.observeChain(3, 3);
    const picks = Array.from({ length: 2000 }, () => t.choose((n) => t.expectedChain(n)));
    const starts = picks.flatMap((d, i) => (d === 0 && picks[i - 1] !== 0 ? [i] : []));
    expect(starts[0]).toBe(TUNER_DEFAULTS.probeEvery - 1); // the low end: the high one is in use
    starts.forEach((s) => expect(picks.slice(s, s + 3)).toEqual([0, 0, 3])); // two steps each
    const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
    gaps.slice(1).forEach((g, i) => expect(g).toBeGreaterThanOrEqual(gaps[i]!)); // the interval grows while the choice holds …
    expect(Math.max(...gaps)).toBeLessThanOrEqual(TUNER_DEFAULTS.maxProbeEvery + 2); // … up to its ceiling
    expect(picks.filter((d) => d === 0).length).toBeLessThan(20);
  });

  it('costs between, below and past the measured sizes: linear between, the nearest below, the last slope (never falling) past', () => {
    const t = new StepTuner(anyModel(), 'tree', [0, 1, 2, 3, 4, 5, 6, 7, 8], 8);
    t.record(2, 3);
    expect([0, 2, 5].map((n) => t.cost(n))).toEqual([3, 3, 3]); // one measured size: its cost everywhere
    t.record(4, 4);
    t.record(4, 5); // the fastest recent step is the size's cost
    expect([0, 1, 2, 3, 4, 6, 8].map((n) => t.cost(n))).toEqual([3, 3, 3, 3.5, 4, 5, 6]);
    t.record(6, 3.5); // a cheaper larger size: past it the cost stays flat, never falls
    expect([5, 6, 7, 8].map((n) => t.cost(n))).toEqual([3.75, 3.5, 3.5, 3.5]);
  });

  it('remembers per model, backend and key: a second tuner starts where the first left off', () => {
    const model = anyModel();
    const a = new StepTuner(model, 'chain', [0, 1, 2], 2);
    for (const d of [0, 0, 0, 2, 2, 2]) a.record(d, 1);
    const b = new StepTuner(model, 'chain', [0, 1, 2], 2);
    expect(b.cost(2)).toBe(1);
    expect(new StepTuner(model, 'other', [0, 1, 2], 2).cost(2)).toBeNull();
    expect(new StepTuner(anyModel(), 'chain', [0, 1, 2], 2).cost(2)).toBeNull();
  });

  it('trees: expected tokens from the remembered best-first scores, scaled by the acceptance seen so far', () => {
    const t = new StepTuner(anyModel(), 'tree', [0, 1, 2, 3], 2);
    t.rememberScores([Math.log(0.5), Math.log(0.25), Math.log(0.125)]);
    expect(t.expectedTree(0)).toBe(1);
    expect(t.expectedTree(2)).toBeCloseTo(1.75, 12);
    t.observeTree(1, 0.5); // half of what the scores promised was accepted
    expect(t.expectedTree(3)).toBeCloseTo(1 + 0.5 * 0.875, 12);
  });
});

/**
 * `inner` with a fake clock: every forward advances `performance.now()` by `cost(rows)` ms, so the
 * tuner sees the step costs a backend would show, deterministically.
 */
function onFakeClock(inner: MultiTokenModel, cost: (rows: number) => number): MultiTokenModel {
  let clock = 0;
  vi.spyOn(globalThis.performance, 'now').mockImplementation(() => clock);
  const advance = (rows: number) => (clock += cost(rows));
  return Object.create(inner, {
    forward: { value: (ids: readonly number[]) => (advance(ids.length), inner.forward(ids)) },
    forwardTree: { value: (ids: readonly number[], parents: readonly number[]) => (advance(ids.length), inner.forwardTree!(ids, parents)) },
  });
}

/** A counting model: every offset is right (each draft is accepted), k = 4. */
function countingModel(V = 40): TableModel {
  return new TableModel(Array.from({ length: 4 }, (_, j) => Array.from({ length: V }, (_, a) => Array.from({ length: V }, (_, b) => (b === (a + 1 + j) % V ? 10 : 0)))));
}

describe("'auto' in the loop (fake clock)", () => {
  it('rows at full price and drafts never right: settles on ordinary steps; identical to greedy', async () => {
    const layers = tinyTransformer({ mtpHeads: 4, maxLength: 200 }); // untrained heads: drafts rarely right
    const inner = new CachedTransformer(layers);
    const greedy = await greedyDecode(inner, [1, 2, 3], { maxNewTokens: 120 });
    const model = onFakeClock(inner, (rows) => rows); // 1 ms per row
    const drafted: number[] = [];
    await expectNoLeak(async () => {
      const tokens: number[] = [];
      for await (const c of speculativeStream(model, [1, 2, 3], { maxNewTokens: 120 })) {
        tokens.push(...c.tokens);
        drafted.push(c.drafted);
      }
      expect(tokens).toEqual(greedy.tokens);
    });
    const settled = drafted.slice(2 * TUNER_DEFAULTS.warmup + 4);
    expect(settled.filter((d) => d === 0).length / settled.length).toBeGreaterThan(0.9); // ordinary steps but for the probes
    inner.dispose();
    layers.dispose();
  });

  it('rows nearly free and drafts always right: settles on the longest drafts', async () => {
    const table = countingModel();
    const model = onFakeClock(table, (rows) => 1 + 0.01 * rows);
    const r = await expectNoLeak(() => speculativeDecode(model, [0], { maxNewTokens: 200 }));
    expect(r.tokens).toEqual(Array.from({ length: 200 }, (_, i) => (i + 1) % 40));
    expect(r.stats.meanAcceptedLength).toBeGreaterThan(3.5); // 4 per step but for the warm-up's and the probes' ordinary steps
    table.dispose();
  });

  it('a second decode on the same model starts from what the first learned (no warm-up again)', async () => {
    const table = countingModel();
    const model = onFakeClock(table, (rows) => 1 + 0.01 * rows);
    await speculativeDecode(model, [0], { maxNewTokens: 60 });
    const second = await speculativeDecode(model, [0], { maxNewTokens: 60 });
    expect(second.stats.forwards).toBe(1 + 60 / 4 - 1 + 1); // the prompt's step commits 1, then every step 4
    table.dispose();
    void tf;
  });
});
