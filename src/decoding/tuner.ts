/**
 * `draftLength: 'auto'` and `tree: 'auto'`: how much to draft, chosen while decoding. A step that
 * verifies n draft tokens costs c(n) milliseconds and commits E(n) tokens in expectation; the
 * tuner keeps the n with the most tokens per millisecond, E(n) / c(n), and n = 0 — an ordinary
 * greedy (or sampling) step — is always a candidate, so a backend where speculation cannot pay
 * decodes at greedy speed instead of losing to it.
 *
 * - c(n): the shortest wall time among recent steps that verified n drafts (the forward, the rule,
 *   the tip's drafts and the one readback), measured on the decode's own steps — nothing is run
 *   just to measure, so nothing blocks the event loop and an abort is seen between steps as usual.
 *   The shortest, not the median: other work on the machine, a garbage collection or a scheduling
 *   hiccup only ever add time, and they hit whichever size happens to run then, so the fastest
 *   recent step of each size is the fairest comparison between sizes.
 *   Sizes not measured yet are interpolated between measured ones. A step whose tip drafting does
 *   not match its own size (the step that switches sizes) is not recorded.
 * - E(n): for a chain, 1 + Σ_{j ≤ n} a_j with a_j the share of steps that verified depth j whose
 *   first j drafts were all kept (vLLM's per-position acceptance); for a tree, 1 + λ Σ_{i < n}
 *   exp(score_i) over the best-first nodes' path log-probabilities (EAGLE-2 §4.1), λ the ratio of
 *   tokens accepted to tokens so predicted on this model so far (the draft confidences are not
 *   calibrated acceptance rates).
 * - Exploration: the smallest and largest sizes are measured first, then the end not in use is
 *   re-measured for two steps (the first of which switches) every {@link TUNER_DEFAULTS}.probeEvery
 *   steps, an interval that doubles (to {@link TUNER_DEFAULTS}.maxProbeEvery) while probes leave the
 *   choice as it was, so a change of load or of text is noticed and a settled choice costs little.
 *
 * What was learned is kept per model, backend and drafting (a WeakMap: it goes with the model),
 * so the next decode starts from it instead of exploring again.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MultiTokenModel } from './model.js';

/** Defaults of the tuner, each with its reason. */
export const TUNER_DEFAULTS = Object.freeze({
  /** Recent steps per size whose fastest is its cost: a lasting change (a bigger cache, a slower machine) shows within this many steps of that size. */
  window: 8,
  /** Clean samples of the smallest and largest size before choosing: the fastest of 3 ignores two disturbed steps. */
  warmup: 3,
  /** Steps between two probes of a size not in use at first: ~6 % of steps spent away from the best size at most. */
  probeEvery: 32,
  /** The longest interval between probes once they keep confirming the choice: ~0.4 % of steps. */
  maxProbeEvery: 512,
  /** Acceptance counts decay by this factor per step: the estimate follows the text (a decode's topic drifts) with a memory of ~200 steps. */
  decay: 0.995,
});

/** What the tuner remembers for one (model, backend, drafting): costs per size and acceptance. */
interface Memory {
  /** Recent clean step times per size. */
  costs: Map<number, number[]>;
  /** Chains: per depth j (index j − 1), decayed counts of steps that verified depth j and of those that kept drafts 1…j. */
  drafted: number[];
  kept: number[];
  /** Trees: decayed sums of tokens accepted and of tokens the scores predicted (λ = accepted / predicted). */
  accepted: number;
  predicted: number;
  /** Trees: prefix sums of exp(score) of the latest proposal's best-first nodes (what E(n) is judged by before the next proposal exists). */
  cumulative: number[];
  /** Steps since the last probe, and the current interval between probes. */
  sinceProbe: number;
  probeEvery: number;
  /** The best size when the last probe started (null: no probe yet). */
  bestBeforeProbe: number | null;
  /** Which end to probe next (alternates). */
  probeHigh: boolean;
}

