/**
 * One speculative step on the device: a single forward over the committed token(s) not yet in
 * the cache and the proposal under the last of them (tree attention when the proposal branches),
 * offset 0 at the root's and every node's row, the acceptance rule (acceptance.ts) deciding the
 * tip and the token after it, then — at the tip's row only — the heads' drafts for the next step
 * (tip_draft.ts). Exactly one awaited readback brings back the tip, the token, a finiteness flag
 * and the drafts: a few numbers, whatever the vocabulary.
 *
 * Reference: Stern et al. 2018 §3–4 (one forward verifies and proposes); Cai et al., "Medusa"
 * (2024) §2.1.2 (tree attention, verify → accept → draft from the accepted state); Miao et al.,
 * "SpecInfer" (2024) §4 (tree verification).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkedArgmax } from '../layers/inference_fused.js';
import { greedyVerdict, samplingVerdict, treeShape, typicalVerdict, type Verdict } from './acceptance.js';
import type { DraftTree } from './drafters.js';
import { allFinite, allTokens } from './distributions.js';
import type { MultiTokenModel } from './model.js';
import type { ResolvedSpeculativeOptions } from './options.js';
import { uniforms } from './random.js';
import { draftAtTip, type HeadDraft, readTipDraft, type TipPlan } from './tip_draft.js';

/** What a step feeds. */
export interface StepBlock {
  /** Committed tokens not yet in the cache (the prompt at first, then the token after the last kept draft); at least one. */
  pending: number[];
  /** The proposal under the last pending token. */
  tree: DraftTree;
  /** A sampled chain's distributions `[N, V]` (owned by the caller), or null: every node a point mass. */
  q: tf.Tensor2D | null;
}

/** What a step decided and drafted. */
export interface StepResult {
  /** The accepted nodes, root to tip. */
  path: number[];
  /** The verifier's token after them. */
  next: number;
  /** False if a logit the step used was NaN or ±Infinity. */
  finite: boolean;
  /** The heads' drafts at the tip (null when the plan drafted nothing). */
  draft: HeadDraft | null;
  /** A sampled chain's distributions for the next step, `[depth, V]`, kept: the caller owns them. */
  q: tf.Tensor2D | null;
}

/**
 * The rule's decision over the rows `[R, S]`, and what shows whether every logit it used was
 * finite: greedy — the verifier's argmax at every row, int32 `[R]` (−1 marks a broken row, checked
 * in JS after the readback); the others — a float32 flag `[1]`.
 */
function judge(model: MultiTokenModel, block: StepBlock, rows: tf.Tensor2D, o: ResolvedSpeculativeOptions, u: Float32Array | null): Verdict & { finite: tf.Tensor } {
  const shape = treeShape(block.tree);
  const R = shape.N + 1;
  const V = model.vocabSize;
  if (u === null) {
    // greedy: the verifier's argmax at every row, −1 where its logits hold NaN or ±Infinity
    const best = (model.headArgmax ? tf.reshape(model.headArgmax(rows, 1), [R]) : checkedArgmax(tf.reshape(model.headLogits(rows, [0]), [R, V]) as tf.Tensor2D)) as tf.Tensor1D; // [R]
    return { ...greedyVerdict(shape, best), finite: best };
  }
  const logits = tf.reshape(model.headLogits(rows, [0]), [R, V]) as tf.Tensor2D; // [R, V] offset 0 only
  const verdict = o.acceptance === 'sampling'
    ? samplingVerdict(shape, logits, tf.tensor1d(u), block.q, o.sampling)
    : typicalVerdict(shape, logits, tf.tensor1d(u), o.sampling, o.posteriorThreshold, o.posteriorAlpha);
  return { ...verdict, finite: allFinite([logits]) };
}

/** Whether the rule is greedy (no uniforms): greedy acceptance, or any rule at temperature 0. */
export function isGreedy(o: ResolvedSpeculativeOptions): boolean {
  return o.sampling.temperature === 0 || o.acceptance === 'greedy';
}

/** One step: forward, offset 0, acceptance, the tip's drafts under `plan`, one readback. */
export async function runStep(model: MultiTokenModel, block: StepBlock, plan: TipPlan, o: ResolvedSpeculativeOptions, random: () => number): Promise<StepResult> {
  const { pending, tree } = block;
  const P = pending.length;
  const N = tree.tokens.length;
  const R = N + 1;
  const greedy = isGreedy(o);
  const u = greedy ? null : uniforms(random, o.acceptance === 'sampling' ? N + 1 : 1); // one per node, then the token after the path
  const uTip = plan.kind === 'sample' ? uniforms(random, plan.depth) : null;
  const fed = [...pending, ...tree.tokens];
  const states = tree.path
    ? model.forward(fed) // a chain: the ordinary causal forward
    : model.forwardTree!(fed, [...pending.map((_, i) => i - 1), ...tree.parents.map((p) => (p < 0 ? P - 1 : P + p))]); // [P + N, S]
  let packed: tf.Tensor1D | undefined;
  let q: tf.Tensor2D | null = null;
  try {
    packed = tf.tidy(() => {
      const rows = P === 1 ? states : (tf.slice(states, [P - 1, 0], [R, -1]) as tf.Tensor2D); // [R, S] the root, then each node
      const { tip, next, finite, packed: ruled } = judge(model, block, rows, o, u);
      // greedy: [tip (when there are drafts), the verifier's argmax at every row]; else [tip, next, finite]
      const parts: tf.Tensor[] = greedy ? (ruled !== undefined ? [ruled] : N > 0 ? [tip, finite] : [finite]) : [tip, next, finite];
      if (plan.kind !== 'none') {
        const at = R === 1 ? rows : (tf.gather(rows, tip) as tf.Tensor2D); // [1, S] the tip's state
        const out = draftAtTip(model, plan, at, next, o.sampling, uTip === null ? null : tf.tensor1d(uTip));
        parts.push(...out.parts);
        if (out.q !== null) q = tf.keep(out.q);
      }
      // one vector for the one readback: int32 when every part is (greedy chains), else float32 (ids < 2²⁴ are exact)
      const int = parts.every((t) => t.dtype === 'int32');
      const flat = (t: tf.Tensor) => (t.rank === 1 ? t : tf.reshape(t, [-1]));
      const all = parts.map((t) => flat(int ? t : tf.cast(t, 'float32')));
      return (all.length === 1 ? all[0]! : tf.concat(all)) as tf.Tensor1D;
    });
    const data = await packed.data();
    let tip: number; // the row the accepted path ends on
    let next: number;
    let finite: boolean;
    let after: number; // where the drafts start
    if (greedy) {
      const at = N > 0 ? 1 : 0;
      tip = N > 0 ? data[0]! : 0;
      const best = data.subarray(at, at + R); // the verifier's argmax at every row (−1: its logits were not finite)
      next = best[tip]!;
      finite = allTokens(best, model.vocabSize, o.fn, model.headArgmax ? 'headArgmax' : 'headLogits');
      after = at + R;
    } else {
      [tip, next, finite, after] = [data[0]!, data[1]!, data[2] === 1, 3];
    }
    const path: number[] = [];
    for (let i = tip - 1; i >= 0; i = tree.parents[i]!) path.unshift(i);
    const tipDraft = readTipDraft(plan, data, after, model.vocabSize, o.fn);
    return { path, next, finite: finite && tipDraft.finite, draft: tipDraft.draft, q };
  } catch (error) {
    (q as tf.Tensor2D | null)?.dispose();
    throw error;
  } finally {
    states.dispose();
    packed?.dispose();
  }
}
