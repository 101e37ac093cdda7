/**
 * `npm run bench:scale` — what one speculative step costs against one greedy step at the shapes
 * of the public tinyllamas models (stories260K with its 512-token vocabulary; stories15M, 42M,
 * 110M with their 32,000-token vocabulary), with the fused decode kernels and without them.
 * Weights are seeded random (tools/llama2c_random.ts), written to a fresh folder under the OS
 * temp dir and deleted at the end: the cost of a step does not depend on what the weights say.
 *
 *     npm run bench:scale -- [--backends wasm,cpu] [--shapes 260K,15M,42M,110M] [--kinds mlp,sequential]
 *                            [--draftVocab full,4096] [--kernels fused,composite] [--tokens N]
 *                            [--repeats N] [--json file] [--native /path/to/llama2.c/run]
 *
 * For each backend × shape × head kind × draft vocabulary × kernels (`setFusedKernels`: the
 * fused decode kernels, or the composite tfjs ops) the checkpoint is loaded with 4 heads
 * (`loadLlama2c(bytes, { mtpHeads: 4, headKind, headHiddenSize: dim, draftVocab })`, `draftVocab`
 * omitted for the full vocabulary, else the first N ids) and, after a warm-up of every path:
 *
 * - greedy: ms per token of `greedyDecode` on a `CachedTransformer`: per repeat, the time from
 *   the first committed token (the prompt's forward) to the last, over the forwards between them;
 *   median over repeats;
 * - speculative: ms per step of `speculativeDecode(…, { draftLength: 3 })`, measured the same
 *   way (every step feeds 1 + 3 rows whatever is accepted); greedy and speculative alternate
 *   within each repeat;
 * - step ÷ greedy: the two medians' ratio;
 * - the split of each decoder's step (forward / heads / readback / rollback / other) from a pass
 *   through tools/step_cost.ts `instrument`, and kernels per step from a counting pass; whether
 *   the instrumented proxy took the same path as the bare model (equal kernel totals per decode);
 * - with `--native`: a llama2.c `run` binary's tokens/s on the same checkpoint (greedy, `-t 0`),
 *   against tfjs greedy tokens/s.
 *
 * Tables go to stdout, progress to stderr; `--json` writes the rows.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { greedyDecode, speculativeDecode, type DecodeResult, type MultiTokenModel } from '../src/index.js';
import { CachedTransformer, loadLlama2c, setFusedKernels, type LoadLlama2cOptions } from '../src/models/index.js';
import { uniformStream } from '../src/decoding/random.js';
import { parseCommandLine, parseOptions, UsageError, type OptionValues } from '../tools/args.js';
import { NODE_BACKENDS, useBackend, type NodeBackend } from '../tools/backend.js';
import { madeUpTokenizer, TINYLLAMAS_SHAPES, writeRandomLlama2c } from '../tools/llama2c_random.js';
import { median } from '../tools/stats.js';
import { countKernels, instrument, StepRecorder, timeReadbacks, type StepCost } from '../tools/step_cost.js';

type ShapeName = keyof typeof TINYLLAMAS_SHAPES;
const SHAPES = Object.keys(TINYLLAMAS_SHAPES) as ShapeName[];
const HEAD_KINDS = ['mlp', 'sequential'] as const;
type HeadKind = (typeof HEAD_KINDS)[number];
/** Largest vocabulary of the shapes (a draft vocabulary is at most the shape's own). */
const VOCAB = TINYLLAMAS_SHAPES['15M'].vocabSize;
const KERNELS = ['fused', 'composite'] as const;
type Kernels = (typeof KERNELS)[number];

/** k: offset 0 verifies, offsets 1…3 draft. */
const MTP_HEADS = 4;
const DRAFT_LENGTH = MTP_HEADS - 1;
/** Prompt length (BOS + random ids) of every tfjs decode. */
const PROMPT_LENGTH = 8;
/**
 * The native binary's prompt, and its fewest batches per shape: one at the start of the shape and
 * one before each configuration, so that its rate spans the same minutes as the tfjs measurements
 * on a machine whose load changes. Each run decodes as many positions as the tfjs decodes do
 * (prompt included; attention's cost grows with the position, so a longer run would be slower
 * per token).
 */
const NATIVE_PROMPT = 'Once upon a time';
const NATIVE_BATCHES = 3;
/**
 * run.c times a run with a whole-millisecond clock: ~100 positions of stories260K take 5–9 ms,
 * so one run's tok/s is a step of a coarse staircase (95 tokens in 5, 6, 7 ms: 19,000, 15,833,
 * 13,571 tok/s). A batch repeats the run until its runs add up to this many ms, and the rate is
 * the mean ms per token over every run (the clock's rounding averages out; a median of rates
 * would not).
 */
