/**
 * Real-browser parity: for each tfjs backend Chromium offers (webgl, webgpu — both on
 * SwiftShader here, webgpu with tfjs's small-output-size matMul program throughout: see
 * tests/browser/pages/parity_page.ts —, wasm, cpu) a page builds the tiny MTP model and the
 * reference transformer from the same fixed weights as Node, and must
 *
 * - produce the same logits as Node's cpu backend, within a per-backend tolerance;
 * - decode the same tokens: speculativeDecode (greedy acceptance) equals greedyDecode token for
 *   token, through `fromLayersModel` and through the KV-cached `CachedTransformer`, with every
 *   drafter (the heads as a chain, `draftLength: 'auto'` and a dynamic tree; prompt lookup; prompt
 *   lookup then the heads; a drafter of the page's own proposing trees; sequential MTP modules),
 *   with and without a draft vocabulary, and all equal Node's greedy tokens; speculative sampling
 *   (seeded; plain, with `topK`/`topP`, with a draft vocabulary) gives `maxNewTokens` valid ids
 *   (webgl leaves out the variants whose code another decode runs there: `WEBGL_SKIPPED`);
 * - read back exactly once per model forward (one awaited `data()` per step);
 * - leave `tf.memory().numTensors` unchanged across every decode;
 * - never read GPU data back synchronously during a decode (no `dataSync` in the loops:
 *   WebGPU has no real synchronous readback).
 *
 * Tree drafting on webgl, in the same page: tfjs-backend-webgl's TopK reads its input back
 * synchronously for every vocabulary here, so the tree decoders rank with the library's on-device
 * top-k there (src/internal/topk.ts). Through each ranking path — parallel heads' `headTopK`,
 * sequential modules' `headTree`, the verifier's own top-k under sampling acceptance — a tree
 * decode of the transformer (tests/browser/pages/tree_webgl_page.ts) must do zero synchronous
 * GPU→CPU downloads and leave no tensor behind, and the greedy trees must equal cached greedy.
 *
 * Chromium missing: the suite skips with a loud warning, or fails when `CI` is set.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserSuiteEnabled } from '../../tools/browser/chromium.js';
import { startHarness, type BrowserHarness } from './harness.js';
import type { BackendName } from './pages/backend.js';
import { DECODES, EXCLUDING_VOCAB_DECODES, OWN_DRAFTER, runCase, type CaseResult, type CaseSpec, type DecodeSummary } from './pages/cases.js';
import { buildTiny, buildTransformer, fixedWeights, type TinyConfig } from './pages/models.js';
import type { ParityPage } from './pages/parity_page.js';
import type { TreeDecodeRun, TreeWebglPage } from './pages/tree_webgl_page.js';
import type { TransformerConfig } from '../../src/models/index.js';

const BACKENDS: BackendName[] = ['webgl', 'webgpu', 'wasm', 'cpu'];
const CASES = ['tiny', 'transformer'] as const;

/**
 * Decodes webgl leaves out, each because another decode runs the same code on the same backend
 * (on SwiftShader each costs a second or more, mostly compiling its shapes' programs):
 *
 * - `speculative` (the transformer through `fromLayersModel`): the adapter's loop is the tiny
 *   case's `speculative`, the transformer's full-sequence graph is its logits probe;
 * - `auto`: the tuner that sizes each step's chain runs on the JS side; its forwards are the
 *   chains `cachedSpeculative` verifies;
 * - `promptLookup`: prompt lookup drafts first in `lookupThenHeads`, and a drafter of one's own
 *   is verified in `ownTree`;
 * - `vocabLookupThenHeads`: the drafter list is `lookupThenHeads`', the heads under the excluding
 *   draft vocabulary `vocabHeads`' and `vocabTree`'s;
 * - `sequential`: `sequentialSubset` drafts with the same sequential modules, through the draft
 *   vocabulary's projection (the whole vocabulary's is the verifier's own);
 * - `sampled`: `sampledTopKTopP` runs the same speculative sampling with the top-k and top-p
 *   filters on.
 *
 * webgpu, wasm, cpu and Node run every decode.
 */
