/**
 * `npm run bench` — decoding speed of a model on its prompts: every decoder, k ∈ {2, 3, 4},
 * wasm and cpu, one run, medians over repeats; then what one step costs (issue #10 §5) and what
 * yielding to the event loop costs. Prints markdown tables (`--json <file>` writes the rows).
 * See docs/performance.md.
 *
 *     npm run bench -- [--model DIR] [--backends wasm,cpu] [--repeats 3] [--json bench.json] [--prompts 6] [--tokens 80]
 *     npm run bench -- --model ../shared/models/stories260K --heads a.bin,b.bin [--temperature 0.8] [--ngram 3]
 *     npm run bench -- --tree [--model DIR] [--heads a.bin,b.bin] [--backends wasm,cpu] [--repeats 3]
 *
 * `--model`: fixtures/tslib-k4 (byte-level, held-out TypeScript prompts) by default, or a
 * llama2.c folder such as stories260K (story openings through its tokenizer); see
 * tools/bench_model.ts.
 *
 * tokens/s is total new tokens / total wall time over the prompts (median over repeats);
 * speedup is against cached greedy on the same backend, taken within each repeat (variants run
 * round-robin), median over repeats; τ = tokens per forward; acceptance of offset j = the
 * decoders' own `acceptedPerOffset / draftedPerOffset` summed over prompts.
 *
 * `--heads a.bin,b.bin` (a model with trained draft heads: llama2.c with any kind, the tfjs-mtp checkpoint with sequential modules; issue #12 §5) benchmarks the
 * heads instead: one row per heads file for `speculativeDecode` with greedy acceptance (against
 * cached greedy, output checked identical on every prompt) and with `'sampling'` acceptance at
 * `--temperature` (against ordinary sampling at that temperature, same seed; equality does not
 * apply), plus prompt lookup (the library's `promptLookupDrafter`: n-gram copy, greedy verification), the
 * no-training baseline. Prompts: the model's held-out prompts (`BenchModel.headsPrompts`: for
 * llama2.c story openings held out from the distillation corpus, for the byte-level checkpoint
 * the bench's held-out lib text). No step-cost pass in this mode.
 *
 * `--tree` (issue #13 §4, §6) benchmarks tree drafting instead: per backend, cached greedy, the
 * chain (k = 4), a static Medusa-style tree and dynamic trees of a few node budgets (including the
 * backend's `defaultTree`), for the model's own heads or each `--heads` file: τ, tokens/s, speedup
 * against cached greedy (within each repeat, median), nodes verified per step, ms per step and
 * whether every prompt's output equals greedy's (variants interleaved per prompt; besides the
 * medians, "best": each prompt's fastest decode over the repeats, for a loaded machine); then what one tree forward costs per node budget
 * (`measureTreeCosts`) and which budget `chooseBudget` would take at a few draft confidences.
 *
 * Step cost: the cached greedy and speculative decoders run once more through a timing proxy
 * of the model (tools/step_cost.ts): ms per step split into forward / heads / readback /
 * rollback / other, medians over every step after the prompt's; kernels per step come from a
 * separate counting pass so that counting does not distort the times.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  blockwiseDecode,
  DECODE_DEFAULTS,
  defaultTree,
  formatParameterReport,
  fromLayersModel,
  greedyDecode,
  headsDrafter,
  promptLookupDrafter,
  speculativeDecode,
  type DecodeResult,
  type MultiTokenModel,
  type TreeOption,
} from '../src/index.js';
import { chooseBudget, measureTreeCosts, type TreeCost } from '../src/decoding/tree_auto.js';
import { PROMPT_LOOKUP_DEFAULTS } from '../src/decoding/drafters.js';
import { CachedTransformer, setFusedKernels } from '../src/models/index.js';
import { parseCommandLine } from '../tools/args.js';
import { NODE_BACKENDS, useBackend, type NodeBackend } from '../tools/backend.js';
import { loadBenchModel, type BenchModel } from '../tools/bench_model.js';
import { headReport, REFERENCE_CHECKPOINT } from '../tools/checkpoint.js';
import { median } from '../tools/stats.js';
import { countKernels, instrument, StepRecorder, timeReadbacks, type StepCost } from '../tools/step_cost.js';

const COMMAND = {
  name: 'bench',
  usage: 'npm run bench -- [options]',
  summary: 'Decoding speed of a model on its prompts: every decoder, k ∈ {2, 3, 4}, per backend, and the cost of one step; prints markdown tables.',
  options: {
    model: { type: 'string', default: REFERENCE_CHECKPOINT, help: 'folder with model.json + weights.bin, or a llama2.c .bin + tok*.bin (e.g. stories260K)' },
    backends: { type: 'strings', default: NODE_BACKENDS, choices: NODE_BACKENDS, help: 'backends to measure, in order' },
    repeats: { type: 'number', default: 3, integer: true, min: 1, help: 'repeats per variant (medians are taken over them)' },
    json: { type: 'string', default: '', help: 'also write the rows to this JSON file' },
    prompts: { type: 'number', default: 0, integer: true, min: 0, help: 'prompts per backend (0: 6 on wasm, 2 on cpu; with --heads, every held-out story prompt)' },
    tokens: { type: 'number', default: 0, integer: true, min: 0, help: 'new tokens per prompt (0: 80 on wasm, 40 on cpu)' },
    heads: { type: 'strings', default: [], help: 'draft-heads files (exportDraftHeads) for a llama2.c --model: benchmark each (greedy and sampling acceptance) against cached greedy and prompt lookup' },
    temperature: { type: 'number', default: 0.8, help: "with --heads: temperature of the 'sampling' acceptance rows and of their baseline" },
    ngram: { type: 'number', default: PROMPT_LOOKUP_DEFAULTS.ngram, integer: true, min: 1, help: 'with --heads: longest n-gram prompt lookup matches' },
    tree: { type: 'boolean', help: 'benchmark tree drafting instead: chain vs static and dynamic trees at k = 4 (the model\'s heads, or each --heads file), and the tree forward\'s cost per node budget' },
  },
} as const;

/** Draft lengths k compared against greedy (k = 1). */
const KS = [2, 3, 4] as const;

