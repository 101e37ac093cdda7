/**
 * Per-kernel profile of a decoding step (issue #10 §1–§3; docs/performance.md, "Step cost:
 * per-kernel profile"): one greedy step against one speculative k-step (greedy acceptance,
 * `draftLength` k − 1) on a `CachedTransformer`, with the cache at a chosen position. Prints
 * markdown tables.
 *
 *     npm run bench:profile -- [--model tslib|stories|DIR] [--prompt TEXT] [--position N] [--tokens 96] [--repeats 15] [--profiles 5] [--samplers]
 *
 * `--model tslib` is fixtures/tslib-k4; `stories` is stories260K from `../shared/models/` next to
 * the checkout, read with `loadLlama2c` (never copied in; its offsets 1…3 are untrained, so τ ≈ 1
 * and its speculative step is the worst case). `--position N` first extends the prompt to N
 * tokens with the model's own greedy continuation, so the measured steps run against a cache of
 * N rows and more.
 *
 * Every figure is per step after the prompt's forward (the prompt's forward covers many
 * positions; per-decode setup is not a step's):
 *
 * - kernels/step: `tf.profile` of a whole decode, split where each `forward` is called (a
 *   timing proxy of the model, tools/step_cost.ts); the kernels from the second forward to the
 *   decode's end, over the forwards after the prompt's; op wrappers (`fusedMatMul__op`) left
 *   out. Exact and repeatable.
 * - µs per kernel name and their sum: the same split, median over `--profiles` decodes.
 * - wall ms/step: per decode, the time from the second forward's call to the decode's end over
 *   the forwards after the prompt's (the same proxy marks them); `--repeats` decodes per
 *   decoder, the decoders interleaved (greedy, speculative, greedy, …) so that load from other
 *   processes hits them alike; median. The ratio to greedy is taken within each repeat (median
 *   and minimum over repeats).
 *
 * Every run follows one warm-up decode per decoder (wasm kernels, the head's prepared stacks).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { greedyDecode, speculativeDecode, type DecodeResult, type MultiTokenModel } from '../src/index.js';
import { CachedTransformer } from '../src/models/index.js';
import { parseCommandLine } from '../tools/args.js';
import { NODE_BACKENDS, useBackend } from '../tools/backend.js';
import { loadBenchModel } from '../tools/bench_model.js';
import { REFERENCE_CHECKPOINT } from '../tools/checkpoint.js';
import { median } from '../tools/stats.js';
import { instrument, StepRecorder } from '../tools/step_cost.js';

/** The named models and the prompt each is profiled on by default (docs/performance.md's). */
const MODELS = {
  tslib: { dir: REFERENCE_CHECKPOINT, prompt: 'export declare function parseConfig(text: string, options?: ParseOptions): ' },
  stories: { dir: fileURLToPath(new URL('../../shared/models/stories260K/', import.meta.url)), prompt: 'Once upon a time, there was a little girl named Lily.' },
} as const;

const COMMAND = {
  name: 'step_profile',
  usage: 'npm run bench:profile -- [options]',
  summary: 'Per-kernel profile of one greedy step against one speculative k-step (greedy acceptance) at a given position; prints markdown tables.',
  options: {
    model: { type: 'string', default: 'tslib', help: 'tslib (fixtures/tslib-k4), stories (../shared/models/stories260K) or a model folder (see tools/bench_model.ts)' },
    prompt: { type: 'string', default: '', help: "prompt text (empty: the named model's default prompt, or its first bench prompt)" },
    position: { type: 'number', default: 0, integer: true, min: 0, help: 'extend the prompt to this many tokens with the greedy continuation (0: the prompt as it is)' },
    tokens: { type: 'number', default: 96, integer: true, min: 2, help: 'new tokens per measured decode (the decoders stop earlier at the cache capacity)' },
    k: { type: 'number', default: 4, integer: true, min: 2, help: 'tokens per speculative step (draftLength k − 1)' },
    repeats: { type: 'number', default: 15, integer: true, min: 1, help: 'timed decodes per decoder, interleaved (wall ms/step)' },
    profiles: { type: 'number', default: 5, integer: true, min: 1, help: 'profiled decodes per decoder (µs per kernel)' },
    top: { type: 'number', default: 12, integer: true, min: 1, help: 'kernel names in the per-kernel table' },
    samplers: { type: 'boolean', help: "also profile sampling (T = 1) and speculative 'sampling' / 'typical' acceptance (kernels only, no wall time)" },
    backend: { type: 'string', default: 'wasm', choices: NODE_BACKENDS, help: 'backend' },
  },
} as const;