const WEBGL_SKIPPED: Record<(typeof CASES)[number], readonly string[]> = { tiny: [], transformer: ['speculative', 'auto', 'promptLookup', 'vocabLookupThenHeads', 'sequential', 'sampled'] };

/** The decodes of `group` that the `backend` page runs for case `name`. */
function decodesOn(backend: BackendName, name: (typeof CASES)[number], group: 'greedy' | 'sampled'): string[] {
  const skipped = backend === 'webgl' ? WEBGL_SKIPPED[name] : [];
  return DECODES[name][group].filter((d) => !skipped.includes(d));
}

/** Every greedy(-acceptance) decode on `backend`, as [case, decode] (each must equal greedy). */
const greedyDecodes = (backend: BackendName) => CASES.flatMap((c) => decodesOn(backend, c, 'greedy').map((d) => [c, d] as const));
/** Every decode on `backend`, greedy-acceptance and sampled, as [case, decode, group]. */
const allDecodesOn = (backend: BackendName) =>
  CASES.flatMap((c) => [...decodesOn(backend, c, 'greedy').map((d) => [c, d, 'decodes'] as const), ...decodesOn(backend, c, 'sampled').map((d) => [c, d, 'sampled'] as const)]);

/**
 * Logit tolerance against Node's cpu backend: |browser − node| ≤ atol + rtol·|node|, element-wise.
 * cpu runs the same kernels as Node (measured: bit-identical); wasm (XNNPACK, another summation
 * order), WebGL (float32 textures, GPU exp/tanh) and WebGPU (float32 buffers) measured ≤ 4e-6 on
 * logits of magnitude ≤ ~10 here, so 1e-4 leaves a 25× margin. The test prints the measured errors.
 */
const TOLERANCE: Record<BackendName, { atol: number; rtol: number }> = {
  cpu: { atol: 1e-6, rtol: 1e-6 },
  wasm: { atol: 1e-4, rtol: 1e-4 },
  webgl: { atol: 1e-4, rtol: 1e-4 },
  webgpu: { atol: 1e-4, rtol: 1e-4 },
};

/** Smallest top-1/top-2 logit gap on Node's greedy path for the token comparison to be well posed (≫ the tolerances). */
const MIN_MARGIN = 1e-2;

const TINY: TinyConfig = { length: 32, vocabSize: 40, hidden: 24, numHeads: 4 };
/** New tokens of the tiny model's decodes: each is a full forward of its fixed length, where drafts are both kept and rejected. */
const TINY_TOKENS = 12;
/** New tokens of the transformer's decodes: short (every decode is a dozen SwiftShader forwards at most), past the greedy path's change of token. */
const TRANSFORMER_TOKENS = 8;
const TRANSFORMER: TransformerConfig = { vocabSize: 48, maxLength: 64, hiddenSize: 32, numLayers: 1, numAttentionHeads: 2, mlpRatio: 2, mtpHeads: 4, headKind: 'residual', seed: 3 };
/** The transformer's `fixedWeights` seed. */
const TRANSFORMER_SEED = 23;
/** The webgl page's tree decodes: the transformer's prompt, new tokens. */
const TREE_PROMPT = [2, 7, 1, 8];
const TREE_TOKENS = 5;
type TreeRuns = Record<'greedy' | 'headTopK' | 'headTree' | 'sampled', TreeDecodeRun>;