interface Row {
  backend: string;
  decoder: string;
  k: number;
  /** `decodeOptions.yieldEveryMs` of the run (the default unless the row says otherwise). */
  yieldEveryMs: number;
  tokensPerSecond: number;
  speedup: number;
  tau: number;
  acceptance: number[]; // per offset 1…k-1
  equalsGreedy: boolean | null; // null: lossy decoder, not expected to match
  tokens: number;
  msPerForward: number;
  /** Step cost (cached greedy and speculative only, else null): median ms per step after the prompt's. */
  msPerStep: number | null;
  /** Kernel dispatches per step (same rows), from a separate counting pass. */
  kernelsPerStep: number | null;
  /** The step's split (same rows). */
  stepCost: StepCost | null;
  /** `--heads` rows: the heads file drafting ('–' for none). */
  heads?: string;
  /** `--heads` rows: tokens/s against cached greedy on the composite tfjs ops (fused kernels off), within each repeat, median. */
  speedupVsComposite?: number;
  /** `--heads` rows: what `speedup` is against. */
  speedupVs?: string;
  /** `--heads` rows: prompts whose output equals cached greedy's (lossless rows), of `prompts`. */
  identicalPrompts?: number;
  prompts?: number;
  /** `--tree` rows: the drafting ('chain', a static or dynamic tree) and the draft nodes verified per step (ms per step: `msPerForward`). */
  drafting?: string;
  nodesPerStep?: number;
  /**
   * `--tree` rows, best of repeats: each prompt's fastest decode over the repeats, summed — the
   * least disturbed measurement on a loaded machine — as ms per step and as speedup over greedy's.
   */
  msPerStepBest?: number;
  speedupBest?: number;
}

type Run = (model: MultiTokenModel, prompt: number[], maxNewTokens: number) => Promise<DecodeResult>;

/** `run` with the fused decode kernels switched off: the composite tfjs ops (`setFusedKernels(false)`). */
function composite(run: Run): Run {
  return async (m, p, n) => {
    setFusedKernels(false);
    try {
      return await run(m, p, n);
    } finally {
      setFusedKernels(true);
    }
  };
}

interface Variant {
  decoder: string;
  /** `--heads` variants: the heads file, and the variant `speedup` is taken against (itself for a baseline). */
  heads?: string;
  baseline?: Variant;
  k: number;
  lossless: boolean;
  model: MultiTokenModel;
  yieldEveryMs: number;
  /** Whether the step-cost pass measures it. */
  costed: boolean;
  /** `--tree` variants: how it drafts. */
  drafting?: string;
  run: Run;
}

interface Measured {
  results: DecodeResult[];
  tokens: number;
  forwards: number;
  /** Draft nodes fed (stats.draftNodes summed over prompts). */
  nodes: number;
  acceptance: number[];
  walls: number[]; // per repeat, ms for all prompts
  /** `perPrompt` runs: per prompt, its fastest wall over the repeats (ms): the least disturbed run of each decode. */
  bestWalls: number[];
}

/** A row's variant and speed: throughput of `m`, its speedup over `base` (tokens/s ratio within each repeat, then the median). */
function speedRow(backend: NodeBackend, v: Variant, m: Measured, base: Measured): Pick<Row, 'backend' | 'decoder' | 'k' | 'yieldEveryMs' | 'tokensPerSecond' | 'speedup' | 'tau' | 'tokens' | 'msPerForward'> {
  const speedups = m.walls.map((w, r) => m.tokens / w / (base.tokens / base.walls[r]!));
  return {
    backend,
    decoder: v.decoder,
    k: v.k,
    yieldEveryMs: v.yieldEveryMs,
    tokensPerSecond: (1000 * m.tokens) / median(m.walls),
    speedup: median(speedups),
    tau: m.tokens / m.forwards,
    tokens: m.tokens,
    msPerForward: median(m.walls) / m.forwards,
  };
}

/**
 * Runs every variant over every prompt, `repeats` times, round-robin (repeat r of every variant
 * before repeat r + 1 of any), so that a burst of load from other processes hits all variants
 * alike; ratios are then taken within each repeat. `perPrompt` interleaves finer: within a repeat,
 * prompt p of every variant before prompt p + 1 of any (a variant's wall is then the sum of its
 * prompts' times) — what `--tree` uses, on a machine whose load swings within seconds.
 */