/** A decoder under test: `run(model, n)` decodes n new tokens of the (fixed) prompt with `model`. */
interface Decoder {
  name: string;
  timed: boolean;
  run: (model: MultiTokenModel, maxNewTokens: number) => Promise<DecodeResult>;
}

/**
 * Where each step starts in the active `tf.profile`'s kernel list: the timing proxy of
 * tools/step_cost.ts calls `newStep` at every `forward` (one per step); the recorder's own
 * timing is not used here.
 */
class ProfileMarks extends StepRecorder {
  readonly marks: number[] = [];
  override newStep(): void {
    this.marks.push(tf.engine().state.activeProfile.kernels.length);
  }
}

/** Per-step kernel profile of a decoder: counts (exact) and µs per name (median over profiles). */
interface StepProfile {
  steps: number;
  tau: number;
  perName: Map<string, { count: number; us: number }>;
}

/**
 * Profiles `profiles` decodes of `tokens` new tokens and keeps the kernels from the second
 * forward on (the steps after the prompt's), op wrappers (`fusedMatMul__op`) left out.
 */
async function profileSteps(model: MultiTokenModel, decoder: Decoder, tokens: number, profiles: number): Promise<StepProfile> {
  const counts = new Map<string, number>();
  const us = new Map<string, number[]>();
  let steps = 0;
  let tau = 0;
  for (let p = 0; p < profiles; p++) {
    const marks = new ProfileMarks();
    let result: DecodeResult | null = null;
    const info = await tf.profile(async () => {
      result = await decoder.run(instrument(model, marks), tokens);
    });
    steps = marks.marks.length - 1;
    tau = result!.stats.meanAcceptedLength;
    if (steps < 1) throw new Error(`step_profile: ${decoder.name} made no step after the prompt's; raise --tokens or lower --position.`);
    const here = new Map<string, { count: number; ms: number }>();
    for (const k of info.kernels.slice(marks.marks[1])) {
      if (k.name.endsWith('__op')) continue;
      const e = here.get(k.name) ?? { count: 0, ms: 0 };
      e.count++;
      e.ms += Number(k.kernelTimeMs) || 0;
      here.set(k.name, e);
    }
    for (const [name, e] of here) {
      counts.set(name, e.count / steps);
      us.set(name, [...(us.get(name) ?? []), (1000 * e.ms) / steps]);
    }
  }
  const perName = new Map([...counts].map(([name, count]) => [name, { count, us: median(us.get(name)!) }]));
  return { steps, tau, perName };
}

/**
 * Wall ms per step after the prompt's, `repeats` times, the decoders interleaved: per decode,
 * the time from the second `forward` call to the decode's end over the steps in it (the timing
 * proxy of tools/step_cost.ts marks the forwards; it adds a clock read per model call).
 */
async function wallPerStep(model: MultiTokenModel, decoders: Decoder[], tokens: number, repeats: number): Promise<number[][]> {
  const ms: number[][] = decoders.map(() => []);
  for (let r = 0; r < repeats; r++) {
    for (const [i, d] of decoders.entries()) {
      const recorder = new StepRecorder();
      recorder.begin();
      await d.run(instrument(model, recorder), tokens);
      recorder.end();
      const steps = recorder.steps();
      ms[i]!.push(steps.reduce((a, s) => a + s.total, 0) / steps.length);
    }
  }
  return ms;
}