function makeSpecs(): Record<'tiny' | 'transformer', CaseSpec> {
  const tiny = buildTiny(TINY);
  const transformer = buildTransformer(TRANSFORMER);
  const specs = {
    tiny: { model: { kind: 'tiny', config: TINY }, weights: fixedWeights(tiny, 11, { gain: 3, offsetsNearIdentity: true }), probe: [1, 5, 9, 2, 33, 7], prompt: [3, 14, 15, 9, 26], maxNewTokens: TINY_TOKENS, draftLength: 3 },
    transformer: { model: { kind: 'transformer', config: TRANSFORMER }, weights: fixedWeights(transformer, TRANSFORMER_SEED), probe: [4, 8, 15, 16, 23, 42, 0, 47], prompt: [2, 7, 1, 8], maxNewTokens: TRANSFORMER_TOKENS, draftLength: 3 },
  } satisfies Record<string, CaseSpec>;
  tiny.dispose();
  transformer.dispose();
  return specs;
}

/** What one backend's page produced. */
interface PageRun {
  backend: string;
  detail: string;
  counterSeesDataSync: boolean;
  results: Record<'tiny' | 'transformer', CaseResult>;
  /** webgl only: the tree decodes, and how many synchronous downloads `tf.topk` and the library's `topk2d` did. */
  trees: { runs: TreeRuns; probe: { tfTopk: number; topk2d: number } } | null;
  errors: string[];
}

/** Opens a page on `backend`, runs both cases there (without the decodes it leaves out), closes it. */
async function runPage(harness: BrowserHarness, backend: BackendName, specs: Record<'tiny' | 'transformer', CaseSpec>): Promise<PageRun> {
  const { page, errors } = await harness.open('parity');
  try {
    const info = await page.evaluate((b) => (globalThis as unknown as { parity: ParityPage }).parity.init(b), backend);
    const results = {} as PageRun['results'];
    for (const name of CASES) {
      const all = [...DECODES[name].greedy, ...DECODES[name].sampled] as string[];
      const run = [...decodesOn(backend, name, 'greedy'), ...decodesOn(backend, name, 'sampled')];
      const spec: CaseSpec = { ...specs[name], skip: all.filter((d) => !run.includes(d)) };
      results[name] = await page.evaluate((s) => (globalThis as unknown as { parity: ParityPage }).parity.run(s), spec);
    }
    let trees: PageRun['trees'] = null;
    if (backend === 'webgl') {
      const tree = await page.evaluate(() => (globalThis as unknown as { treeWebgl: TreeWebglPage }).treeWebgl.init('webgl'));
      const runs = await page.evaluate(
        ([config, seed, prompt, n]) => (globalThis as unknown as { treeWebgl: TreeWebglPage }).treeWebgl.run(config, seed, prompt, n),
        [TRANSFORMER, TRANSFORMER_SEED, TREE_PROMPT, TREE_TOKENS] as const,
      );
      trees = { runs, probe: tree.probe };
    }
    return { ...info, results, trees, errors };
  } finally {
    await page.close();
  }
}

/** Worst error of `actual` against `expected`, as a fraction of the allowed error (≤ 1 passes), and the worst absolute error. */
function compare(actual: number[], expected: number[], tol: { atol: number; rtol: number }): { ratio: number; maxAbs: number } {
  let ratio = 0;
  let maxAbs = 0;
  expected.forEach((e, i) => {
    const err = Math.abs(actual[i] - e);
    maxAbs = Math.max(maxAbs, err);
    ratio = Math.max(ratio, err / (tol.atol + tol.rtol * Math.abs(e)));
  });
  return { ratio, maxAbs };
}

/** Every decode of a case's result, greedy-acceptance and sampled, by name. */
function allDecodes(r: CaseResult): [string, DecodeSummary][] {
  return [...Object.entries(r.decodes), ...Object.entries(r.sampled)];
}

/** Steps each drafter was credited with, by name (the drafters a decode actually used). */
function drafterSteps(d: DecodeSummary): Record<string, number> {
  return Object.fromEntries(Object.entries(d.drafters).map(([name, s]) => [name, s.steps]));
}