const NATIVE_BATCH_MS = 150;
/** Most runs in one batch (a binary too fast for its own clock reports `inf`: no time at all). */
const NATIVE_BATCH_RUNS = 200;
/** Fewest new tokens `--tokens` accepts: a speculative decode must take a few steps after the prompt's. */
const MIN_TOKENS = 8;

/**
 * New tokens per decode and repeats, per backend and shape, when `--tokens`/`--repeats` are 0:
 * the cpu backend is plain JS (a 110M speculative step takes seconds), so the whole default run
 * stays well under 30 minutes on a 2-core machine.
 */
const WORKLOADS: Record<NodeBackend, Record<ShapeName, { tokens: number; repeats: number }>> = {
  wasm: { '260K': { tokens: 96, repeats: 5 }, '15M': { tokens: 48, repeats: 5 }, '42M': { tokens: 32, repeats: 3 }, '110M': { tokens: 24, repeats: 3 } },
  cpu: { '260K': { tokens: 48, repeats: 3 }, '15M': { tokens: 16, repeats: 3 }, '42M': { tokens: 12, repeats: 3 }, '110M': { tokens: 10, repeats: 3 } },
};

/** The design's step-ratio targets (speculative ms per step ÷ greedy ms per token): full vocabulary, and the 4,096-id draft vocabulary. */
const TARGETS: Partial<Record<ShapeName, { full: number; subset: number }>> = {
  '15M': { full: 1.6, subset: 1.3 },
  '110M': { full: 1.4, subset: 1.2 },
};
const TARGET_SUBSET = 4096;

export const COMMAND = {
  name: 'bench:scale',
  usage: 'npm run bench:scale -- [options]',
  summary:
    'One speculative step against one greedy step at the tinyllamas shapes (vocabulary 32,000, seeded random weights), per backend, shape, head kind and draft vocabulary; prints markdown tables.',
  options: {
    backends: { type: 'strings', default: NODE_BACKENDS, choices: NODE_BACKENDS, help: 'backends to measure, in order' },
    shapes: { type: 'strings', default: SHAPES, choices: SHAPES, help: 'tinyllamas shapes (stories15M, 42M, 110M)' },
    kinds: { type: 'strings', default: HEAD_KINDS, choices: HEAD_KINDS, help: 'kinds of the draft heads (offsets 1…3)' },
    draftVocab: { type: 'strings', default: ['full', String(TARGET_SUBSET)], help: `draft vocabularies: "full", or N for the first N ids (1 ≤ N ≤ ${VOCAB}; skipped where N is not below the shape's vocabulary)` },
    kernels: { type: 'strings', default: KERNELS, choices: KERNELS, help: 'the fused decode kernels (cpu, wasm), the composite tfjs ops, or both (setFusedKernels)' },
    tokens: { type: 'number', default: 0, integer: true, min: 0, help: `new tokens per decode (0: per backend and shape; else at least ${MIN_TOKENS})` },
    repeats: { type: 'number', default: 0, integer: true, min: 0, help: 'timed repeats per configuration, medians over them (0: per backend and shape)' },
    seed: { type: 'number', default: 1, integer: true, min: 0, help: 'seed of the random weights, the tokenizer and the prompt' },
    json: { type: 'string', default: '', help: 'also write the rows to this JSON file' },
    native: { type: 'string', default: '', help: "a compiled llama2.c run binary (run.c, Makefile target runfast): its tokens/s on the same checkpoints" },
  },
} as const;

/** The parsed command line, `draftVocab` as sizes (null: the full vocabulary). */
export type ScaleOptions = Omit<OptionValues<typeof COMMAND.options>, 'draftVocab'> & { draftVocab: Array<number | null> };

/** Rejects a list option that names a value twice. */
function checkDistinct(name: string, values: readonly string[]): void {
  const twice = values.find((v, i) => values.indexOf(v) !== i);
  if (twice !== undefined) throw new UsageError(`--${name} must not repeat a value, but got ${JSON.stringify(twice)} twice.`);
}

