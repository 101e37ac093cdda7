/**
 * `npm run bench` — decoding speed of the reference model (fixtures/tslib-k4) on held-out
 * prompts: every decoder, k ∈ {2, 3, 4}, wasm and cpu, one run, medians over repeats.
 * Prints a markdown table (and `--json <file>` writes the same rows). See docs/performance.md.
 *
 *     npm run bench -- [--backends wasm,cpu] [--repeats 3] [--json bench.json] [--prompts 6] [--tokens 80]
 *
 * tokens/s is total new tokens / total wall time over the prompts (median over repeats);
 * speedup is against cached greedy on the same backend, taken within each repeat (variants run
 * round-robin), median over repeats; τ = tokens per forward; acceptance of offset j = drafts
 * from offset j kept per verification step (verified decoders only).
 */
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import {
  blockwiseDecode,
  formatParameterReport,
  fromLayersModel,
  greedyDecode,
  speculativeDecode,
  type DecodeResult,
  type MultiTokenModel,
} from '../src/index.js';
import { CachedTransformer } from '../src/models/index.js';
import { parseCommandLine } from '../tools/args.js';
import { NODE_BACKENDS, useBackend, type NodeBackend } from '../tools/backend.js';
import { headReport, loadReferenceModel } from '../tools/checkpoint.js';
import { heldOutPrompts } from '../tools/corpus.js';
import { median } from '../tools/stats.js';

const COMMAND = {
  name: 'bench',
  usage: 'npm run bench -- [options]',
  summary: 'Decoding speed of the reference model on held-out prompts: every decoder, k ∈ {2, 3, 4}, per backend; prints a markdown table.',
  options: {
    backends: { type: 'strings', default: NODE_BACKENDS, choices: NODE_BACKENDS, help: 'backends to measure, in order' },
    repeats: { type: 'number', default: 3, integer: true, min: 1, help: 'repeats per variant (medians are taken over them)' },
    json: { type: 'string', default: '', help: 'also write the rows to this JSON file' },
    prompts: { type: 'number', default: 0, integer: true, min: 0, help: 'held-out prompts per backend (0: 6 on wasm, 2 on cpu)' },
    tokens: { type: 'number', default: 0, integer: true, min: 0, help: 'new tokens per prompt (0: 80 on wasm, 40 on cpu)' },
  },
} as const;

interface Row {
  backend: string;
  decoder: string;
  k: number;
  tokensPerSecond: number;
  speedup: number;
  tau: number;
  acceptance: number[]; // per offset 1…k-1
  equalsGreedy: boolean | null; // null: lossy decoder, not expected to match
  tokens: number;
  msPerForward: number;
}

interface Variant {
  decoder: string;
  k: number;
  lossless: boolean;
  run: (prompt: number[], maxNewTokens: number) => Promise<DecodeResult>;
}

interface Measured {
  results: DecodeResult[];
  tokens: number;
  forwards: number;
  acceptance: number[];
  walls: number[]; // per repeat, ms for all prompts
}

/**
 * Runs every variant over every prompt, `repeats` times, round-robin (repeat r of every variant
 * before repeat r + 1 of any), so that a burst of load from other processes hits all variants
 * alike; ratios are then taken within each repeat.
 */
async function measureAll(variants: Variant[], prompts: number[][], maxNewTokens: number, repeats: number): Promise<Measured[]> {
  for (const v of variants) await v.run(prompts[0]!, Math.min(8, maxNewTokens)); // warm-up: kernels, shapes, JIT
  const out: Measured[] = variants.map(() => ({ results: [], tokens: 0, forwards: 0, acceptance: [], walls: [] }));
  for (let r = 0; r < repeats; r++) {
    for (const [i, v] of variants.entries()) {
      const t0 = performance.now();
      const results: DecodeResult[] = [];
      for (const p of prompts) results.push(await v.run(p, maxNewTokens));
      out[i]!.walls.push(performance.now() - t0);
      out[i]!.results = results;
    }
  }
  variants.forEach((v, i) => {
    const m = out[i]!;
    m.tokens = m.results.reduce((a, x) => a + x.tokens.length, 0);
    m.forwards = m.results.reduce((a, x) => a + x.stats.forwards, 0);
    const verifySteps = m.results.reduce((a, x) => a + x.stats.forwards - 1, 0);
    m.acceptance = Array.from({ length: v.k - 1 }, (_, j) => {
      const kept = m.results.reduce((a, x) => a + x.sources.filter((src) => src === j + 1).length, 0);
      return verifySteps > 0 ? kept / verifySteps : NaN;
    });
  });
  return out;
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

/**
 * Cost in ms of the model work of one decoding step, readback included: greedy = forward of 1
 * token + offset 0 at it; speculative = forward of n tokens + offset 0 at all n + offsets
 * 1…n-1 at the last. (What is left of a decoder's step is the loop overhead, measured apart.)
 */
async function stepCost(cached: CachedTransformer, n: number): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < 30; r++) {
    cached.truncate(0);
    tf.dispose(cached.forward(Array.from({ length: 40 }, (_, i) => 97 + (i % 26))));
    const t0 = performance.now();
    const picked = tf.tidy(() => {
      const states = cached.forward(Array.from({ length: n }, () => 32)); // [n, D]
      const verify = tf.argMax(cached.headLogits(states, [0]), -1); // [n, 1]
      if (n === 1) return verify;
      const last = tf.slice(states, [n - 1, 0], [1, -1]); // [1, D]
      const drafts = tf.argMax(cached.headLogits(last, Array.from({ length: n - 1 }, (_, j) => j + 1)), -1); // [1, n-1]
      return tf.concat([tf.reshape(verify, [-1]), tf.reshape(drafts, [-1])]);
    });
    await picked.data();
    picked.dispose();
    times.push(performance.now() - t0);
  }
  cached.truncate(0);
  return median(times.slice(5));
}