/** What every backend (and Node) must show of the transformer's drafters and draft vocabularies, in the decodes it ran. */
function checkDrafting(where: string, r: CaseResult): void {
  const { decodes } = r;
  // each drafter is credited under its name, and lookup-then-heads used both
  if (decodes.promptLookup) expect(Object.keys(decodes.promptLookup.drafters), `${where} promptLookup`).toEqual(['promptLookup']);
  expect(Object.keys(decodes.ownTree.drafters), `${where} ownTree`).toEqual([OWN_DRAFTER]);
  expect(Object.keys(decodes.lookupThenHeads.drafters).sort(), `${where} lookupThenHeads`).toEqual(['heads', 'promptLookup']);
  // a draft vocabulary without the greedy tokens: no draft of the heads can be kept (so it is in force) ...
  for (const name of EXCLUDING_VOCAB_DECODES.filter((d) => d in decodes)) {
    expect(decodes[name].drafters.heads?.steps, `${where} ${name}: the heads drafted`).toBeGreaterThan(0);
    expect(decodes[name].drafters.heads.accepted, `${where} ${name}: heads' drafts kept`).toBe(0);
  }
  // ... and a subset holding them keeps drafts (its indices map back to token ids)
  expect(decodes.sequentialSubset.accepted, `${where} sequentialSubset`).toBeGreaterThan(0);
}