/** Checks what {@link COMMAND}'s table cannot express; throws a {@link UsageError} naming the flag, the rule and the value. */
function refine(values: OptionValues<typeof COMMAND.options>): ScaleOptions {
  for (const name of ['backends', 'shapes', 'kinds', 'draftVocab', 'kernels'] as const) checkDistinct(name, values[name]);
  const draftVocab = values.draftVocab.map((v) => {
    if (v === 'full') return null;
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > VOCAB) throw new UsageError(`--draftVocab must be "full" or an integer in [1, ${VOCAB}], but got ${JSON.stringify(v)}.`);
    return n; // 32000 lists every id: the subset path at full size, unlike 'full'
  });
  if (values.tokens !== 0 && values.tokens < MIN_TOKENS) {
    throw new UsageError(`--tokens must be 0 (per backend and shape) or at least ${MIN_TOKENS}, but got ${values.tokens}.`);
  }
  if (values.native !== '') {
    const path = resolve(values.native);
    let problem = '';
    try {
      if (!statSync(path).isFile()) problem = 'not a file';
      else accessSync(path, constants.X_OK);
    } catch (error) {
      problem ||= (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'not executable';
    }
    if (problem) throw new UsageError(`--native must be the path of an executable llama2.c run binary, but got ${JSON.stringify(values.native)} (${problem}).`);
  }
  return { ...values, draftVocab };
}

/** Parses `argv` (no `--help` handling): typed, defaults filled, every value checked. Throws a {@link UsageError}. */
export function parseScaleOptions(argv: readonly string[]): ScaleOptions {
  const { help: _help, ...values } = parseOptions(COMMAND, argv);
  return refine(values);
}