/** The measured commit, and whether src/ differed from it. */
function codeVersion(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src'], { encoding: 'utf8' }).trim() !== '';
    return dirty ? `${commit} + uncommitted changes in src/` : commit;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const kernelsOf = (p: StepProfile) => [...p.perName.values()].reduce((a, e) => a + e.count, 0);
const kernelMsOf = (p: StepProfile) => [...p.perName.values()].reduce((a, e) => a + e.us, 0) / 1000;

function summaryTable(decoders: Decoder[], profiles: StepProfile[], walls: number[][]): string {
  const lines = [
    '| decoder | steps | τ | kernels/step | kernels ÷ greedy | kernel ms/step | wall ms/step | wall ÷ greedy (median, min) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const greedyKernels = kernelsOf(profiles[0]!);
  decoders.forEach((d, i) => {
    const p = profiles[i]!;
    const w = walls[i];
    const ratios = w ? w.map((ms, r) => ms / walls[0]![r]!) : [];
    const wall = w ? fmt(median(w), 3) : '–';
    const ratio = w ? `${fmt(median(ratios), 2)}×, ${fmt(Math.min(...ratios), 2)}×` : '–';
    lines.push(`| ${d.name} | ${p.steps} | ${fmt(p.tau, 2)} | ${fmt(kernelsOf(p))} | ${fmt(kernelsOf(p) / greedyKernels, 2)}× | ${fmt(kernelMsOf(p), 3)} | ${wall} | ${ratio} |`);
  });
  return lines.join('\n');
}

/** Kernel names side by side, the costliest `top` (by the largest µs of any decoder). */
function kernelTable(decoders: Decoder[], profiles: StepProfile[], top: number): string {
  const names = [...new Set(profiles.flatMap((p) => [...p.perName.keys()]))];
  const cost = (name: string) => Math.max(...profiles.map((p) => p.perName.get(name)?.us ?? 0));
  const lines = [
    `| kernel | ${decoders.map((d) => `${d.name}: per step | µs per step`).join(' | ')} |`,
    `|---|${decoders.map(() => '---:|---:').join('|')}|`,
  ];
  for (const name of names.sort((a, b) => cost(b) - cost(a)).slice(0, top)) {
    const cells = profiles.map((p) => {
      const e = p.perName.get(name);
      return e ? `${fmt(e.count)} | ${fmt(e.us, 0)}` : '0 | –';
    });
    lines.push(`| ${name} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const opts = parseCommandLine(COMMAND);
  await useBackend(opts.backend);
  const named = opts.model in MODELS ? MODELS[opts.model as keyof typeof MODELS] : null;
  const bench = await loadBenchModel(named?.dir ?? opts.model);
  const cached = new CachedTransformer(bench.model);
  const text = opts.prompt || named?.prompt;
  let prompt = text ? bench.tokenizer.encode(text) : bench.prompts(1, 48)[0]!;
  const extended = opts.position > prompt.length;
  if (extended) {
    const lead = await greedyDecode(cached, prompt, { maxNewTokens: opts.position - prompt.length, yieldEveryMs: Infinity });
    prompt = [...prompt, ...lead.tokens];
  }
  const { tokens, k } = opts;
  const never = { yieldEveryMs: Infinity };
  const sampled = { temperature: 1, seed: 1, ...never };
  const decoders: Decoder[] = [
    { name: 'greedy', timed: true, run: (m, n) => greedyDecode(m, prompt, { maxNewTokens: n, ...never }) },
    { name: `speculative k=${k}`, timed: true, run: (m, n) => speculativeDecode(m, prompt, { maxNewTokens: n, draftLength: k - 1, ...never }) },
  ];
  if (opts.samplers) {
    decoders.push(
      { name: 'sampling T=1', timed: false, run: (m, n) => greedyDecode(m, prompt, { maxNewTokens: n, ...sampled }) },
      ...(['sampling', 'typical'] as const).map((acceptance) => ({
        name: `speculative k=${k} '${acceptance}'`,
        timed: false,
        run: (m: MultiTokenModel, n: number) => speculativeDecode(m, prompt, { maxNewTokens: n, draftLength: k - 1, acceptance, ...sampled }),
      })),
    );
  }
  for (const d of decoders) await d.run(cached, tokens); // warm-up
  const walls = await wallPerStep(cached, decoders.filter((d) => d.timed), tokens, opts.repeats);
  const profiles: StepProfile[] = [];
  for (const d of decoders) profiles.push(await profileSteps(cached, d, tokens, opts.profiles));
  cached.dispose();
  bench.model.dispose();

  console.log(`Model: ${bench.name}; code: ${codeVersion()}; backend ${opts.backend}`);
  console.log(`Prompt: ${prompt.length} tokens${text ? ` (${JSON.stringify(text)}${extended ? ', extended greedily' : ''})` : ''}; ${tokens} new tokens per decode; per step after the prompt's forward.`);
  console.log(`Wall: median of ${opts.repeats} interleaved repeats; kernel µs: median of ${opts.profiles} profiles.\n`);
  console.log(summaryTable(decoders, profiles, walls));
  console.log(`\nPer kernel (kernels per step | µs per step, the ${opts.top} costliest):\n`);
  console.log(kernelTable(decoders, profiles, opts.top));
}

await main();