async function measureAll(variants: Variant[], prompts: number[][], maxNewTokens: number, repeats: number, perPrompt = false): Promise<Measured[]> {
  // warm-up, the same for every variant: two whole decodes each (kernels, shapes, JIT, XNNPACK packing, the 'auto' tuner's first costs)
  for (const v of variants) for (const p of prompts.slice(0, 2)) await v.run(v.model, p, maxNewTokens);
  const out: Measured[] = variants.map(() => ({ results: [], tokens: 0, forwards: 0, nodes: 0, acceptance: [], walls: [], bestWalls: [] }));
  for (let r = 0; r < repeats; r++) {
    if (perPrompt) {
      const walls = variants.map(() => 0);
      const results = variants.map(() => [] as DecodeResult[]);
      for (const [j, p] of prompts.entries()) {
        for (const [i, v] of variants.entries()) {
          const t0 = performance.now();
          results[i]!.push(await v.run(v.model, p, maxNewTokens));
          const ms = performance.now() - t0;
          walls[i]! += ms;
          out[i]!.bestWalls[j] = Math.min(out[i]!.bestWalls[j] ?? Infinity, ms);
        }
      }
      variants.forEach((_, i) => {
        out[i]!.walls.push(walls[i]!);
        out[i]!.results = results[i]!;
      });
      continue;
    }
    for (const [i, v] of variants.entries()) {
      const t0 = performance.now();
      const results: DecodeResult[] = [];
      for (const p of prompts) results.push(await v.run(v.model, p, maxNewTokens));
      out[i]!.walls.push(performance.now() - t0);
      out[i]!.results = results;
    }
  }
  variants.forEach((v, i) => {
    const m = out[i]!;
    m.tokens = m.results.reduce((a, x) => a + x.tokens.length, 0);
    m.forwards = m.results.reduce((a, x) => a + x.stats.forwards, 0);
    m.nodes = m.results.reduce((a, x) => a + (x.stats.draftNodes ?? 0), 0);
    m.acceptance = Array.from({ length: v.k - 1 }, (_, j) => {
      const kept = m.results.reduce((a, x) => a + (x.stats.acceptedPerOffset[j] ?? 0), 0);
      const drafted = m.results.reduce((a, x) => a + (x.stats.draftedPerOffset[j] ?? 0), 0);
      return drafted > 0 ? kept / drafted : NaN;
    });
  });
  return out;
}

/**
 * The step cost of each costed variant: `repeats` timed passes through the proxy (round-robin,
 * after the warm-up `measureAll` did), then one kernel-counting pass.
 */
async function measureStepCost(variants: Variant[], prompts: number[][], maxNewTokens: number, repeats: number): Promise<Map<Variant, StepCost>> {
  const timing = new Map(variants.map((v) => [v, new StepRecorder()]));
  for (let r = 0; r < repeats; r++) {
    for (const v of variants) {
      const recorder = timing.get(v)!;
      const proxy = instrument(v.model, recorder);
      for (const p of prompts) {
        recorder.begin();
        await timeReadbacks(recorder, () => v.run(proxy, p, maxNewTokens));
        recorder.end();
      }
    }
  }
  const out = new Map<Variant, StepCost>();
  for (const v of variants) {
    const counter = new StepRecorder();
    const proxy = instrument(v.model, counter);
    for (const p of prompts) {
      counter.begin();
      await countKernels(counter, () => v.run(proxy, p, maxNewTokens));
      counter.end();
    }
    out.set(v, { ...timing.get(v)!.summary(), kernelsPerStep: counter.summary().kernelsPerStep });
  }
  return out;
}


const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * A speedup above τ cannot be real: a speculative step does at least a greedy step's work, so
 * tokens per second can grow at most by the tokens each step commits. A row above it (beyond 5 %
 * of noise) is a measurement bug — a cold baseline, a skipped warm-up — so the bench says so and
 * exits with code 1 instead of printing a number someone might quote.
 */
function checkSpeedups(rows: Row[]): void {
  // rows that drafted (τ > 1) against greedy; a greedy variant (the never-yielding row) measures noise, not a decoder
  const impossible = rows.filter((r) => r.tau > 1 && r.equalsGreedy !== null && (r.speedupVs === undefined || r.speedupVs.startsWith('greedy')) && r.speedup > 1.05 * r.tau);
  for (const r of impossible) console.log(`\n**Measurement error**: ${r.backend} ${r.decoder}${r.heads ? ` (${r.heads})` : ''} shows ${fmt(r.speedup)}× at τ ${fmt(r.tau)}; a speedup above τ is impossible.`);
  if (impossible.length > 0) process.exitCode = 1;
}

const fmt = (x: number | null | undefined, d = 2) => (x !== null && x !== undefined && Number.isFinite(x) ? x.toFixed(d) : '–');

/** How much each backend decodes: `prompts` × `tokens` new tokens (0: the backend's default). */
interface Workload {
  repeats: number;
  prompts: number;
  tokens: number;
}