/** {@link parseScaleOptions} on `process.argv` for the entry point: `--help` prints and exits 0, a bad value prints and exits 2. */
function parseScaleCommandLine(): ScaleOptions {
  const values = parseCommandLine(COMMAND);
  try {
    return refine(values);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${COMMAND.name}: ${error.message}\nRun with --help for the options.`);
    process.exit(2);
  }
}

/** One configuration's measurements. */
interface Row {
  backend: NodeBackend;
  shape: ShapeName;
  kind: HeadKind;
  /** Draft vocabulary size; null: the full vocabulary. */
  draftVocab: number | null;
  /** The fused decode kernels, or the composite tfjs ops. */
  kernels: Kernels;
  tokens: number;
  repeats: number;
  loadMs: number;
  /** Median over repeats of ms per forward after the prompt's. */
  greedyMsPerToken: number;
  speculativeMsPerStep: number;
  /** `speculativeMsPerStep / greedyMsPerToken`. */
  stepRatio: number;
  /** Median of every step's own time over all repeats (robust to GC pauses and bursts of load), ms. */
  greedyMedianStep: number;
  speculativeMedianStep: number;
  /** Speculative tokens per forward (untrained heads; the cost per step does not depend on it). */
  tau: number;
  greedyKernelsPerStep: number;
  speculativeKernelsPerStep: number;
  /** Step split of the instrumented pass (medians per step, ms). */
  greedySplit: StepCost;
  speculativeSplit: StepCost;
  /** Whether the instrumented proxy dispatched as many kernels per decode as the bare model (the same path). */
  samePath: { greedy: boolean; speculative: boolean };
  /** Members of the model `instrument`'s proxy does not carry (see {@link membersNotInstrumented}). */
  notInstrumented: string[];
}

/** A configuration that could not run (e.g. an option the loader does not have yet). */
interface Skipped {
  backend: NodeBackend;
  shape: ShapeName;
  kind: HeadKind;
  draftVocab: number | null;
  kernels: Kernels;
  reason: string;
}

interface NativeResult {
  shape: ShapeName;
  /** {@link pooledTokensPerSecond} over every run of the shape. */
  tokensPerSecond: number;
  /** Positions per run, the prompt included. */
  positions: number;
  /** Every batch's runs, as run.c's tok/s. */
  batches: number[][];
}

type Decode = (model: MultiTokenModel, maxNewTokens: number, onToken?: () => void) => Promise<DecodeResult>;

/**
 * ms per forward after the prompt's: the time from the first committed chunk to the last, over
 * the forwards between them; and each of those steps' own time (chunk to chunk).
 */
async function timePerStep(decode: Decode, model: MultiTokenModel, maxNewTokens: number): Promise<{ ms: number; steps: number[]; result: DecodeResult }> {
  const stamps: number[] = [];
  const result = await decode(model, maxNewTokens, () => void stamps.push(performance.now()));
  return { ms: (stamps.at(-1)! - stamps[0]!) / (stamps.length - 1), steps: stamps.slice(1).map((t, i) => t - stamps[i]!), result };
}

/** A {@link StepRecorder} that also counts every kernel of the decode, whether or not a step is open. */
class KernelTally extends StepRecorder {
  total = 0;
  override kernel(): void {
    this.total++;
    super.kernel();
  }
}

/** Kernels of one whole decode of the bare model (no proxy); the decode warms every kernel and shape up too. */
async function bareKernels(decode: Decode, model: MultiTokenModel, tokens: number): Promise<number> {
  const tally = new KernelTally();
  await countKernels(tally, () => decode(model, tokens));
  return tally.total;
}

/**
 * The instrumented passes of one decoder (tools/step_cost.ts): kernels per step from a counting
 * pass, then the split of a timed pass; `samePath` when the counting pass dispatched `bare`
 * kernels in all, as the bare model did on the same decode.
 */
async function instrumented(decode: Decode, model: MultiTokenModel, tokens: number, bare: number): Promise<{ split: StepCost; kernelsPerStep: number; samePath: boolean }> {
  const counted = new KernelTally();
  counted.begin();
  await countKernels(counted, () => decode(instrument(model, counted), tokens));
  counted.end();
  const timing = new StepRecorder();
  timing.begin();
  await timeReadbacks(timing, () => decode(instrument(model, timing), tokens));
  timing.end();
  return { split: timing.summary(), kernelsPerStep: counted.summary().kernelsPerStep, samePath: counted.total === bare };
}

/**
 * Measures one configuration on the current backend; the model is disposed before it returns.
 * Order: a short decode of each decoder, a warm-up decode of each (counting its kernels), the
 * timed repeats (greedy and speculative alternating), then the instrumented passes.
 */
async function measure(bytes: Uint8Array, shape: ShapeName, kind: HeadKind, draftVocab: number | null, kernels: Kernels, prompt: number[], work: { tokens: number; repeats: number }): Promise<Omit<Row, 'backend'>> {
  if (draftVocab !== null && draftVocab >= TINYLLAMAS_SHAPES[shape].vocabSize) throw new Error(`a draft vocabulary of ${draftVocab} is not below the ${shape} vocabulary (${TINYLLAMAS_SHAPES[shape].vocabSize})`);
  setFusedKernels(kernels === 'fused');
  try {
    return await measureWith(bytes, shape, kind, draftVocab, kernels, prompt, work);
  } finally {
    setFusedKernels(true);
  }
}

async function measureWith(bytes: Uint8Array, shape: ShapeName, kind: HeadKind, draftVocab: number | null, kernels: Kernels, prompt: number[], work: { tokens: number; repeats: number }): Promise<Omit<Row, 'backend'>> {
  const dim = TINYLLAMAS_SHAPES[shape].dim;
  // draftVocab: the first N ids (random weights: any subset of that size costs the same)
  const options: LoadLlama2cOptions = { mtpHeads: MTP_HEADS, headKind: kind, headHiddenSize: dim };
  if (draftVocab !== null) options.draftVocab = Array.from({ length: draftVocab }, (_, i) => i);
  const t0 = performance.now();
  const { model } = await loadLlama2c(bytes, options);
  const loadMs = performance.now() - t0;
  const cached = new CachedTransformer(model);
  try {
    const greedy: Decode = (m, n, onToken) => greedyDecode(m, prompt, { maxNewTokens: n, ...(onToken ? { onToken } : {}) });
    const speculative: Decode = (m, n, onToken) => speculativeDecode(m, prompt, { maxNewTokens: n, draftLength: DRAFT_LENGTH, ...(onToken ? { onToken } : {}) });
    for (const decode of [greedy, speculative]) await decode(cached, MIN_TOKENS); // first decodes: one-time set-up stays out of the kernel totals
    const bare = { greedy: await bareKernels(greedy, cached, work.tokens), speculative: await bareKernels(speculative, cached, work.tokens) };
    const greedyMs: number[] = [];
    const speculativeMs: number[] = [];
    const greedySteps: number[] = [];
    const speculativeSteps: number[] = [];
    let tau = NaN;
    for (let r = 0; r < work.repeats; r++) {
      const g = await timePerStep(greedy, cached, work.tokens);
      greedyMs.push(g.ms);
      greedySteps.push(...g.steps);
      const s = await timePerStep(speculative, cached, work.tokens);
      speculativeMs.push(s.ms);
      speculativeSteps.push(...s.steps);
      tau = s.result.stats.meanAcceptedLength;
    }
    const g = await instrumented(greedy, cached, work.tokens, bare.greedy);
    const s = await instrumented(speculative, cached, work.tokens, bare.speculative);
    const greedyMsPerToken = median(greedyMs);
    const speculativeMsPerStep = median(speculativeMs);
    return {
      shape,
      kind,
      draftVocab,
      kernels,
      ...work,
      loadMs,
      greedyMsPerToken,
      speculativeMsPerStep,
      stepRatio: speculativeMsPerStep / greedyMsPerToken,
      greedyMedianStep: median(greedySteps),
      speculativeMedianStep: median(speculativeSteps),
      tau,
      greedyKernelsPerStep: g.kernelsPerStep,
      speculativeKernelsPerStep: s.kernelsPerStep,
      greedySplit: g.split,
      speculativeSplit: s.split,
      samePath: { greedy: g.samePath, speculative: s.samePath },
      notInstrumented: membersNotInstrumented(cached),
    };
  } finally {
    cached.dispose();
    model.dispose();
  }
}

/** Not used by a chain decode, or private: never expected on the proxy. */
const NOT_DECODER_MEMBERS = new Set(['constructor', 'dispose', 'model', 'trunk', 'head', 'cache', 'disposed', 'prepared', 'lastFed']);

/**
 * Members of `model` (methods, getters and function fields, along its prototype chain) that
 * tools/step_cost.ts `instrument` does not carry over to its proxy: when a decoder uses one of
 * them, the instrumented passes take another path than the timed ones.
 */
function membersNotInstrumented(model: MultiTokenModel): string[] {
  const proxy = instrument(model, new StepRecorder());
  const names = new Set<string>();
  for (let o: object | null = model; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const name of Object.getOwnPropertyNames(o)) {
      const d = Object.getOwnPropertyDescriptor(o, name)!;
      if (d.get !== undefined || typeof d.value === 'function') names.add(name);
    }
  }
  return [...names].filter((n) => !NOT_DECODER_MEMBERS.has(n) && !n.startsWith('check') && !(n in proxy)).sort();
}

/**
 * run.c's "achieved tok/s" in its stderr: a number, `Infinity` when the run took less than its
 * clock's millisecond (run.c prints `inf`), or null when the line is missing.
 */
export function achievedTokensPerSecond(stderr: string): number | null {
  const match = /achieved tok\/s: (inf|[\d.]+)/.exec(stderr);
  if (!match) return null;
  return match[1] === 'inf' ? Infinity : Number(match[1]);
}

/**
 * The native rate over runs, each given as run.c's tok/s: 1000 over the mean ms per token (runs
 * reported as `inf` left out). NaN when no run had a duration.
 */
export function pooledTokensPerSecond(runs: readonly number[]): number {
  const timed = runs.filter((r) => Number.isFinite(r) && r > 0);
  if (timed.length === 0) return NaN;
  return 1000 / (timed.reduce((sum, r) => sum + 1000 / r, 0) / timed.length);
}

/** Runs the native binary once on the checkpoint (greedy, `positions` positions with the prompt) and returns run.c's "achieved tok/s". */
function runNative(binary: string, checkpoint: string, tokenizer: string, shape: ShapeName, positions: number): number {
  const out = spawnSync(resolve(binary), [checkpoint, '-z', tokenizer, '-t', '0', '-n', String(positions), '-i', NATIVE_PROMPT], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const achieved = achievedTokensPerSecond(out.stderr ?? '');
  if (out.status !== 0 || achieved === null) {
    throw new Error(`bench:scale: --native ${binary} failed on the ${shape} checkpoint (exit ${out.status}${out.error ? `, ${out.error.message}` : ''}): ${(out.stderr ?? '').trim().slice(0, 300)}`);
  }
  return achieved;
}

/**
 * One batch of native runs: repeated until their run.c-timed ms add up to {@link NATIVE_BATCH_MS}
 * (at most {@link NATIVE_BATCH_RUNS} runs); returns every run's tok/s.
 */
function nativeBatch(binary: string, checkpoint: string, tokenizer: string, shape: ShapeName, positions: number): number[] {
  const runs: number[] = [];
  let ms = 0;
  while (ms < NATIVE_BATCH_MS && runs.length < NATIVE_BATCH_RUNS) {
    const rate = runNative(binary, checkpoint, tokenizer, shape, positions);
    runs.push(rate);
    if (Number.isFinite(rate) && rate > 0) ms += ((positions - 1) * 1000) / rate;
  }
  if (!Number.isFinite(pooledTokensPerSecond(runs))) throw new Error(`bench:scale: --native ${binary} ran ${positions} positions of the ${shape} checkpoint in under run.c's millisecond every time (it printed inf): pass more --tokens.`);
  return runs;
}

const fmt = (x: number | null | undefined, d = 2) => (x !== null && x !== undefined && Number.isFinite(x) ? x.toFixed(d) : '–');
const vocabName = (v: number | null, shape?: ShapeName) => (v === null ? `full (${(shape ? TINYLLAMAS_SHAPES[shape].vocabSize : VOCAB).toLocaleString('en-US')})` : v.toLocaleString('en-US'));

/** The design target of a row's step ratio, if the design states one. */
function target(r: Pick<Row, 'shape' | 'draftVocab'>): number | null {
  const t = TARGETS[r.shape];
  if (!t) return null;
  return r.draftVocab === null ? t.full : r.draftVocab === TARGET_SUBSET ? t.subset : null;
}

function mainTable(rows: Row[], skipped: Skipped[]): string {
  const lines = [
    '| backend | shape | heads | draft vocab | kernels | greedy ms/token | speculative ms/step | step ÷ greedy | design target | median step ÷ median token | kernels/step greedy | kernels/step speculative | τ | tokens × repeats |',
    '|---|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const t = target(r);
    const verdict = t === null ? '–' : `≤ ${t} ${r.stepRatio <= t ? '✓' : '✗'}`;
    lines.push(
      `| ${r.backend} | ${r.shape} | ${r.kind} | ${vocabName(r.draftVocab, r.shape)} | ${r.kernels} | ${fmt(r.greedyMsPerToken)} | ${fmt(r.speculativeMsPerStep)} | ${fmt(r.stepRatio)}× | ${verdict} | ${fmt(r.speculativeMedianStep / r.greedyMedianStep)}× | ` +
        `${fmt(r.greedyKernelsPerStep, 0)} | ${fmt(r.speculativeKernelsPerStep, 0)} | ${fmt(r.tau)} | ${r.tokens} × ${r.repeats} |`,
    );
  }
  for (const s of skipped) lines.push(`| ${s.backend} | ${s.shape} | ${s.kind} | ${vocabName(s.draftVocab, s.shape)} | ${s.kernels} | skipped: ${s.reason.replace(/\|/g, '\\|')} ||||||||| `);
  return lines.join('\n');
}

function splitTable(rows: Row[]): string {
  const lines = [
    'Where a step goes (one instrumented decode per decoder, tools/step_cost.ts: medians per step after the prompt, ms; ÷ greedy: the two medians\' ratio, less sensitive to GC pauses than wall ÷ forwards; "same path": the proxy dispatched as many kernels per decode as the bare model):',
    '',
    '| backend | shape | heads | draft vocab | kernels | decoder | ms/step | ÷ greedy | forward | heads | readback | rollback | other | same path |',
    '|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    for (const [name, c, same] of [['greedy', r.greedySplit, r.samePath.greedy], ['speculative', r.speculativeSplit, r.samePath.speculative]] as const) {
      lines.push(
        `| ${r.backend} | ${r.shape} | ${r.kind} | ${vocabName(r.draftVocab, r.shape)} | ${r.kernels} | ${name} | ${fmt(c.msPerStep)} | ${fmt(c.msPerStep / r.greedySplit.msPerStep)}× | ${fmt(c.forward)} | ${fmt(c.heads)} | ${fmt(c.readback, 3)} | ${fmt(c.rollback, 3)} | ${fmt(c.other)} | ${same ? 'yes' : '**no**'} |`,
      );
    }
  }
  return lines.join('\n');
}