const memories = new WeakMap<MultiTokenModel, Map<string, Memory>>();

function memoryOf(model: MultiTokenModel, key: string, depth: number): Memory {
  let byKey = memories.get(model);
  if (byKey === undefined) memories.set(model, (byKey = new Map()));
  const full = `${tf.getBackend()}|${key}`;
  let m = byKey.get(full);
  if (m === undefined) {
    m = { costs: new Map(), drafted: new Array<number>(depth).fill(0), kept: new Array<number>(depth).fill(0), accepted: 0, predicted: 0, cumulative: [], sinceProbe: 0, probeEvery: TUNER_DEFAULTS.probeEvery, bestBeforeProbe: null, probeHigh: false };
    byKey.set(full, m);
  }
  return m;
}

/** Measured step costs: sizes increasing, `ms[i]` the fastest recent step of `sizes[i]`. */
interface Measured {
  sizes: number[];
  ms: number[];
}

/**
 * The cost of a step of `size` from `m`: measured, or interpolated linearly between the measured
 * sizes around it; below the smallest measured, that one's cost; past the largest, the last
 * measured slope extended (never below flat). Null when nothing is measured.
 */
function costFrom(m: Measured, size: number): number | null {
  const { sizes, ms } = m;
  if (sizes.length === 0) return null;
  let i = 0; // the first measured size ≥ size
  while (i < sizes.length && sizes[i]! < size) i++;
  if (i < sizes.length && sizes[i] === size) return ms[i]!;
  if (i === 0) return ms[0]!;
  if (i === sizes.length) {
    const last = sizes.length - 1;
    return last === 0 ? ms[0]! : ms[last]! + Math.max(0, ((ms[last]! - ms[last - 1]!) / (sizes[last]! - sizes[last - 1]!)) * (size - sizes[last]!));
  }
  return ms[i - 1]! + ((ms[i]! - ms[i - 1]!) * (size - sizes[i - 1]!)) / (sizes[i]! - sizes[i - 1]!);
}

/**
 * The tuner of one decode. `sizes` are the candidate draft sizes (increasing, 0 first): depths of
 * a chain, or node budgets of a tree.
 */
export class StepTuner {
  private readonly memory: Memory;
  /** Steps left of a probe in progress, and its size. */
  private probe: { size: number; steps: number } | null = null;

  constructor(model: MultiTokenModel, key: string, private readonly sizes: readonly number[], depth: number) {
    this.memory = memoryOf(model, key, depth);
  }

  /** The largest size. */
  get max(): number {
    return this.sizes[this.sizes.length - 1]!;
  }

  /** The cost of a step of `size` in ms (the fastest recent one), interpolated between measured sizes (null when nothing is measured). */
  cost(size: number): number | null {
    return costFrom(this.measured(), size);
  }

  /** The measured sizes (increasing) and the fastest recent step of each. */
  private measured(): Measured {
    const sizes: number[] = [];
    const ms: number[] = [];
    for (const s of this.sizes) {
      const list = this.memory.costs.get(s);
      if (list === undefined || list.length === 0) continue;
      sizes.push(s);
      ms.push(Math.min(...list));
    }
    return { sizes, ms };
  }

  /** Whether `size` still needs warm-up samples. */
  private cold(size: number): boolean {
    return (this.memory.costs.get(size)?.length ?? 0) < TUNER_DEFAULTS.warmup;
  }