async function benchBackend(backend: NodeBackend, dir: string, work: Workload, rows: Row[], notes: string[]): Promise<BenchModel> {
  await useBackend(backend);
  const bench = await loadBenchModel(dir);
  const cached = new CachedTransformer(bench.model);
  const uncached = fromLayersModel(bench.model, { window: cached.maxLength });
  const cpu = backend === 'cpu';
  const prompts = bench.prompts(work.prompts || (cpu ? 2 : 6), 48);
  const maxNewTokens = work.tokens || (cpu ? 40 : 80);
  const repeats = work.repeats;
  const dflt = DECODE_DEFAULTS.yieldEveryMs;
  const greedy: Run = (m, p, n) => greedyDecode(m, p, { maxNewTokens: n });
  const speculative = (k: number, yieldEveryMs: number): Run => (m, p, n) => speculativeDecode(m, p, { maxNewTokens: n, draftLength: k - 1, yieldEveryMs });
  const automatic: Run = (m, p, n) => speculativeDecode(m, p, { maxNewTokens: n });
  const variants: Variant[] = [
    { decoder: 'greedy (cached)', k: 1, lossless: true, model: cached, yieldEveryMs: dflt, costed: true, run: greedy },
    ...KS.map((k) => ({ decoder: 'speculative greedy (cached)', k, lossless: true, model: cached, yieldEveryMs: dflt, costed: true, run: speculative(k, dflt) })),
    // the same with the composite tfjs ops instead of the fused decode kernels (cpu, wasm)
    { decoder: 'greedy (cached, composite kernels)', k: 1, lossless: true, model: cached, yieldEveryMs: dflt, costed: true, run: composite(greedy) },
    { decoder: 'speculative greedy (cached, composite kernels)', k: 4, lossless: true, model: cached, yieldEveryMs: dflt, costed: true, run: composite(speculative(4, dflt)) },
    { decoder: "speculative greedy, draftLength 'auto' (cached)", k: cached.numHeads, lossless: true, model: cached, yieldEveryMs: dflt, costed: false, run: automatic },
    { decoder: 'speculative greedy (uncached fromLayersModel)', k: 4, lossless: true, model: uncached, yieldEveryMs: dflt, costed: false, run: speculative(4, dflt) },
    ...[2, 4].map((k) => ({
      decoder: 'blockwise (cached, unverified)', k, lossless: false, model: cached, yieldEveryMs: dflt, costed: false,
      run: ((m, p, n) => blockwiseDecode(m, p, { maxNewTokens: n, blockSize: k })) as Run,
    })),
    // the same decodes never yielding to the event loop: what the default yield costs (issue #9 §1)
    { decoder: 'greedy (cached)', k: 1, lossless: true, model: cached, yieldEveryMs: Infinity, costed: false, run: (m, p, n) => greedyDecode(m, p, { maxNewTokens: n, yieldEveryMs: Infinity }) },
    { decoder: 'speculative greedy (cached)', k: 4, lossless: true, model: cached, yieldEveryMs: Infinity, costed: false, run: speculative(4, Infinity) },
  ];
  const measured = await measureAll(variants, prompts, maxNewTokens, repeats);
  const cost = await measureStepCost(variants.filter((v) => v.costed), prompts, maxNewTokens, repeats);
  const base = measured[0]!;
  variants.forEach((v, i) => {
    const m = measured[i]!;
    const same = m.results.every((r, p) => r.tokens.join() === base.results[p]!.tokens.join());
    const c = cost.get(v) ?? null;
    rows.push({
      ...speedRow(backend, v, m, base),
      acceptance: v.lossless ? m.acceptance : [],
      equalsGreedy: v.lossless ? same : same ? true : null,
      msPerStep: c?.msPerStep ?? null,
      kernelsPerStep: c?.kernelsPerStep ?? null,
      stepCost: c,
    });
    const row = rows.at(-1)!;
    console.error(`  ${backend} ${v.decoder} k=${v.k}${v.yieldEveryMs === dflt ? '' : ' (never yielding)'}: ${fmt(row.tokensPerSecond, 1)} tok/s, τ ${fmt(row.tau)}`);
  });
  notes.push(`${backend}: ${prompts.length} prompts × ${maxNewTokens} new tokens, median of ${repeats} repeats`);
  cached.dispose();
  return bench;
}

/** What `--heads` measures besides the workload. */
interface HeadsWork extends Workload {
  heads: string[];
  temperature: number;
  ngram: number;
}

/**
 * `--heads`: every heads file's speculative decoding (greedy and sampling acceptance), prompt
 * lookup, and their baselines, on one backend, round-robin over `repeats` (see the module header).
 */
async function benchHeads(backend: NodeBackend, dir: string, work: HeadsWork, rows: Row[], notes: string[]): Promise<BenchModel[]> {
  await useBackend(backend);
  const benches: BenchModel[] = [];
  for (const file of work.heads) benches.push(await loadBenchModel(dir, 4, { name: basename(file), bytes: new Uint8Array(readFileSync(file)) }));
  const cached = benches.map((b) => new CachedTransformer(b.model));
  const cpu = backend === 'cpu';
  const texts = benches[0]!.headsPrompts;
  const prompts = texts.slice(0, work.prompts || texts.length).map((t) => benches[0]!.tokenizer.encode(t));
  const maxNewTokens = work.tokens || (cpu ? 40 : 80);
  const T = work.temperature;
  const seed = 1; // every sampling run: the same seed per prompt
  const greedy: Variant = { decoder: 'greedy (cached)', k: 1, lossless: true, model: cached[0]!, yieldEveryMs: DECODE_DEFAULTS.yieldEveryMs, costed: false, heads: '–', run: (m, p, n) => greedyDecode(m, p, { maxNewTokens: n }) };
  greedy.baseline = greedy;
  const sampling: Variant = { decoder: `sampling T=${T} (cached)`, k: 1, lossless: false, model: cached[0]!, yieldEveryMs: DECODE_DEFAULTS.yieldEveryMs, costed: false, heads: '–', run: (m, p, n) => greedyDecode(m, p, { maxNewTokens: n, temperature: T, seed }) };
  sampling.baseline = sampling;
  const lookup: Variant = {
    decoder: `prompt lookup (${work.ngram}-gram copy, draftLength 3)`, k: 4, lossless: true, model: cached[0]!, yieldEveryMs: DECODE_DEFAULTS.yieldEveryMs, costed: false, heads: '–', baseline: greedy,
    run: (m, p, n) => speculativeDecode(m, p, { maxNewTokens: n, drafter: promptLookupDrafter({ ngram: work.ngram }), draftLength: 3 }),
  };
  const compositeGreedy: Variant = { ...greedy, decoder: 'greedy (cached, composite kernels)', baseline: greedy, run: composite(greedy.run) };
  const variants: Variant[] = [greedy, compositeGreedy, lookup, sampling];
  work.heads.forEach((file, i) => {
    const model = cached[i]!;
    const common = { k: model.numHeads, model, yieldEveryMs: DECODE_DEFAULTS.yieldEveryMs, costed: false, heads: basename(file) };
    const k = model.numHeads - 1;
    variants.push({ ...common, decoder: `speculative, greedy acceptance, draftLength ${k} (cached)`, lossless: true, baseline: greedy, run: (m, p, n) => speculativeDecode(m, p, { maxNewTokens: n, draftLength: k }) });
    variants.push({ ...common, decoder: "speculative, greedy acceptance, draftLength 'auto' (the default)", lossless: true, baseline: greedy, run: (m, p, n) => speculativeDecode(m, p, { maxNewTokens: n }) });
    variants.push({ ...common, decoder: "prompt lookup, then the heads ('auto')", lossless: true, baseline: greedy, run: (m, p, n) => speculativeDecode(m, p, { maxNewTokens: n, drafter: [promptLookupDrafter({ ngram: work.ngram }), headsDrafter()] }) });
    variants.push({ ...common, decoder: `speculative, sampling acceptance T=${T} (cached)`, lossless: false, baseline: sampling, run: (m, p, n) => speculativeDecode(m, p, { maxNewTokens: n, acceptance: 'sampling', temperature: T, seed }) });
  });
  const measured = await measureAll(variants, prompts, maxNewTokens, work.repeats);
  const reference = measured[0]!; // cached greedy: the output every lossless row must equal
  const plain = measured[1]!; // cached greedy on the composite ops
  variants.forEach((v, i) => {
    const m = measured[i]!;
    const base = measured[variants.indexOf(v.baseline!)]!;
    const againstComposite = median(m.walls.map((w, r) => m.tokens / w / (plain.tokens / plain.walls[r]!)));
    const identical = m.results.filter((r, p) => r.tokens.join() === reference.results[p]!.tokens.join()).length;
    rows.push({
      ...speedRow(backend, v, m, base),
      acceptance: m.acceptance,
      equalsGreedy: v.lossless ? identical === prompts.length : null,
      msPerStep: null,
      kernelsPerStep: null,
      stepCost: null,
      heads: v.heads!,
      speedupVs: v.baseline!.decoder,
      identicalPrompts: identical,
      prompts: prompts.length,
      speedupVsComposite: againstComposite,
    });
    const row = rows.at(-1)!;
    console.error(`  ${backend} ${v.decoder} ${v.heads}: ${fmt(row.tokensPerSecond, 1)} tok/s, ${fmt(row.speedup)}× vs ${row.speedupVs}, τ ${fmt(row.tau)}`);
  });
  notes.push(`${backend}: ${prompts.length} prompts (${texts.slice(0, prompts.length).map((t) => JSON.stringify(t)).join(', ')}) × ${maxNewTokens} new tokens, median of ${work.repeats} repeats`);
  cached.forEach((c) => c.dispose());
  return benches;
}

