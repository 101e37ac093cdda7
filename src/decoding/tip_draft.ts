/**
 * The heads' drafting at the accepted tip: once a step's acceptance rule has found, on the
 * device, the row where the accepted path ends and the token the verifier commits after it (the
 * root of the next proposal), only that row goes through the draft offsets 1…d — as a chain
 * (argmax, or sampled with its distributions q kept for speculative sampling), as per-depth
 * top-k candidates (static and dynamic trees over parallel heads), or as an EAGLE-2 forest grown
 * by sequential modules. Nothing is computed at rows that cannot be the tip (Medusa's order:
 * verify → accept → draft from the accepted state), so a step's head work does not grow with the
 * number of rows it verifies — at a 32k vocabulary that is most of the difference between
 * speculation paying and losing.
 *
 * Everything here runs inside the step's `tf.tidy`; what comes back is folded into the step's one
 * readback (`TipOutput.parts`, flat float32) and parsed by {@link readTipDraft}.
 */
import * as tf from '@tensorflow/tfjs-core';
import { topKOfLogits } from '../layers/inference_fused.js';
import { allTokens, sampleRows, toProbabilities, type SamplingSettings } from './distributions.js';
import type { MultiTokenModel } from './model.js';
import type { TreeDraft } from './tree.js';

/** How the heads draft at the tip for the next step. */
export type TipPlan =
  | { kind: 'none' }
  /** A chain of offsets 1…depth, each its argmax (greedy and typical acceptance). */
  | { kind: 'argmax'; depth: number }
  /** A chain sampled from each offset's distribution q (speculative sampling), q kept for the next step. */
  | { kind: 'sample'; depth: number }
  /** The top-`topK` candidates of offsets 1…depth (with their log-probabilities when `logProbs`). */
  | { kind: 'topk'; depth: number; topK: number; logProbs: boolean }
  /** An EAGLE-2 forest grown on the device (`MultiTokenModel.headTree`). */
  | { kind: 'forest'; depth: number; topK: number };

/** A chain drafted at the tip. */
export interface ChainDraft {
  chain: number[];
}

/** What the heads drafted at a tip, read back: a chain or tree candidates. */
export type HeadDraft = ChainDraft | TreeDraft;

/** The device side of a tip draft. */
export interface TipOutput {
  /** Parts for the step's readback (int32 ids, float32 log-probabilities and scores), in the order {@link readTipDraft} parses them. */
  parts: tf.Tensor[];
  /** A sampled chain's distributions `[depth, V]` (to be kept by the caller), else null. */
  q: tf.Tensor2D | null;
}

const flat = (t: tf.Tensor) => tf.reshape(t, [-1]) as tf.Tensor1D;

/** Offsets 1…n. */
const draftOffsets = (n: number) => Array.from({ length: n }, (_, j) => j + 1);

/** Logits `[1, n, V]` of offsets 1…n at `tip`, through the model's draft pass when it has one. */
function logitsAt(model: MultiTokenModel, tip: tf.Tensor2D, root: tf.Tensor1D, n: number, choose?: (column: number, logits: tf.Tensor2D) => tf.Tensor1D): tf.Tensor3D {
  return model.draftLogits ? model.draftLogits(tip, root, n, choose) : model.headLogits(tip, draftOffsets(n)); // [1, n, V]
}

/**
 * The tip's drafts for `plan`, on the device. `tip` `[1, S]` is the tip row's state, `root` int32
 * `[1]` the token committed after it, `u` `[depth]` the uniforms of a sampled chain.
 */