const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');

/** How much each backend decodes: `prompts` × `tokens` new tokens (0: the backend's default). */
interface Workload {
  repeats: number;
  prompts: number;
  tokens: number;
}

async function benchBackend(backend: NodeBackend, work: Workload, rows: Row[], notes: string[]): Promise<void> {
  await useBackend(backend);
  const layersModel = await loadReferenceModel();
  const cached = new CachedTransformer(layersModel);
  const uncached = fromLayersModel(layersModel, { window: cached.maxLength });
  const cpu = backend === 'cpu';
  const prompts = heldOutPrompts(work.prompts || (cpu ? 2 : 6), 48).map((p) => p.bytes);
  const maxNewTokens = work.tokens || (cpu ? 40 : 80);
  const repeats = work.repeats;
  const variants: Variant[] = [
    { decoder: 'greedy (cached)', k: 1, lossless: true, run: (p, n) => greedyDecode(cached, p, { maxNewTokens: n }) },
    ...[2, 3, 4].map((k) => ({
      decoder: 'speculative greedy (cached)', k, lossless: true,
      run: (p: number[], n: number) => speculativeDecode(cached, p, { maxNewTokens: n, draftLength: k - 1 }),
    })),
    { decoder: 'speculative greedy (uncached fromLayersModel)', k: 4, lossless: true, run: (p, n) => speculativeDecode(uncached, p, { maxNewTokens: n }) },
    ...[2, 4].map((k) => ({
      decoder: 'blockwise (cached, unverified)', k, lossless: false,
      run: (p: number[], n: number) => blockwiseDecode(cached, p, { maxNewTokens: n, blockSize: k }),
    })),
  ];
  const measured = await measureAll(variants, prompts, maxNewTokens, repeats);
  const greedy = measured[0]!;
  variants.forEach((v, i) => {
    const m = measured[i]!;
    const same = m.results.every((r, p) => r.tokens.join() === greedy.results[p]!.tokens.join());
    // speedup within each repeat (tokens/s ratio), then the median over repeats
    const speedups = m.walls.map((w, r) => (m.tokens / w) / (greedy.tokens / greedy.walls[r]!));
    rows.push({
      backend,
      decoder: v.decoder,
      k: v.k,
      tokensPerSecond: (1000 * m.tokens) / median(m.walls),
      speedup: median(speedups),
      tau: m.tokens / m.forwards,
      acceptance: v.lossless ? m.acceptance : [],
      equalsGreedy: v.lossless ? same : same ? true : null,
      tokens: m.tokens,
      msPerForward: median(m.walls) / m.forwards,
    });
    console.error(`  ${backend} ${v.decoder} k=${v.k}: ${fmt(rows.at(-1)!.tokensPerSecond, 1)} tok/s, τ ${fmt(rows.at(-1)!.tau)}`);
  });
  const f1 = await stepCost(cached, 1);
  const f4 = await stepCost(cached, 4);
  notes.push(
    `${backend}: model work per step (forward + heads + readback): greedy ${fmt(f1)} ms, speculative k=4 ${fmt(f4)} ms ` +
      `(ratio ${fmt(f4 / f1)}); ${prompts.length} prompts × ${maxNewTokens} new tokens, median of ${repeats} repeats`,
  );
  cached.dispose();
  layersModel.dispose();
}

async function main(): Promise<void> {
  const { backends, json: jsonPath, ...work } = parseCommandLine(COMMAND);
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const b of backends) await benchBackend(b, work, rows, notes);
  await useBackend(backends[0]!);
  const overhead = await loopOverhead();

  const model = await loadReferenceModel();
  const report = formatParameterReport(headReport(model));
  model.dispose();

  const header = '| backend | decoder | k | tokens/s | speedup vs greedy | τ | acceptance per offset (1…k-1) | output == greedy | ms/forward |';
  const lines = [header, '|---|---|---:|---:|---:|---:|---|---|---:|'];
  for (const r of rows) {
    const eq = r.equalsGreedy === null ? 'no (lossy)' : r.equalsGreedy ? 'yes' : '**NO**';
    lines.push(
      `| ${r.backend} | ${r.decoder} | ${r.k} | ${fmt(r.tokensPerSecond, 1)} | ${fmt(r.speedup)}× | ${fmt(r.tau)} | ${r.acceptance.map((a) => fmt(a)).join(' / ') || '–'} | ${eq} | ${fmt(r.msPerForward)} |`,
    );
  }
  console.log(lines.join('\n'));
  console.log(`\nLoop overhead (trivial model, ${backends[0]}): ${overhead}`);
  for (const n of notes) console.log(`\n${n}`);
  console.log(`\nParameters (the reference model's head):\n${report}`);
  if (jsonPath) {
    writeFileSync(jsonPath, JSON.stringify({ date: new Date().toISOString(), rows, loopOverhead: overhead, notes }, null, 2));
    console.log(`\nwrote ${jsonPath}`);
  }
}

await main();