/** The `--heads` table: one row per decoder and heads file, speedup against the row's baseline. */
function headsTable(rows: Row[]): string {
  const lines = [
    '| backend | decoder | draft heads | k | tokens/s | speedup | against | × composite greedy | τ | acceptance per offset (1…k-1) | output == greedy |',
    '|---|---|---|---:|---:|---:|---|---:|---:|---|---|',
  ];
  for (const r of rows) {
    const eq = r.equalsGreedy === null ? 'n/a (sampling)' : `${r.equalsGreedy ? 'yes' : '**NO**'} (${r.identicalPrompts}/${r.prompts} prompts)`;
    const vs = r.speedupVs === r.decoder ? '(baseline)' : r.speedupVs;
    lines.push(`| ${r.backend} | ${r.decoder} | ${r.heads} | ${r.k} | ${fmt(r.tokensPerSecond, 1)} | ${fmt(r.speedup)}× | ${vs} | ${fmt(r.speedupVsComposite)}× | ${fmt(r.tau)} | ${r.acceptance.map((a) => fmt(a)).join(' / ') || '–'} | ${eq} |`);
  }
  return lines.join('\n');
}

/** The `--tree` draftings at k = 4: the chain, a static Medusa-style tree, dynamic trees of growing budgets, `'auto'`, and the backend's default. */
function treeDraftings(backend: string): [string, TreeOption | undefined][] {
  const out: [string, TreeOption | undefined][] = [
    ['chain', undefined],
    ['dynamic topK 4, 3 nodes (a chain\'s size)', { topK: 4, maxNodes: 3 }],
    ['static 6 nodes [0] [1] [0,0] [1,0] [0,1] [0,0,0]', [[0], [1], [0, 0], [1, 0], [0, 1], [0, 0, 0]]],
    ['dynamic topK 4, 6 nodes', { topK: 4, maxNodes: 6 }],
    ['dynamic topK 4, 12 nodes', { topK: 4, maxNodes: 12 }],
    ['dynamic topK 8, 32 nodes', { topK: 8, maxNodes: 32 }],
  ];
  out.push(["'auto' (node budget from the decode's own measured step costs)", 'auto']);
  // the backend's default, always as a row of its own: when it repeats a row above, the two show the run's noise
  const d = defaultTree(backend);
  out.push([`dynamic topK ${d.topK}, ${d.maxNodes} nodes (defaultTree)`, d]);
  return out;
}

/** Node budgets of the `--tree` forward-cost table. */
const COST_BUDGETS = [1, 2, 4, 6, 8, 12, 16, 24, 32];

/** A `--tree` cost table: one model's tree forward per node budget on one backend. */
interface CostTable {
  backend: string;
  heads: string;
  cacheLength: number;
  costs: readonly TreeCost[];
}

/**
 * `--tree` on one backend: cached greedy and every drafting of {@link treeDraftings} for each
 * model (its own heads, or each `--heads` file), round-robin over `repeats`; then each model's
 * tree forward cost per node budget.
 */