describe.skipIf(!browserSuiteEnabled('tests/browser/parity'))('browser parity (Chromium)', () => {
  let harness: BrowserHarness;
  const reference: Partial<Record<'tiny' | 'transformer', CaseResult>> = {};
  /** One page per backend, all started at once (SwiftShader compiles slowly; the pages overlap). */
  const runs = new Map<BackendName, Promise<PageRun>>();

  beforeAll(async () => {
    harness = await startHarness('tests/browser/pages/parity_page.ts');
    await tf.setBackend('cpu');
    const specs = makeSpecs();
    for (const backend of BACKENDS) {
      const run = runPage(harness, backend, specs);
      run.catch(() => undefined); // reported by that backend's hook; never an unhandled rejection
      runs.set(backend, run);
    }
    for (const name of CASES) reference[name] = await runCase(specs[name]);
  }, 300_000);

  afterAll(async () => {
    await Promise.allSettled(runs.values());
    await harness?.close();
  });

  it('Node reference: the greedy paths are far from ties, and speculative equals greedy on cpu', () => {
    for (const name of CASES) {
      const r = reference[name]!;
      console.log(`node cpu ${name}: min top-2 margin ${r.minMargin.toFixed(4)}, speculative τ = ${r.decodes.speculative.meanAcceptedLength.toFixed(2)}, accepted ${r.decodes.speculative.accepted}/${r.decodes.speculative.drafted}`);
      expect(r.minMargin).toBeGreaterThan(MIN_MARGIN);
      expect(r.decodes.speculative.tokens).toEqual(r.decodes.greedy.tokens);
      // the weights make verification both keep and reject drafts, so both paths run in every browser
      expect(r.decodes.speculative.accepted).toBeGreaterThan(0);
      expect(r.decodes.speculative.accepted).toBeLessThan(r.decodes.speculative.drafted);
      expect(r.numTensors.after).toBe(r.numTensors.before);
      expect(r.leftBehind, `node ${name}: tensors left behind by the case`).toBe(0);
      expect(Object.keys(r.decodes), `node ${name}`).toEqual([...DECODES[name].greedy]);
      expect(Object.keys(r.sampled), `node ${name}`).toEqual([...DECODES[name].sampled]);
      for (const [decoder, d] of Object.entries(r.decodes)) expect(d.tokens, `node ${name} ${decoder}`).toEqual(r.decodes.greedy.tokens);
      for (const [decoder, d] of allDecodes(r)) {
        expect(d.reads, `node ${name} ${decoder}: readbacks`).toBe(d.forwards);
        expect(d.numTensors.after, `node ${name} ${decoder}: numTensors`).toBe(d.numTensors.before);
      }
    }
    const t = reference.transformer!;
    checkDrafting('node transformer', t);
    // every kind of drafter keeps some drafts here, so the accept path runs for each of them in every browser
    for (const name of ['promptLookup', 'lookupThenHeads', 'ownTree', 'tree', 'sequential'] as const) {
      expect(t.decodes[name].accepted, `node transformer ${name}`).toBeGreaterThan(0);
    }
    console.log(`node cpu transformer drafters: ${allDecodes(t).map(([n, d]) => `${n} ${d.accepted}/${d.drafted} in ${d.forwards}`).join(', ')}`);
  });

  describe.each(BACKENDS)('%s', (backend) => {
    let errors: string[];
    let results: PageRun['results'];
    let counterSeesDataSync: boolean;
    let trees: PageRun['trees'];

    beforeAll(async () => {
      const run = await runs.get(backend)!;
      ({ errors, results, counterSeesDataSync, trees } = run);
      console.log(`${backend}: ${run.detail}`);
      expect(run.backend).toBe(backend);
    }, 300_000); // the pages run concurrently; SwiftShader under a loaded CI machine is slow

    // On webgpu the same probe cannot run: tfjs's emulated dataSync there returns zeros and breaks
    // every later read, so a synchronous readback in a decoder would fail the token tests outright.
    if (backend === 'webgl') {
      it('the sync-download counter sees a deliberate dataSync (so a zero count means something)', () => {
        expect(counterSeesDataSync).toBe(true);
      });

      it("tree drafting: webgl's tf.topk reads back synchronously (seen by the counter); topk2d does not", () => {
        console.log(`webgl tree decodes (ms): ${Object.entries(trees!.runs).map(([name, r]) => `${name} ${r.ms.toFixed(0)}`).join(', ')}`);
        expect(trees!.probe.tfTopk).toBe(1); // the counter works here, so the zeros below can fail
        expect(trees!.probe.topk2d).toBe(0);
      });

      it.each(['greedy', 'headTopK', 'headTree', 'sampled'] as const)('tree drafting, %s: no synchronous readback, no tensor left behind', (name) => {
        const r = trees!.runs[name];
        expect(r.tokens).toHaveLength(TREE_TOKENS);
        expect(r.syncDownloads).toBe(0);
        expect(r.numTensors.after).toBe(r.numTensors.before);
      });

      it('tree drafting: greedy trees equal cached greedy', () => {
        expect(trees!.runs.headTopK.tokens).toEqual(trees!.runs.greedy.tokens);
        expect(trees!.runs.headTree.tokens).toEqual(trees!.runs.greedy.tokens);
      });
    }

    it.each(CASES)('%s: logits equal Node cpu within tolerance', (name) => {
      const { ratio, maxAbs } = compare(results[name].logits, reference[name]!.logits, TOLERANCE[backend]);
      console.log(`${backend} ${name}: max |Δlogit| = ${maxAbs.toExponential(2)} (${(100 * ratio).toFixed(1)}% of the tolerance), case ${results[name].wallTimeMs.toFixed(0)} ms`);
      expect(results[name].logits.length).toBe(reference[name]!.logits.length);
      expect(ratio).toBeLessThanOrEqual(1);
    });

    it.each(CASES)('%s: the page ran every decode it was given', (name) => {
      expect(Object.keys(results[name].decodes)).toEqual(decodesOn(backend, name, 'greedy'));
      expect(Object.keys(results[name].sampled)).toEqual(decodesOn(backend, name, 'sampled'));
    });

    it.each(greedyDecodes(backend))('%s %s: equals greedy token for token, and equals Node', (name, decoder) => {
      const d = results[name].decodes[decoder]!;
      expect(d.tokens).toEqual(reference[name]!.decodes.greedy.tokens);
    });

    it.each(CASES)('%s: speculative keeps drafts and adds one token of its own per forward; greedy takes one forward per token', (name) => {
      const { decodes } = results[name];
      const spec = decodes.speculative ?? decodes.cachedSpeculative; // the transformer's recomputing adapter: not on webgl
      // each forward commits its kept drafts (sources j ≥ 1) and then one token of its own (source 0) — the
      // last one only if the token budget leaves room for it
      const own = spec.sources.filter((s) => s === 0).length;
      expect([spec.forwards - 1, spec.forwards]).toContain(own);
      expect(spec.accepted).toBeGreaterThanOrEqual(spec.tokens.length - own);
      expect(decodes.greedy.forwards).toBe(reference[name]!.decodes.greedy.tokens.length);
    });

    // The transformer's recomputing adapter does not run on webgl (WEBGL_SKIPPED).
    if (decodesOn(backend, 'transformer', 'greedy').includes('speculative')) {
      it('transformer: the KV-cached model keeps the same drafts as the recomputing adapter', () => {
        const { decodes } = results.transformer;
        expect(decodes.cachedSpeculative.sources).toEqual(decodes.speculative.sources);
        expect(decodes.cachedSpeculative.forwards).toBe(decodes.speculative.forwards);
      });
    }

    it('transformer: every drafter is credited by name, and the draft vocabularies are in force', () => {
      checkDrafting(backend, results.transformer);
      const { decodes } = results.transformer;
      // deterministic drafters (prompt lookup, the page's own) see the same text as in Node, so they draft and keep the same
      for (const name of (['promptLookup', 'ownTree'] as const).filter((d) => d in decodes)) {
        expect(drafterSteps(decodes[name]), `${backend} ${name}`).toEqual(drafterSteps(reference.transformer!.decodes[name]));
        expect(decodes[name].accepted, `${backend} ${name}`).toBe(reference.transformer!.decodes[name].accepted);
      }
      console.log(`${backend} transformer: cached speculative τ = ${decodes.cachedSpeculative.meanAcceptedLength.toFixed(2)}, ${decodes.cachedSpeculative.tokensPerSecond.toFixed(1)} tok/s; cached greedy ${decodes.greedy.tokensPerSecond.toFixed(1)} tok/s`);
      console.log(`${backend} transformer drafters: ${allDecodes(results.transformer).map(([n, d]) => `${n} ${d.accepted}/${d.drafted} in ${d.forwards} (${d.wallTimeMs.toFixed(0)} ms)`).join(', ')}`);
    });

    it.each(decodesOn(backend, 'transformer', 'sampled'))('transformer %s: speculative sampling gives maxNewTokens token ids', (name) => {
      const d = results.transformer.sampled[name];
      const vocab = TRANSFORMER.vocabSize!;
      console.log(`${backend} ${name}: ${d.tokens.join(',')} (node: ${reference.transformer!.sampled[name].tokens.join(',')})`);
      expect(d.tokens).toHaveLength(TRANSFORMER_TOKENS);
      for (const t of d.tokens) expect(Number.isInteger(t) && t >= 0 && t < vocab, `${backend} ${name}: token ${t}`).toBe(true);
      expect(d.sources).toHaveLength(d.tokens.length);
    });

    it.each(allDecodesOn(backend))('%s %s: one awaited readback per forward, no synchronous GPU readback, no tensor left behind', (name, decoder, group) => {
      const d = results[name][group][decoder]!;
      expect(d.reads, `readbacks in ${d.forwards} forwards`).toBe(d.forwards);
      expect(d.syncDownloads, 'synchronous GPU→CPU downloads').toBe(0);
      expect(d.numTensors.after, 'tf.memory().numTensors after the decode').toBe(d.numTensors.before);
    });

    it.each(CASES)('%s: no tensor left behind by the whole case, no page errors', (name) => {
      const r = results[name];
      expect(r.numTensors.after).toBe(r.numTensors.before);
      expect(r.leftBehind, 'tensors left behind by the case (models included)').toBe(0);
      expect(errors).toEqual([]);
    });
  });
});