function nativeTable(rows: Row[], native: NativeResult[], binary: string): string {
  const lines = [
    `Native llama2.c (${binary}: greedy, one thread, from the prompt "${NATIVE_PROMPT}", as many positions per run as the tfjs decodes; batches of runs, one before each configuration, so they span the same minutes as the tfjs rows; each batch repeats the run until run.c's whole-ms clock has counted ${NATIVE_BATCH_MS} ms; the rate is 1000 over the mean ms per token of every run) against tfjs greedy (median over the shape's rows on that backend):`,
    '',
    '| shape | positions | native tok/s | runs | batch tok/s (min–max) | native ms/token | backend | kernels | tfjs greedy tok/s | tfjs ÷ native |',
    '|---|---:|---:|---:|---|---:|---|---|---:|---:|',
  ];
  for (const n of native) {
    for (const backend of new Set(rows.filter((r) => r.shape === n.shape).map((r) => r.backend))) {
      for (const kernels of KERNELS) {
        const mine = rows.filter((r) => r.shape === n.shape && r.backend === backend && r.kernels === kernels);
        if (mine.length === 0) continue;
        const ms = median(mine.map((r) => r.greedyMsPerToken));
        const batch = n.batches.map(pooledTokensPerSecond);
        lines.push(`| ${n.shape} | ${n.positions} | ${fmt(n.tokensPerSecond, 1)} | ${n.batches.flat().length} | ${fmt(Math.min(...batch), 0)}–${fmt(Math.max(...batch), 0)} | ${fmt(1000 / n.tokensPerSecond)} | ${backend} | ${kernels} | ${fmt(1000 / ms, 1)} | ${fmt(1000 / ms / n.tokensPerSecond, 3)} |`);
      }
    }
  }
  return lines.join('\n');
}