async function benchTree(backend: NodeBackend, dir: string, work: Workload & { heads: string[] }, rows: Row[], costs: CostTable[], notes: string[]): Promise<BenchModel[]> {
  await useBackend(backend);
  const benches: BenchModel[] = [];
  if (work.heads.length === 0) benches.push(await loadBenchModel(dir));
  for (const file of work.heads) benches.push(await loadBenchModel(dir, 4, { name: basename(file), bytes: new Uint8Array(readFileSync(file)) }));
  const cached = benches.map((b) => new CachedTransformer(b.model));
  const cpu = backend === 'cpu';
  const texts = benches[0]!.headsPrompts;
  const prompts = work.heads.length > 0 ? texts.slice(0, work.prompts || texts.length).map((t) => benches[0]!.tokenizer.encode(t)) : benches[0]!.prompts(work.prompts || (cpu ? 2 : 6), 48);
  const maxNewTokens = work.tokens || (cpu ? 40 : 80);
  const yieldEveryMs = DECODE_DEFAULTS.yieldEveryMs;
  const headsName = (i: number) => (work.heads.length > 0 ? basename(work.heads[i]!) : 'its own');
  const greedy: Variant = { decoder: 'greedy (cached)', drafting: '–', heads: '–', k: 1, lossless: true, model: cached[0]!, yieldEveryMs, costed: false, run: (m, p, n) => greedyDecode(m, p, { maxNewTokens: n }) };
  const variants: Variant[] = [greedy];
  cached.forEach((model, i) => {
    for (const [drafting, tree] of treeDraftings(backend)) {
      variants.push({
        decoder: 'speculative greedy (cached)', drafting, heads: headsName(i), k: model.numHeads, lossless: true, model, yieldEveryMs, costed: false,
        run: (m, p, n) => speculativeDecode(m, p, { maxNewTokens: n, ...(tree === undefined ? {} : { tree }) }),
      });
    }
  });
  const measured = await measureAll(variants, prompts, maxNewTokens, work.repeats, true);
  const base = measured[0]!;
  variants.forEach((v, i) => {
    const m = measured[i]!;
    const identical = m.results.filter((r, p) => r.tokens.join() === base.results[p]!.tokens.join()).length;
    rows.push({
      ...speedRow(backend, v, m, base),
      acceptance: m.acceptance,
      equalsGreedy: identical === prompts.length,
      msPerStep: null,
      kernelsPerStep: null,
      stepCost: null,
      heads: v.heads!,
      identicalPrompts: identical,
      prompts: prompts.length,
      drafting: v.drafting!,
      nodesPerStep: m.nodes / m.forwards,
      msPerStepBest: sum(m.bestWalls) / m.forwards,
      speedupBest: m.tokens / sum(m.bestWalls) / (base.tokens / sum(base.bestWalls)),
    });
    const row = rows.at(-1)!;
    console.error(`  ${backend} ${v.heads} ${v.drafting}: ${fmt(row.tokensPerSecond, 1)} tok/s, ${fmt(row.speedup)}×, τ ${fmt(row.tau)}, ${fmt(row.nodesPerStep!, 1)} nodes/step`);
  });
  // the tree forward's cost per budget, after a prompt in the cache (as mid-decode)
  for (const [i, model] of cached.entries()) {
    model.truncate(0);
    tf.dispose(model.forward(prompts[0]!));
    const table = await measureTreeCosts(model, COST_BUDGETS, model.numHeads - 1, { repeats: 7 * work.repeats, warmup: 3 });
    costs.push({ backend, heads: headsName(i), cacheLength: model.length, costs: table });
    model.truncate(0);
  }
  notes.push(`${backend}: ${prompts.length} prompts × ${maxNewTokens} new tokens, median of ${work.repeats} repeats`);
  cached.forEach((c) => c.dispose());
  return benches;
}

/** The `--tree` table: one row per backend, heads and drafting; speedup against cached greedy. */
function treeTable(rows: Row[]): string {
  const lines = [
    '| backend | draft heads | drafting | τ | nodes/step | tokens/s | ms/step | speedup vs greedy | ms/step (best) | speedup (best) | output == greedy |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const eq = `${r.equalsGreedy ? 'yes' : '**NO**'} (${r.identicalPrompts}/${r.prompts})`;
    lines.push(
      `| ${r.backend} | ${r.heads} | ${r.k === 1 ? 'greedy (cached)' : r.drafting} | ${fmt(r.tau)} | ${fmt(r.nodesPerStep!, 1)} | ${fmt(r.tokensPerSecond, 1)} | ${fmt(r.msPerForward)} | ${fmt(r.speedup)}× | ` +
        `${fmt(r.msPerStepBest!)} | ${fmt(r.speedupBest!)}× | ${eq} |`,
    );
  }
  return lines.join('\n');
}

/** The `--tree` cost tables: ms of one tree forward (+ the verifier's argmax, one readback) per node budget. */
function costTables(tables: CostTable[]): string {
  const budgets = tables[0]!.costs.map((c) => c.nodes);
  const lines = [
    `Tree forward cost (measureTreeCosts: median ms of a forward over the root + n nodes and offset 0's argmax, one readback; chains ≤ 3 deep):`,
    '',
    `| backend | draft heads | cache length | ${budgets.map((n) => `${n} nodes`).join(' | ')} | 32 ÷ 1 |`,
    `|---|---|---:|${budgets.map(() => '---:').join('|')}|---:|`,
  ];
  for (const t of tables) {
    lines.push(`| ${t.backend} | ${t.heads} | ${t.cacheLength} | ${t.costs.map((c) => fmt(c.ms)).join(' | ')} | ${fmt(t.costs.at(-1)!.ms / t.costs[0]!.ms)}× |`);
  }
  return lines.join('\n');
}

/**
 * What `chooseBudget` makes of a cost table: the budget it picks when the best-first nodes' path
 * probabilities fall geometrically from `p` (p, p², … for a chain-shaped confidence; a lower p = a
 * less sure draft), capped at 32 nodes.
 */