  /**
   * The size of the next step: warm-up first (largest, then smallest), a probe when one is due,
   * else the size of the most expected tokens per millisecond under `expected(size)`.
   */
  choose(expected: (size: number) => number): number {
    const low = this.sizes[0]!;
    const high = this.max;
    if (this.probe !== null) {
      const size = this.probe.size;
      if (--this.probe.steps <= 0) this.probe = null;
      return size;
    }
    if (this.cold(high)) return high;
    if (this.cold(low)) return low;
    let best = low;
    let bestRate = -Infinity;
    const measured = this.measured(); // once per step: every size's cost is read from it
    for (const s of this.sizes) {
      const c = costFrom(measured, s);
      const rate = c === null || !(c > 0) ? -Infinity : expected(s) / c;
      if (rate > bestRate + 1e-12) [best, bestRate] = [s, rate];
    }
    const m = this.memory;
    if (m.bestBeforeProbe !== null) {
      // the first choice after a probe: a confirmed choice probes half as often, a changed one as often as at first
      m.probeEvery = best === m.bestBeforeProbe ? Math.min(2 * m.probeEvery, TUNER_DEFAULTS.maxProbeEvery) : TUNER_DEFAULTS.probeEvery;
      m.bestBeforeProbe = null;
    }
    if (++m.sinceProbe >= m.probeEvery) {
      m.sinceProbe = 0;
      m.probeHigh = !m.probeHigh;
      const size = m.probeHigh ? high : low;
      if (size === best) m.probeHigh = !m.probeHigh; // the other end, then
      const other = m.probeHigh ? high : low;
      if (other !== best) {
        m.bestBeforeProbe = best;
        this.probe = { size: other, steps: 1 }; // this step switches, the next is measured clean
        return other;
      }
    }
    return best;
  }

  /** Records a clean step of `size` that took `ms`. */
  record(size: number, ms: number): void {
    if (!(ms > 0) || !Number.isFinite(ms)) return;
    const list = this.memory.costs.get(size) ?? [];
    list.push(ms);
    if (list.length > TUNER_DEFAULTS.window) list.shift();
    this.memory.costs.set(size, list);
  }

  /** Chains: a step verified `depth` drafts and kept the first `kept` of them. */
  observeChain(depth: number, kept: number): void {
    const m = this.memory;
    for (let j = 0; j < m.drafted.length; j++) {
      m.drafted[j]! *= TUNER_DEFAULTS.decay;
      m.kept[j]! *= TUNER_DEFAULTS.decay;
    }
    for (let j = 0; j < Math.min(depth, m.drafted.length); j++) {
      m.drafted[j]! += 1;
      if (j < kept) m.kept[j]! += 1;
    }
  }

  /**
   * Chains: expected tokens of a step of `depth` drafts, 1 + Σ_{j ≤ depth} a_j (a depth never
   * verified yet counts as its shallower neighbour's rate, an optimistic start the warm-up corrects).
   */
  expectedChain(depth: number): number {
    const m = this.memory;
    let total = 1;
    let rate = 1;
    for (let j = 0; j < depth; j++) {
      if (m.drafted[j]! > 0) rate = Math.min(rate, m.kept[j]! / m.drafted[j]!);
      total += rate;
    }
    return total;
  }

  /** Trees: a step whose nodes' scores predicted `predicted` accepted tokens kept `accepted`. */
  observeTree(predicted: number, accepted: number): void {
    const m = this.memory;
    m.predicted = m.predicted * TUNER_DEFAULTS.decay + predicted;
    m.accepted = m.accepted * TUNER_DEFAULTS.decay + accepted;
  }

  /** Trees: λ, accepted ÷ predicted so far (1 before anything was seen), clamped to [0.05, 2]. */
  calibration(): number {
    const m = this.memory;
    return m.predicted > 0 ? Math.min(2, Math.max(0.05, m.accepted / m.predicted)) : 1;
  }

  /** Trees: remembers the latest proposal's best-first scores (path log-probabilities). */
  rememberScores(scores: readonly number[]): void {
    let sum = 0;
    this.memory.cumulative = scores.map((x) => (sum += Math.exp(x)));
  }

  /** Trees: expected tokens of a step of `nodes` best-first nodes, 1 + λ Σ_{i < nodes} exp(score_i), from the remembered scores. */
  expectedTree(nodes: number): number {
    const c = this.memory.cumulative;
    if (nodes === 0 || c.length === 0) return 1;
    return 1 + this.calibration() * c[Math.min(nodes, c.length) - 1]!;
  }
}