/** The code measured: the commit, and whether src/ differed from it (read-only git queries). */
function codeVersion(): string {
  const git = (...args: string[]) => spawnSync('git', args, { encoding: 'utf8' }).stdout?.trim() ?? '';
  const commit = git('rev-parse', '--short', 'HEAD');
  if (!commit) return 'unknown';
  return `${commit}${git('status', '--porcelain', '--', 'src').length > 0 ? ' + uncommitted changes in src/' : ''}`;
}

function machine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model.trim() ?? 'unknown cpu'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()} ${release()}, Node ${process.version}`;
}

/** The prompt every tfjs decode starts from: BOS, then seeded random ids below `vocab` (the weights are random: any ids do). */
function promptIds(seed: number, vocab: number): number[] {
  const random = uniformStream(seed ^ 0x5eed);
  return [1, ...Array.from({ length: PROMPT_LENGTH - 1 }, () => 3 + Math.floor(random() * (vocab - 3)))];
}

const log = (text: string) => process.stderr.write(`${text}\n`);

async function main(): Promise<void> {
  const o = parseScaleCommandLine();
  const argv = process.argv.slice(2);
  const command = `npm run bench:scale${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
  const date = new Date().toISOString();
  const loadAtStart = loadavg()[0]!;
  const code = codeVersion();
  const dir = mkdtempSync(join(tmpdir(), 'tfjs-mtp-scale-'));
  const cleanUp = () => rmSync(dir, { recursive: true, force: true });
  const onSignal = () => {
    cleanUp();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const rows: Row[] = [];
  const skipped: Skipped[] = [];
  const native: NativeResult[] = [];
  const total = o.shapes.length * o.backends.length * o.kinds.length * o.draftVocab.length * o.kernels.length;
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 60000).toFixed(1)} min`;
  let done = 0;
  try {
    for (const shape of o.shapes) {
      const vocab = TINYLLAMAS_SHAPES[shape].vocabSize;
      const tokenizer = join(dir, `tokenizer${vocab}.bin`);
      writeFileSync(tokenizer, madeUpTokenizer(vocab, o.seed));
      const prompt = promptIds(o.seed, vocab);
      const checkpoint = join(dir, `stories${shape}-random.bin`);
      const t0 = performance.now();
      const size = writeRandomLlama2c(checkpoint, TINYLLAMAS_SHAPES[shape], { seed: o.seed });
      log(`${shape}: wrote ${(size / 2 ** 20).toFixed(0)} MiB of random weights in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      // as many positions as the longest tfjs decode of the shape: its prompt and new tokens
      const positions = PROMPT_LENGTH + Math.max(...o.backends.map((b) => o.tokens || WORKLOADS[b][shape].tokens));
      const nativeBatches: number[][] = [];
      const nativeOnce = () => {
        if (!o.native) return;
        const runs = nativeBatch(o.native, checkpoint, tokenizer, shape, positions);
        nativeBatches.push(runs);
        log(`    native ${fmt(pooledTokensPerSecond(runs), 1)} tok/s (${runs.length} runs of ${positions} positions)`);
      };
      nativeOnce();
      const bytes = new Uint8Array(readFileSync(checkpoint));
      for (const backend of o.backends) {
        await useBackend(backend);
        const work = { tokens: o.tokens || WORKLOADS[backend][shape].tokens, repeats: o.repeats || WORKLOADS[backend][shape].repeats };
        for (const kind of o.kinds) {
          for (const draftVocab of o.draftVocab) {
            for (const kernels of o.kernels) {
              const name = `${backend} ${shape} ${kind} draft vocab ${draftVocab ?? 'full'} ${kernels} kernels`;
              log(`[${++done}/${total}, ${elapsed()}] ${name}: ${work.tokens} tokens × ${work.repeats} repeats…`);
              nativeOnce();
              const before = tf.memory().numTensors;
              try {
                const row = { backend, ...(await measure(bytes, shape, kind, draftVocab, kernels, prompt, work)) };
                rows.push(row);
                log(`    greedy ${fmt(row.greedyMsPerToken)} ms/token, speculative ${fmt(row.speculativeMsPerStep)} ms/step (${fmt(row.stepRatio)}×), ${fmt(row.greedyKernelsPerStep, 0)} kernels/token, load ${fmt(row.loadMs / 1000, 1)} s`);
              } catch (error) {
                const reason = (error as Error).message.split('\n')[0]!;
                skipped.push({ backend, shape, kind, draftVocab, kernels, reason });
                log(`    skipped: ${reason}`);
              }
              const leaked = tf.memory().numTensors - before;
              if (leaked !== 0) log(`    warning: ${leaked} tensors left after ${name}`);
            }
          }
        }
      }
      if (o.native) {
        while (nativeBatches.length < NATIVE_BATCHES) nativeOnce();
        native.push({ shape, tokensPerSecond: pooledTokensPerSecond(nativeBatches.flat()), positions, batches: nativeBatches });
      }
      rmSync(checkpoint, { force: true });
    }
  } finally {
    cleanUp();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const notes = [
    `Machine: ${machine()}; 1-minute load average ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end. Backends: ${o.backends.join(', ')}. Command: \`${command}\`. Date: ${date}. Code: ${code}. One run; medians over repeats after a warm-up of every path.`,
    `Checkpoints: llama2.c version 0 at the tinyllamas shapes (260K: dim 64, hidden 172, 5 layers, 8 heads, 4 key/value heads, vocabulary 512, context 512; 15M: 288 / 768 / 6 / 6; 42M: 512 / 1376 / 8 / 8; 110M: 768 / 2048 / 12 / 12; vocabulary ${VOCAB.toLocaleString('en-US')}, context 256 for 15M, 1024 for 42M and 110M as published) with a shared classifier, weights N(0, 0.02²) seed ${o.seed}, norm gains 1; written to ${tmpdir()} and deleted after the run.`,
    `Kernels: "fused" runs the library's fused decode kernels over its static KV cache (the default on cpu and wasm), "composite" the plain tfjs ops (\`setFusedKernels(false)\`); kernels per step count every dispatch of a step.`,
    `Heads: k = ${MTP_HEADS} (offset 0 = the classifier, offsets 1…${DRAFT_LENGTH} untrained, width = dim); speculative decoding with draftLength ${DRAFT_LENGTH}, so every step feeds ${MTP_HEADS} rows whatever is accepted (τ only says how far the positions advanced). A draft vocabulary of N is the first N ids: with random weights any subset of that size costs the same.`,
    `Prompt: ${PROMPT_LENGTH} ids (BOS + seeded random ids). ms per token/step: per repeat, the time from the first committed chunk (after the prompt's forward) to the last, over the forwards between them, median over repeats; greedy and speculative alternate within each repeat. "Median step ÷ median token": the same timed decodes, every step's own time pooled over repeats, medians (robust to GC pauses and to other processes on the machine). Kernels per step: a separate counting pass; the warm-up decodes count the bare model's kernels for "same path".`,
  ];
  const uncarried = [...new Set(rows.filter((r) => !r.samePath.greedy || !r.samePath.speculative).flatMap((r) => r.notInstrumented))];
  if (uncarried.length > 0) {
    notes.push(`"Same path: no": the instrumented proxy (tools/step_cost.ts \`instrument\`) does not carry ${uncarried.join(', ')}, so those decodes took another path through it than the timed ones; their split describes that path, not the timed one.`);
  }
  console.log(notes[0]);
  console.log(`\n${mainTable(rows, skipped)}`);
  if (rows.length > 0) console.log(`\n${splitTable(rows)}`);
  if (native.length > 0) console.log(`\n${nativeTable(rows, native, o.native)}`);
  for (const n of notes.slice(1)) console.log(`\n${n}`);
  if (o.json) {
    writeFileSync(o.json, JSON.stringify({ date, command, machine: machine(), code, rows, skipped, native, notes }, null, 2));
    console.log(`\nwrote ${o.json}`);
  }
  log(`done in ${elapsed()}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