function budgetChoices(tables: CostTable[]): string {
  const ps = [0.3, 0.5, 0.7, 0.8, 0.9];
  const lines = [`chooseBudget on these costs, best-first path probabilities p, p², p³, … (in sorted order):`, '', `| backend | draft heads | ${ps.map((p) => `p = ${p}`).join(' | ')} |`, `|---|---|${ps.map(() => '---:').join('|')}|`];
  for (const t of tables) {
    const picks = ps.map((p) => chooseBudget(Array.from({ length: 32 }, (_, i) => (i + 1) * Math.log(p)), t.costs));
    lines.push(`| ${t.backend} | ${t.heads} | ${picks.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** `--tree`: the tree table over every backend, the cost tables, and the JSON. */
async function mainTree(dir: string, backends: NodeBackend[], work: Workload & { heads: string[] }, jsonPath: string, code: ReturnType<typeof codeVersion>): Promise<void> {
  const rows: Row[] = [];
  const costs: CostTable[] = [];
  const notes: string[] = [];
  let benches: BenchModel[] = [];
  for (const b of backends) {
    benches.forEach((x) => x.model.dispose());
    benches = await benchTree(b, dir, work, rows, costs, notes);
  }
  benches.forEach((x) => x.model.dispose());
  const version = code ? `${code.commit.slice(0, 7)}${code.dirty ? ' + uncommitted changes in src/' : ''}` : 'unknown';
  const name = benches[0]!.name.replace(/; draft heads .*\)$/, ')');
  console.log(`Model: ${name}${work.heads.length > 0 ? `; draft heads: ${work.heads.join(', ')}` : ''}; code: ${version}\n`);
  console.log(treeTable(rows));
  checkSpeedups(rows);
  console.log(`\n${costTables(costs)}`);
  console.log(`\n${budgetChoices(costs)}`);
  for (const n of notes) console.log(`\n${n}`);
  if (jsonPath) {
    writeFileSync(jsonPath, JSON.stringify({ date: new Date().toISOString(), command: commandLine(), code, model: name, heads: work.heads, rows, costs, notes }, null, 2));
    console.log(`\nwrote ${jsonPath}`);
  }
}

/** A MultiTokenModel whose forward is nearly free and whose drafts are always right. */
class TrivialModel implements MultiTokenModel {
  readonly numHeads = 4;
  readonly vocabSize = 256;
  readonly maxLength = Infinity;
  length = 0;
  forward(tokenIds: readonly number[]): tf.Tensor2D {
    this.length += tokenIds.length;
    return tf.zeros([tokenIds.length, 1]);
  }
  headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    return tf.tidy(() => tf.tile(tf.oneHot(tf.fill([1, 1], 65, 'int32'), this.vocabSize), [states.shape[0], offsets.length, 1]) as tf.Tensor3D);
  }
  truncate(length: number): void {
    this.length = length;
  }
}

async function loopOverhead(): Promise<string> {
  const model = new TrivialModel();
  const n = 400;
  const out: string[] = [];
  for (const [name, run] of [
    ['greedy', () => greedyDecode(model, [65], { maxNewTokens: n })],
    ['speculative k=4', () => speculativeDecode(model, [65], { maxNewTokens: n })],
    ['blockwise k=4', () => blockwiseDecode(model, [65], { maxNewTokens: n })],
  ] as const) {
    await run();
    const walls: number[] = [];
    let steps = 0;
    for (let r = 0; r < 3; r++) {
      const res = await run();
      walls.push(res.stats.wallTimeMs);
      steps = res.stats.forwards;
    }
    out.push(`${name} ${(median(walls) / steps).toFixed(3)} ms/step`);
  }
  return out.join(', ');
}

/** The main table: every variant that yields by default. */
function speedTable(rows: Row[]): string {
  const lines = [
    '| backend | decoder | k | tokens/s | speedup vs greedy | τ | acceptance per offset (1…k-1) | output == greedy | ms/forward |',
    '|---|---|---:|---:|---:|---:|---|---|---:|',
  ];
  for (const r of rows.filter((r) => r.yieldEveryMs === DECODE_DEFAULTS.yieldEveryMs)) {
    const eq = r.equalsGreedy === null ? 'no (lossy)' : r.equalsGreedy ? 'yes' : '**NO**';
    lines.push(
      `| ${r.backend} | ${r.decoder} | ${r.k} | ${fmt(r.tokensPerSecond, 1)} | ${fmt(r.speedup)}× | ${fmt(r.tau)} | ${r.acceptance.map((a) => fmt(a)).join(' / ') || '–'} | ${eq} | ${fmt(r.msPerForward)} |`,
    );
  }
  return lines.join('\n');
}

/** One step-cost table per backend: greedy and speculative k = 2, 3, 4, with speedup next to τ. */
function stepTables(rows: Row[]): string {
  const out: string[] = [];
  for (const backend of new Set(rows.map((r) => r.backend))) {
    const costed = rows.filter((r) => r.backend === backend && r.stepCost !== null);
    const isComposite = (r: Row) => r.decoder.includes('composite kernels');
    const lines = [
      `Step cost on ${backend} (median per step after the prompt's; ms; kernels from a separate counting pass; "fused": the fused decode kernels, the default on cpu and wasm; "composite": the plain tfjs ops; ÷ greedy: against greedy with the same kernels; speedup: against fused greedy):`,
      '',
      '| decoder | kernels | k | kernels/step | ms/step | forward | heads | readback | rollback | other | step ÷ greedy | kernels ÷ greedy | speedup | τ |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ];
    for (const r of costed) {
      const c = r.stepCost!;
      const greedy = costed.find((g) => g.k === 1 && isComposite(g) === isComposite(r))!;
      lines.push(
        `| ${r.k === 1 ? 'greedy' : 'speculative'} | ${isComposite(r) ? 'composite' : 'fused'} | ${r.k} | ${fmt(c.kernelsPerStep, 0)} | ${fmt(c.msPerStep)} | ${fmt(c.forward)} | ${fmt(c.heads)} | ${fmt(c.readback, 3)} | ${fmt(c.rollback, 3)} | ${fmt(c.other)} | ` +
          `${fmt(c.msPerStep / greedy.stepCost!.msPerStep)}× | ${fmt(c.kernelsPerStep / greedy.stepCost!.kernelsPerStep)}× | ${fmt(r.speedup)}× | ${fmt(r.tau)} |`,
      );
    }
    out.push(lines.join('\n'));
  }
  return out.join('\n\n');
}

/** Throughput with the default `yieldEveryMs` against never yielding, same decodes, same run. */
function yieldTable(rows: Row[]): string {
  const lines = [
    `Yielding to the event loop (default yieldEveryMs = ${DECODE_DEFAULTS.yieldEveryMs} ms vs Infinity):`,
    '',
    '| backend | decoder | k | tokens/s (default) | tokens/s (never yielding) | default ÷ never |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const never of rows.filter((r) => r.yieldEveryMs === Infinity)) {
    const dflt = rows.find((r) => r.backend === never.backend && r.decoder === never.decoder && r.k === never.k && r.yieldEveryMs !== Infinity)!;
    lines.push(`| ${never.backend} | ${never.decoder} | ${never.k} | ${fmt(dflt.tokensPerSecond, 1)} | ${fmt(never.tokensPerSecond, 1)} | ${fmt(dflt.tokensPerSecond / never.tokensPerSecond, 3)} |`);
  }
  return lines.join('\n');
}

/** The code measured: the commit, and whether the working tree differed from it. */
function codeVersion(): { commit: string; dirty: boolean } | null {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', '--untracked-files=no', '--', 'src').length > 0 };
  } catch {
    return null; // not a git checkout
  }
}

/** `--heads`: the heads table per backend, the parameters of each heads model, and the JSON. */
async function mainHeads(dir: string, backends: NodeBackend[], work: HeadsWork, jsonPath: string, code: ReturnType<typeof codeVersion>): Promise<void> {
  const rows: Row[] = [];
  const notes: string[] = [];
  let benches: BenchModel[] = [];
  for (const b of backends) {
    benches.forEach((x) => x.model.dispose());
    benches = await benchHeads(b, dir, work, rows, notes);
  }
  benches.forEach((x) => x.model.dispose());
  const version = code ? `${code.commit.slice(0, 7)}${code.dirty ? ' + uncommitted changes in src/' : ''}` : 'unknown';
  const name = benches[0]!.name.replace(/; draft heads .*\)$/, ')');
  console.log(`Model: ${name}; draft heads: ${work.heads.join(', ')}; code: ${version}\n`);
  console.log(headsTable(rows));
  checkSpeedups(rows);
  for (const n of notes) console.log(`\n${n}`);
  const sizes = work.heads.map((f) => `${basename(f)} ${(statSync(f).size / 1024).toFixed(0)} KiB`).join(', ');
  console.log(`\nDraft-heads files: ${sizes} (parameters: see each file's training.json)`);
  if (jsonPath) {
    writeFileSync(jsonPath, JSON.stringify({ date: new Date().toISOString(), command: commandLine(), code, model: name, heads: work.heads, temperature: work.temperature, ngram: work.ngram, rows, notes }, null, 2));
    console.log(`\nwrote ${jsonPath}`);
  }
}