export function draftAtTip(model: MultiTokenModel, plan: TipPlan, tip: tf.Tensor2D, root: tf.Tensor1D, settings: SamplingSettings, u: tf.Tensor1D | null): TipOutput {
  const V = model.vocabSize;
  switch (plan.kind) {
    case 'none':
      return { parts: [], q: null };
    case 'argmax': {
      if (model.draftArgmax) return { parts: [flat(model.draftArgmax(tip, root, plan.depth))], q: null }; // [1, d]
      const logits = tf.reshape(logitsAt(model, tip, root, plan.depth), [plan.depth, V]); // [d, V]
      const ids = tf.argMax(logits, 1); // [d]
      return { parts: [flat(tf.where(tf.isFinite(tf.sum(logits, 1)), ids, tf.fill([plan.depth], -1, 'int32')))], q: null };
    }
    case 'sample': {
      // sequential modules: each module is fed the sample drawn for the offset before it (kept, not drawn twice)
      const probs: tf.Tensor2D[] = [];
      const picks: tf.Tensor1D[] = [];
      // kept: the model runs `choose` inside its own tidy; they are disposed below once used
      const choose = (column: number, logits: tf.Tensor2D) => {
        probs[column - 1] = tf.keep(toProbabilities(logits, settings)); // [1, V]
        picks[column - 1] = tf.keep(sampleRows(probs[column - 1]!, tf.slice(u!, column - 1, 1))); // [1]
        return picks[column - 1]!;
      };
      let logits: tf.Tensor2D; // [d, V]
      try {
        logits = tf.reshape(logitsAt(model, tip, root, plan.depth, choose), [plan.depth, V]) as tf.Tensor2D;
      } catch (error) {
        tf.dispose([...probs, ...picks]);
        throw error;
      }
      let q: tf.Tensor2D; // [d, V]
      let ids: tf.Tensor1D; // [d]
      if (picks.length === plan.depth - 1) {
        // the chain drew columns 1…d−1 itself: only the last is left
        const last = toProbabilities(tf.slice(logits, [plan.depth - 1, 0], [1, V]) as tf.Tensor2D, settings); // [1, V]
        q = tf.concat([...probs, last]) as tf.Tensor2D;
        ids = tf.concat([...picks, sampleRows(last, tf.slice(u!, plan.depth - 1, 1))]) as tf.Tensor1D;
        tf.dispose([...probs, ...picks]);
      } else {
        tf.dispose([...probs, ...picks]); // a model that called `choose` for some columns only
        q = toProbabilities(logits, settings); // parallel heads: every column at once
        ids = sampleRows(q, u!);
      }
      const finite = tf.cast(tf.isFinite(tf.sum(logits)), 'int32');
      return { parts: [tf.sub(tf.mul(tf.add(ids, 1), finite), 1)], q }; // [d], −1 throughout when a logit is not finite
    }
    case 'topk': {
      let ids: tf.Tensor;
      let logProbs: tf.Tensor;
      if (model.draftTopK) ({ ids, logProbs } = model.draftTopK(tip, root, plan.depth, plan.topK)); // [1, d, K]
      else ({ ids, logProbs } = topKOfLogits(tf.reshape(logitsAt(model, tip, root, plan.depth), [plan.depth, V]) as tf.Tensor2D, plan.topK)); // [d, K]
      return { parts: plan.logProbs ? [flat(ids), flat(logProbs)] : [flat(ids)], q: null };
    }
    case 'forest': {
      const forest = model.headTree!(tip, root, plan.depth, plan.topK); // [1, G] each
      return { parts: [flat(forest.ids), flat(forest.parents), flat(forest.scores)], q: null };
    }
  }
}

/** Candidates per forest: depth 1's k, then k² per deeper depth. */
export const forestSize = (depth: number, k: number) => k + (depth - 1) * k * k;

/** Numbers {@link draftAtTip} adds to the readback for `plan`. */
export function tipDraftLength(plan: TipPlan): number {
  switch (plan.kind) {
    case 'none':
      return 0;
    case 'argmax':
    case 'sample':
      return plan.depth;
    case 'topk':
      return plan.depth * plan.topK * (plan.logProbs ? 2 : 1);
    case 'forest':
      return 3 * forestSize(plan.depth, plan.topK);
  }
}


/** The tip draft of `plan` from the readback `data` at `at` (null for 'none'), and whether its ids are all tokens. */
export function readTipDraft(plan: TipPlan, data: Float32Array | Int32Array | Uint8Array, at: number, vocab: number, fn: string): { draft: HeadDraft | null; finite: boolean } {
  const method = plan.kind === 'forest' ? 'headTree' : plan.kind === 'topk' ? 'draftTopK' : 'draftArgmax';
  const allIds = (ids: ArrayLike<number>, v: number) => allTokens(ids, v, fn, method);
  switch (plan.kind) {
    case 'none':
      return { draft: null, finite: true };
    case 'argmax':
    case 'sample': {
      const chain = Array.from(data.subarray(at, at + plan.depth));
      return { draft: { chain }, finite: allIds(chain, vocab) };
    }
    case 'topk': {
      const { depth: D, topK: K } = plan;
      const table = (base: number) => Array.from({ length: D }, (_, d) => Array.from(data.subarray(base + d * K, base + (d + 1) * K)));
      const ids = table(at);
      return { draft: { ids, logProbs: plan.logProbs ? table(at + D * K) : null }, finite: ids.every((row) => allIds(row, vocab)) };
    }
    case 'forest': {
      const G = forestSize(plan.depth, plan.topK);
      const pick = (table: number) => Array.from(data.subarray(at + table * G, at + (table + 1) * G));
      const ranks = Array.from({ length: G }, (_, g) => (g < plan.topK ? g : (g - plan.topK) % plan.topK));
      const tokens = pick(0);
      return { draft: { forest: { tokens, parents: pick(1), ranks, scores: pick(2) } }, finite: allIds(tokens, vocab) };
    }
  }
}