/** How this run was started, as a user types it. */
function commandLine(): string {
  const argv = process.argv.slice(2);
  return `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
}

async function main(): Promise<void> {
  const code = codeVersion();
  const { model: dir, backends, json: jsonPath, heads, temperature, ngram, tree, ...work } = parseCommandLine(COMMAND);
  const rows: Row[] = [];
  const notes: string[] = [];
  if (tree) {
    await mainTree(dir, backends, { ...work, heads }, jsonPath, code);
    return;
  }
  if (heads.length > 0) {
    await mainHeads(dir, backends, { ...work, heads, temperature, ngram }, jsonPath, code);
    return;
  }
  let bench: BenchModel | null = null;
  for (const b of backends) {
    bench?.model.dispose();
    bench = await benchBackend(b, dir, work, rows, notes);
  }
  const report = formatParameterReport(headReport(bench!.model));
  bench!.model.dispose();
  await useBackend(backends[0]!);
  const overhead = await loopOverhead();

  const version = code ? `${code.commit.slice(0, 7)}${code.dirty ? ' + uncommitted changes in src/' : ''}` : 'unknown';
  console.log(`Model: ${bench!.name}; code: ${version}\n`);
  console.log(speedTable(rows));
  checkSpeedups(rows);
  console.log(`\n${stepTables(rows)}`);
  console.log(`\n${yieldTable(rows)}`);
  console.log(`\nLoop overhead (trivial model, ${backends[0]}): ${overhead}`);
  for (const n of notes) console.log(`\n${n}`);
  console.log(`\nParameters (the model's head):\n${report}`);
  if (jsonPath) {
    // Infinity is not JSON: the never-yielding rows say "Infinity"
    const replacer = (_: string, v: unknown) => (v === Infinity ? 'Infinity' : v);
    writeFileSync(jsonPath, JSON.stringify({ date: new Date().toISOString(), command: commandLine(), code, model: bench!.name, rows, loopOverhead: overhead, notes }, replacer, 2));
    console.log(`\nwrote ${jsonPath}`);
  }
}

await main();
